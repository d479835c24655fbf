//! The scaling advisor: pure functions from the snapshot history to suggestions. Each
//! rule fires when its metric is over the threshold in `sustain` of the samples of the
//! last `window`, and clears only after a whole window below the threshold minus a margin
//! (hysteresis, kept in `AdvisorState`). No I/O: the hub calls `evaluate` on every
//! snapshot; commands apply what it returns.

pub mod capacity;
mod patch;
mod rules;

pub use rules::agent_errors;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::config::AdvisorConfig;
use crate::model::history::{History, Series};
use crate::model::snapshot::{ServiceStats, Snapshot};

/// Rules that are on, by suggestion id, with the time each started to hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdvisorState {
    pub active: BTreeMap<String, f64>,
}

/// What a window of one series says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub samples: usize,
    pub over: usize,
    pub mean: f64,
    pub last: f64,
    pub max: f64,
    /// Whether the samples cover most of the window (a fresh series does not).
    pub covered: bool,
    /// When the metric went over: the oldest over-threshold sample of the window,
    /// extended back through the run of over-threshold samples just before it.
    pub onset: f64,
}

/// The samples of `s` in `(now - window, now]` against `threshold`.
pub fn window(s: &Series, now: f64, window_s: f64, threshold: f64) -> Option<Window> {
    let start = now - window_s;
    let pts: Vec<(f64, f64)> = s
        .fine
        .iter()
        .rev()
        .take_while(|p| p.0 > start)
        .copied()
        .collect();
    if pts.is_empty() {
        return None;
    }
    let n = pts.len();
    let oldest = pts[n - 1].0;
    let mut onset = now;
    for p in s.fine.iter().rev() {
        if p.1 > threshold {
            onset = p.0;
        } else if p.0 <= start {
            break;
        }
    }
    Some(Window {
        onset,
        samples: n,
        over: pts.iter().filter(|p| p.1 > threshold).count(),
        mean: pts.iter().map(|p| p.1).sum::<f64>() / n as f64,
        last: pts[0].1,
        max: pts.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        covered: n >= 3 && oldest <= start + window_s * 0.25,
    })
}

/// Fire / hold / clear for one rule and target. Returns Some(since) while active.
pub fn hysteresis(
    state: &mut AdvisorState,
    id: &str,
    w: Option<Window>,
    cfg: &AdvisorConfig,
    threshold: f64,
    now: f64,
) -> Option<f64> {
    let fires = w.is_some_and(|w| w.covered && (w.over as f64) >= cfg.sustain * w.samples as f64);
    let recovered = w.is_none_or(|w| w.covered && w.max < threshold - cfg.margin);
    match state.active.get(id).copied() {
        Some(since) if !recovered => Some(since),
        Some(_) => {
            state.active.remove(id);
            None
        }
        None if fires => {
            let since = w.map(|w| w.onset).unwrap_or(now).min(now);
            state.active.insert(id.to_string(), since);
            Some(since)
        }
        None => None,
    }
}

/// Bits per weight of an Ollama quantisation level (`Q4_K_M` 4, `Q8_0` 8, `F16` 16).
fn quant_bits(level: &str) -> Option<u32> {
    let l = level.to_ascii_uppercase();
    let l = l.strip_prefix("I").unwrap_or(&l);
    let rest = ["Q", "BF", "FP", "F"]
        .iter()
        .find_map(|p| l.strip_prefix(p))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The quantisation of a model: what Ollama reports, else a tag such as `8b-q8_0`.
fn quant_of(name: &str, reported: Option<&str>) -> Option<String> {
    if let Some(q) = reported.filter(|q| quant_bits(q).is_some()) {
        return Some(q.to_string());
    }
    let tag = name.rsplit_once(':')?.1;
    tag.split('-')
        .find(|p| {
            let u = p.to_ascii_uppercase();
            (u.starts_with('Q') || u.starts_with("IQ") || u.starts_with("FP") || u == "F16")
                && quant_bits(p).is_some()
        })
        .map(str::to_string)
}

/// What to run instead of a model that does not fit: a 4-bit quantisation when it has
/// more bits now, else (already 4 bits or fewer) a model with fewer parameters.
fn smaller_model(name: &str, reported: Option<&str>) -> String {
    match quant_of(name, reported) {
        Some(q) if quant_bits(&q).is_some_and(|b| b > 4) => format!(
            "use a smaller quantisation of {name}: it is {q}; a q4_K_M tag needs about {}% of \
             its memory",
            400 / quant_bits(&q).unwrap_or(8)
        ),
        Some(q) => format!(
            "{name} is already {q}: use a model with fewer parameters (a smaller tag of its \
             family)"
        ),
        None => format!(
            "use a smaller quantisation of {name} if it has more than 4 bits (`ollama show \
             {name}` names it; a q4_K_M tag) or a model with fewer parameters"
        ),
    }
}

fn loaded_models(o: &crate::model::ollama::Ollama) -> usize {
    o.loaded.len()
}

/// Least-squares slope of a series over the window (units per second).
pub fn slope(s: &Series, now: f64, window_s: f64) -> Option<(f64, usize)> {
    let pts: Vec<(f64, f64)> = s
        .fine
        .iter()
        .filter(|p| p.0 > now - window_s)
        .copied()
        .collect();
    let n = pts.len() as f64;
    if pts.len() < 5 {
        return None;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| (sxy / sxx, pts.len()))
}

fn severity(value: f64, threshold: f64, ceiling: f64) -> String {
    if value >= threshold + (ceiling - threshold) / 2.0 {
        "critical".into()
    } else {
        "warning".into()
    }
}

/// Rounds cores to a tenth, up.
fn tenth_up(x: f64) -> f64 {
    (x * 10.0).ceil() / 10.0
}

fn clock(t: f64) -> String {
    let s = t.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

struct Host {
    cores: f64,
    memory: u64,
}

/// The stack's services, their containers and limits, from the snapshot.
fn by_service(s: &Snapshot) -> BTreeMap<&str, Vec<&ServiceStats>> {
    let mut m: BTreeMap<&str, Vec<&ServiceStats>> = BTreeMap::new();
    for x in s.services.iter().filter(|x| x.state == "running") {
        m.entry(x.service.as_str()).or_default().push(x);
    }
    m
}

/// Running containers of `service`, at least 1.
fn running_replicas(service: &str, s: &Snapshot) -> usize {
    s.services
        .iter()
        .filter(|x| x.service == service && x.state == "running")
        .count()
        .max(1)
}

/// The running containers of every other service (whose limits the host must keep).
fn others<'a>(service: &'a str, s: &'a Snapshot) -> impl Iterator<Item = &'a ServiceStats> {
    s.services
        .iter()
        .filter(move |x| x.service != service && x.state == "running")
}

/// A new CPU limit: double, capped by what the host has left after the other services'
/// limits (never below the current one plus a tenth).
fn vertical_cpus(current: f64, service: &str, s: &Snapshot, host: &Host) -> f64 {
    let replicas = running_replicas(service, s) as f64;
    let others: f64 = others(service, s).filter_map(|x| x.cpu_limit).sum();
    // Every replica gets the new limit: they share what is left.
    let room = ((host.cores - others) / replicas).max(current + 0.1);
    tenth_up((current * 2.0).min(room))
}

fn vertical_memory(current: u64, service: &str, s: &Snapshot, host: &Host) -> u64 {
    let replicas = running_replicas(service, s) as u64;
    let others: u64 = others(service, s).filter_map(|x| x.memory_limit).sum();
    let room = (host.memory.saturating_sub(others) / replicas).max(current + (16 << 20));
    // Whole MiB, so the compose value and `docker update` agree.
    (current.saturating_mul(2).min(room) >> 20) << 20
}

/// The limits patch, under the keys the service's compose file uses.
fn compose_limits(s: &Snapshot, service: &str, cpus: Option<f64>, memory: Option<u64>) -> String {
    patch::limits(service, cpus, memory, s.compose_forms.get(service))
}

fn update_command(containers: &[&ServiceStats], cpus: Option<f64>, memory: Option<u64>) -> String {
    let mut c = String::from("docker update");
    if let Some(x) = cpus {
        c.push_str(&format!(" --cpus {x}"));
    }
    if let Some(m) = memory {
        c.push_str(&format!(
            " --memory {}m --memory-swap {}m",
            m >> 20,
            (m >> 20) * 2
        ));
    }
    for x in containers {
        c.push(' ');
        c.push_str(&x.container);
    }
    c
}

fn horizontal(
    project: &str,
    service: &str,
    now_replicas: usize,
    target: usize,
) -> (ScaleAction, String, String) {
    (
        ScaleAction {
            kind: "horizontal".into(),
            cpus: None,
            memory: None,
            replicas: Some(target as u32),
            maxmemory: None,
            from: format!("{now_replicas} replicas"),
        },
        format!("docker compose -p {project} up -d --no-recreate --scale {service}={target}"),
        format!("services:\n  {service}:\n    deploy:\n      replicas: {target}\n"),
    )
}

/// Every suggestion that holds now. `state` carries the hysteresis between calls.
pub fn evaluate(
    h: &History,
    s: &Snapshot,
    cfg: &AdvisorConfig,
    state: &mut AdvisorState,
    now: f64,
) -> Vec<Suggestion> {
    let host = Host {
        cores: s
            .host
            .as_ref()
            .map(|x| x.per_core_percent.len() as f64)
            .filter(|c| *c > 0.0)
            .unwrap_or(1.0),
        memory: s.host.as_ref().map(|x| x.memory_total_bytes).unwrap_or(0),
    };
    let cx = rules::Ctx {
        h,
        s,
        cfg,
        now,
        win: cfg.window.as_secs_f64(),
        win_label: crate::model::units::format_duration(cfg.window),
        host,
        services: by_service(s),
    };
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (_, rule) in rules::RULES {
        rule(&cx, state, &mut seen, &mut out);
    }
    // Targets that disappeared (a removed service) leave no stale state behind.
    state.active.retain(|k, _| seen.contains(k));
    out.sort_by(|a, b| {
        (b.severity == "critical")
            .cmp(&(a.severity == "critical"))
            .then(a.id.cmp(&b.id))
    });
    out
}

#[cfg(test)]
mod tests;
