//! The scaling advisor: pure functions from the snapshot history to suggestions. Each
//! rule fires when its metric is over the threshold in `sustain` of the samples of the
//! last `window`, and clears only after a whole window below the threshold minus a margin
//! (hysteresis, kept in `AdvisorState`). No I/O: the hub calls `evaluate` on every
//! snapshot; commands apply what it returns.

pub mod agent_errors;
pub mod capacity;
mod patch;
mod probes;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::config::AdvisorConfig;
use crate::model::history::{History, Series};
use crate::model::snapshot::{ServiceStats, Snapshot};
use crate::model::units::format_bytes;

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
    let win = cfg.window.as_secs_f64();
    let win_label = crate::model::units::format_duration(cfg.window);
    let host = Host {
        cores: s
            .host
            .as_ref()
            .map(|x| x.per_core_percent.len() as f64)
            .filter(|c| *c > 0.0)
            .unwrap_or(1.0),
        memory: s.host.as_ref().map(|x| x.memory_total_bytes).unwrap_or(0),
    };
    let mut out = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let services = by_service(s);
    let stateless = |svc: &str| cfg.stateless.iter().any(|x| x == svc);

    for (svc, containers) in &services {
        // CPU of the limit: the worst container of the service decides.
        let mut worst: Option<(Window, &ServiceStats)> = None;
        for x in containers.iter().filter(|x| x.cpu_limit.is_some()) {
            let key = format!("service:{}:cpu_limit_percent", x.container);
            if let Some(w) = h
                .series
                .get(&key)
                .and_then(|sr| window(sr, now, win, cfg.cpu_percent))
                && worst
                    .is_none_or(|(b, _)| w.over > b.over || (w.over == b.over && w.mean > b.mean))
            {
                worst = Some((w, x));
            }
        }
        let id = format!("cpu:{svc}");
        seen.insert(id.clone());
        if let Some(since) = hysteresis(state, &id, worst.map(|w| w.0), cfg, cfg.cpu_percent, now)
            && let Some((w, x)) = worst
        {
            let limit = x.cpu_limit.unwrap_or(1.0);
            let evidence = format!(
                "CPU {:.0}% of its {limit}-CPU limit now; over {:.0}% in {} of {} samples of the \
                 last {win_label} (mean {:.0}%), since {}",
                w.last,
                cfg.cpu_percent,
                w.over,
                w.samples,
                w.mean,
                clock(since)
            );
            let (action, command, compose_patch) = if stateless(svc) {
                let n = containers.len();
                let target = ((n as f64 * w.mean / (cfg.cpu_percent - cfg.margin).max(1.0)).ceil()
                    as usize)
                    .max(n + 1);
                horizontal(&s.project, svc, n, target)
            } else {
                let cpus = vertical_cpus(limit, svc, s, &host);
                (
                    ScaleAction {
                        kind: "vertical".into(),
                        cpus: Some(cpus),
                        memory: None,
                        replicas: None,
                        maxmemory: None,
                        from: format!("cpus {limit}"),
                    },
                    update_command(containers, Some(cpus), None),
                    compose_limits(s, svc, Some(cpus), None),
                )
            };
            out.push(Suggestion {
                id,
                service: svc.to_string(),
                rule: "cpu".into(),
                severity: severity(w.last.max(w.mean), cfg.cpu_percent, 100.0),
                evidence,
                since,
                action,
                command,
                compose_patch,
            });
        }

        // Memory working set of the limit.
        let mut worst: Option<(Window, &ServiceStats)> = None;
        for x in containers.iter().filter(|x| x.memory_limit.is_some()) {
            let key = format!("service:{}:memory_limit_percent", x.container);
            if let Some(w) = h
                .series
                .get(&key)
                .and_then(|sr| window(sr, now, win, cfg.memory_percent))
                && worst.is_none_or(|(b, _)| w.mean > b.mean)
            {
                worst = Some((w, x));
            }
        }
        let id = format!("memory:{svc}");
        seen.insert(id.clone());
        if let Some(since) =
            hysteresis(state, &id, worst.map(|w| w.0), cfg, cfg.memory_percent, now)
            && let Some((w, x)) = worst
        {
            let limit = x.memory_limit.unwrap_or(0);
            let memory = vertical_memory(limit, svc, s, &host);
            out.push(Suggestion {
                id,
                service: svc.to_string(),
                rule: "memory".into(),
                severity: severity(w.last.max(w.mean), cfg.memory_percent, 100.0),
                evidence: format!(
                    "working set {:.0}% of its {} limit now; over {:.0}% in {} of {} samples of \
                     the last {win_label}, since {}",
                    w.last,
                    format_bytes(limit),
                    cfg.memory_percent,
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction {
                    kind: "vertical".into(),
                    cpus: None,
                    memory: Some(memory),
                    replicas: None,
                    maxmemory: None,
                    from: format!("memory {}", format_bytes(limit)),
                },
                command: update_command(containers, None, Some(memory)),
                compose_patch: compose_limits(s, svc, None, Some(memory)),
            });
        }
    }

    // Agents: latency against the SLO or the agent's own baseline, and growing queues.
    // Both are answered with gateway replicas.
    let gw_replicas = services.get("gateway").map(|c| c.len()).unwrap_or(0);
    for a in &s.agents {
        let name = a.agent.as_str();
        if let Some(sr) = h.series.get(&format!("agent:{name}:p95_seconds")) {
            let start = now - win;
            let older: Vec<f64> = sr
                .fine
                .iter()
                .filter(|p| p.0 <= start)
                .map(|p| p.1)
                .collect();
            let baseline = (older.len() >= 10).then(|| {
                let mut v = older.clone();
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            });
            // An idle agent's baseline can be 0: no baseline rule then.
            let baseline = baseline.filter(|b| *b > 0.0);
            let limit = match (cfg.latency_slo, baseline) {
                (Some(slo), Some(b)) => Some(slo.as_secs_f64().min(b * cfg.latency_factor)),
                (Some(slo), None) => Some(slo.as_secs_f64()),
                (None, Some(b)) => Some(b * cfg.latency_factor),
                _ => None,
            }
            .filter(|l| *l > 0.0);
            let id = format!("latency:{name}");
            seen.insert(id.clone());
            if let Some(limit) = limit {
                // In percent of the limit, so the margin means the same as elsewhere.
                let mut pct = Series::default();
                pct.fine = sr.fine.iter().map(|p| (p.0, p.1 / limit * 100.0)).collect();
                let w = window(&pct, now, win, 100.0);
                if let Some(since) = hysteresis(state, &id, w, cfg, 100.0, now)
                    && let Some(w) = w
                {
                    let (action, command, compose_patch) =
                        horizontal(&s.project, "gateway", gw_replicas, gw_replicas.max(1) + 1);
                    out.push(Suggestion {
                        id,
                        service: "gateway".into(),
                        rule: "latency".into(),
                        severity: severity(w.mean, 100.0, 200.0),
                        evidence: format!(
                            "agent {name}: P95 {:.0} ms against a limit of {:.0} ms ({}) in {} of \
                             {} samples of the last {win_label}, since {}",
                            w.last / 100.0 * limit * 1000.0,
                            limit * 1000.0,
                            match baseline {
                                Some(b) => format!(
                                    "{}x its baseline of {:.0} ms",
                                    cfg.latency_factor,
                                    b * 1000.0
                                ),
                                None => "the configured SLO".into(),
                            },
                            w.over,
                            w.samples,
                            clock(since)
                        ),
                        since,
                        action,
                        command,
                        compose_patch,
                    });
                }
            }
        }
        if let Some(sr) = h.series.get(&format!("agent:{name}:queued")) {
            let id = format!("queue:{name}");
            seen.insert(id.clone());
            let growing = slope(sr, now, win).filter(|(m, _)| *m > 0.0);
            let last = sr.last().unwrap_or(0.0);
            let active = state.active.get(&id).copied();
            let since = match (growing, active) {
                (Some(_), None) if last >= 1.0 => {
                    state.active.insert(id.clone(), now);
                    Some(now)
                }
                (_, Some(t)) if last >= 1.0 => Some(t),
                (_, Some(_)) => {
                    state.active.remove(&id);
                    None
                }
                _ => None,
            };
            if let Some(since) = since {
                let (action, command, compose_patch) =
                    horizontal(&s.project, "gateway", gw_replicas, gw_replicas.max(1) + 1);
                out.push(Suggestion {
                    id,
                    service: "gateway".into(),
                    rule: "queue".into(),
                    severity: if last >= 10.0 {
                        "critical".into()
                    } else {
                        "warning".into()
                    },
                    evidence: format!(
                        "agent {name}: {last:.0} queued, growing by {:.2}/s over the last \
                         {win_label}, since {}",
                        growing.map(|g| g.0).unwrap_or(0.0),
                        clock(since)
                    ),
                    since,
                    action,
                    command,
                    compose_patch,
                });
            }
        }
    }

    // GPU memory and Ollama models that do not fit.
    for g in &s.gpus {
        let id = format!("gpu-vram:{}", g.index);
        seen.insert(id.clone());
        let w = h
            .series
            .get(&format!("gpu:{}:vram_percent", g.index))
            .and_then(|sr| window(sr, now, win, cfg.vram_percent));
        if let Some(since) = hysteresis(state, &id, w, cfg, cfg.vram_percent, now)
            && let Some(w) = w
        {
            let owner = g
                .processes
                .iter()
                .max_by_key(|p| p.used_memory_bytes)
                .and_then(|p| p.service.clone())
                .unwrap_or_else(|| "gpu".into());
            out.push(Suggestion {
                id,
                service: owner,
                rule: "gpu-vram".into(),
                severity: severity(w.last, cfg.vram_percent, 100.0),
                evidence: format!(
                    "GPU {} ({}) VRAM {:.0}% used ({} of {}) in {} of {} samples of the last \
                     {win_label}, since {}",
                    g.index,
                    g.name,
                    w.last,
                    format_bytes(g.memory_used_bytes),
                    format_bytes(g.memory_total_bytes),
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction::host(format!("{} VRAM", format_bytes(g.memory_total_bytes))),
                command: "OLLAMA_MAX_LOADED_MODELS=1 (fewer resident models) or a GPU with more VRAM".into(),
                compose_patch: "services:\n  ollama:\n    environment:\n      OLLAMA_MAX_LOADED_MODELS: \"1\"\n".into(),
            });
        }
    }
    if let Some(o) = &s.ollama {
        for m in &o.loaded {
            if !m.partly_on_cpu {
                continue;
            }
            let name = m.name.as_str();
            let id = format!("ollama-offload:{name}");
            seen.insert(id.clone());
            let since = *state.active.entry(id.clone()).or_insert(now);
            // The agents this model answers, and which of them are getting slower: P95
            // rising over the window (by a fifth or more) or the latency rule holding.
            let mut slower = Vec::new();
            let agents: Vec<&str> = m.agents.iter().flatten().map(String::as_str).collect();
            for a in &agents {
                let sr = h.series.get(&format!("agent:{a}:p95_seconds"));
                let pts: Vec<f64> = sr
                    .map(|sr| {
                        sr.fine
                            .iter()
                            .filter(|p| p.0 > now - win)
                            .map(|p| p.1)
                            .collect()
                    })
                    .unwrap_or_default();
                let rising = sr
                    .and_then(|sr| slope(sr, now, win))
                    .is_some_and(|(m, _)| m > 0.0);
                let (first, last) = (pts.first().copied(), pts.last().copied());
                let grew = matches!((first, last), (Some(f), Some(l)) if f > 0.0 && l >= f * 1.2);
                if (rising && grew) || state.active.contains_key(&format!("latency:{a}")) {
                    slower.push(format!(
                        "{a} (P95 {} -> {})",
                        first
                            .map(|f| format!("{:.0} ms", f * 1000.0))
                            .unwrap_or("-".into()),
                        last.map(|l| format!("{:.0} ms", l * 1000.0))
                            .unwrap_or("-".into())
                    ));
                }
            }
            let serves = if agents.is_empty() {
                String::new()
            } else if slower.is_empty() {
                format!("; serves {}", agents.join(", "))
            } else {
                format!(
                    "; serves {}, slower over the last {win_label}: {}",
                    agents.join(", "),
                    slower.join(", ")
                )
            };
            out.push(Suggestion {
                id,
                service: "ollama".into(),
                rule: "ollama-offload".into(),
                severity: if slower.is_empty() { "warning" } else { "critical" }.into(),
                evidence: format!(
                    "model {name}: {} of {} in VRAM ({:.0}%): the rest runs on the CPU, \
                     several times slower{serves}; since {}",
                    format_bytes(m.size_vram_bytes),
                    format_bytes(m.size_bytes),
                    m.gpu_percent,
                    clock(since)
                ),
                since,
                action: ScaleAction::host(format!("{name} partly on the CPU")),
                command: format!(
                    "{}, keep fewer models resident (OLLAMA_MAX_LOADED_MODELS=1), or a GPU \
                     with more VRAM",
                    smaller_model(name, m.quantization.as_deref())
                ),
                compose_patch: if loaded_models(o) > 1 {
                    "services:\n  ollama:\n    environment:\n      OLLAMA_MAX_LOADED_MODELS: \"1\"\n".into()
                } else {
                    String::new()
                },
            });
        }
    }

    agent_errors::evaluate(h, s, cfg, state, now, &mut seen, &mut out);
    probes::evaluate(h, s, cfg, state, now, &host, &mut seen, &mut out);

    // The whole machine.
    for (rule, key, threshold) in [
        ("host-cpu", "host:cpu_percent", cfg.host_cpu_percent),
        (
            "host-memory",
            "host:memory_percent",
            cfg.host_memory_percent,
        ),
    ] {
        let id = format!("{rule}:host");
        seen.insert(id.clone());
        let w = h
            .series
            .get(key)
            .and_then(|sr| window(sr, now, win, threshold));
        if let Some(since) = hysteresis(state, &id, w, cfg, threshold, now)
            && let Some(w) = w
        {
            let row = capacity::next_above(host.cores as usize, host.memory);
            out.push(Suggestion {
                id,
                service: "host".into(),
                rule: rule.into(),
                severity: severity(w.last, threshold, 100.0),
                evidence: format!(
                    "the machine's {} is at {:.0}% now; over {threshold:.0}% in {} of {} samples \
                     of the last {win_label}, since {}",
                    if rule == "host-cpu" { "CPU" } else { "memory" },
                    w.last,
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction {
                    kind: "host".into(),
                    cpus: Some(f64::from(row.cpu_cores)),
                    memory: Some(u64::from(row.ram_gb) << 30),
                    replicas: None,
                    maxmemory: None,
                    from: format!("{} cores, {}", host.cores, format_bytes(host.memory)),
                },
                command: format!(
                    "move to a machine of the guide's next size: {}",
                    row.describe()
                ),
                compose_patch: String::new(),
            });
        }
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
