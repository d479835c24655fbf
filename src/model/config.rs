//! osmen's own settings (`--config FILE`, default `config/osmen.toml` beside the compose
//! file): how patiently the supervisor waits and how it restarts. Every key is optional.

use std::time::Duration;

use serde::Deserialize;

use super::units::parse_duration;

#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorConfig {
    /// How long `up` waits for a `service_healthy` dependency before giving up.
    pub health_timeout: Duration,
    /// Grace period between SIGTERM and SIGKILL when a service sets none.
    pub stop_grace: Duration,
    /// First delay before restarting a crashed container; doubles on each restart.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// This many restarts inside `crash_loop_window` is a crash loop: osmen holds.
    pub crash_loop_restarts: u32,
    pub crash_loop_window: Duration,
    /// Entries kept in the journal before the oldest file is rotated away.
    pub journal_max_entries: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            health_timeout: Duration::from_secs(180),
            stop_grace: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            crash_loop_restarts: 5,
            crash_loop_window: Duration::from_secs(300),
            journal_max_entries: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub supervisor: SupervisorConfig,
    /// Extra Prometheus targets for `status` and the console.
    pub scrape: Vec<String>,
    pub console: ConsoleConfig,
    pub advisor: AdvisorConfig,
    /// `[[fleet]]`: the other hosts' stacks the Overview lists.
    pub fleet: Vec<super::fleet::FleetEntry>,
}

/// `[advisor]`: the guide's thresholds by default. A rule fires when its metric is over
/// the threshold in `sustain` of the samples of the last `window`, and clears only after
/// a whole window below the threshold minus `margin` (points of percent).
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisorConfig {
    pub window: Duration,
    pub sustain: f64,
    pub margin: f64,
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// An agent's P95 above this is degraded (none: only the baseline rule).
    pub latency_slo: Option<Duration>,
    /// An agent's P95 above this times its own baseline is degraded.
    pub latency_factor: f64,
    pub vram_percent: f64,
    pub host_cpu_percent: f64,
    pub host_memory_percent: f64,
    /// An agent whose failed requests are over this share (percent) is advised on.
    pub agent_error_percent: f64,
    /// Services that may run as several replicas (the others are scaled vertically).
    pub stateless: Vec<String>,
}

impl Default for AdvisorConfig {
    fn default() -> Self {
        AdvisorConfig {
            window: Duration::from_secs(60),
            sustain: 0.8,
            margin: 10.0,
            cpu_percent: 70.0,
            memory_percent: 80.0,
            latency_slo: None,
            latency_factor: 1.5,
            vram_percent: 90.0,
            host_cpu_percent: 70.0,
            host_memory_percent: 80.0,
            agent_error_percent: 5.0,
            stateless: vec!["gateway".into()],
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdvisor {
    window: Option<String>,
    sustain: Option<f64>,
    margin: Option<f64>,
    cpu_percent: Option<f64>,
    memory_percent: Option<f64>,
    latency_slo: Option<String>,
    latency_factor: Option<f64>,
    vram_percent: Option<f64>,
    host_cpu_percent: Option<f64>,
    host_memory_percent: Option<f64>,
    agent_error_percent: Option<f64>,
    stateless: Option<Vec<String>>,
}

/// `[console]`: mouse capture (off, so the terminal's own selection works) and key
/// overrides, `action = "key"` (the console checks the names when it starts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsoleConfig {
    pub mouse: bool,
    pub keys: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    #[serde(default)]
    mouse: bool,
    #[serde(default)]
    keys: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    supervisor: RawSupervisor,
    #[serde(default)]
    collect: RawCollect,
    #[serde(default)]
    console: RawConsole,
    #[serde(default)]
    advisor: RawAdvisor,
    #[serde(default)]
    fleet: Vec<RawFleet>,
}

/// One `[[fleet]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    name: Option<String>,
    host: Option<String>,
    context: Option<String>,
    compose: Option<String>,
    project: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    #[serde(default)]
    scrape: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSupervisor {
    health_timeout: Option<String>,
    stop_grace: Option<String>,
    backoff_initial: Option<String>,
    backoff_max: Option<String>,
    crash_loop_restarts: Option<u32>,
    crash_loop_window: Option<String>,
    journal_max_entries: Option<usize>,
}

impl Config {
    /// Parses the TOML text of `file` (named in messages).
    pub fn parse(text: &str, file: &str) -> Result<Config, String> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(":{line}")
                })
                .unwrap_or_default();
            format!("{file}{at}: {}", e.message())
        })?;
        let mut c = Config::default();
        supervisor(file, raw.supervisor, &mut c.supervisor)?;
        for u in &raw.collect.scrape {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "{file}: collect.scrape: {u:?} is not an http(s) URL"
                ));
            }
        }
        c.scrape = raw.collect.scrape;
        advisor(file, raw.advisor, &mut c.advisor)?;
        c.console = ConsoleConfig {
            mouse: raw.console.mouse,
            keys: raw.console.keys,
        };
        for (i, f) in raw.fleet.into_iter().enumerate() {
            let entry = fleet(file, i, f)?;
            if c.fleet.iter().any(|e| e.name == entry.name) {
                return Err(format!(
                    "{file}: fleet entry {:?}: name: used twice; give each host its own name",
                    entry.name
                ));
            }
            c.fleet.push(entry);
        }
        Ok(c)
    }
}

/// The `i`th `[[fleet]]` entry (from 0): a name, one of `host` and `context`, one of
/// `compose` (relative to the settings file's folder) and `project`.
fn fleet(file: &str, i: usize, f: RawFleet) -> Result<super::fleet::FleetEntry, String> {
    use super::fleet::{FleetEngine, FleetEntry, FleetProject};
    let n = i + 1;
    let name = match f.name {
        Some(n) if !n.trim().is_empty() => n,
        _ => {
            return Err(format!(
                "{file}: fleet entry {n}: name: missing; every [[fleet]] entry needs a name"
            ));
        }
    };
    let at = format!("{file}: fleet entry {name:?}");
    let engine = match (f.host, f.context) {
        (Some(h), None) => {
            if !["unix://", "tcp://", "ssh://"]
                .iter()
                .any(|p| h.starts_with(p) && h.len() > p.len())
            {
                return Err(format!(
                    "{at}: host: {h:?} is not an engine address; use unix:///path/docker.sock, \
                     tcp://HOST:PORT or ssh://USER@HOST"
                ));
            }
            FleetEngine::Host(h)
        }
        (None, Some(c)) if !c.trim().is_empty() => FleetEngine::Context(c),
        (None, Some(_)) => return Err(format!("{at}: context: empty; name a Docker context")),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: host and context: both set; keep one of them"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{at}: host: missing; set host = \"tcp://HOST:PORT\" (or unix://, ssh://) or \
                 context = \"NAME\""
            ));
        }
    };
    let project = match (f.compose, f.project) {
        (Some(c), None) => {
            let dir = std::path::Path::new(file)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            FleetProject::Compose(dir.join(c))
        }
        (None, Some(p)) if !p.trim().is_empty() => FleetProject::Name(p),
        (None, Some(_)) => return Err(format!("{at}: project: empty; name the project")),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: compose and project: both set; keep one of them"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{at}: compose: missing; set compose = \"PATH\" (relative to this file) or \
                 project = \"NAME\""
            ));
        }
    };
    Ok(FleetEntry {
        name,
        engine,
        project,
    })
}

/// `[supervisor]`: durations and bounds over the defaults in `s`.
fn supervisor(file: &str, r: RawSupervisor, s: &mut SupervisorConfig) -> Result<(), String> {
    let dur = |key: &str, v: Option<String>, slot: &mut Duration| -> Result<(), String> {
        if let Some(v) = v {
            *slot = parse_duration(&v).map_err(|m| format!("{file}: supervisor.{key}: {m}"))?;
        }
        Ok(())
    };
    dur("health_timeout", r.health_timeout, &mut s.health_timeout)?;
    dur("stop_grace", r.stop_grace, &mut s.stop_grace)?;
    dur("backoff_initial", r.backoff_initial, &mut s.backoff_initial)?;
    dur("backoff_max", r.backoff_max, &mut s.backoff_max)?;
    dur(
        "crash_loop_window",
        r.crash_loop_window,
        &mut s.crash_loop_window,
    )?;
    if let Some(n) = r.crash_loop_restarts {
        if n == 0 {
            return Err(format!(
                "{file}: supervisor.crash_loop_restarts: must be at least 1"
            ));
        }
        s.crash_loop_restarts = n;
    }
    if let Some(n) = r.journal_max_entries {
        s.journal_max_entries = n.max(10);
    }
    Ok(())
}

/// `[advisor]`: the window, the latency SLO and the thresholds, each checked against its
/// range, over the defaults in `adv`.
fn advisor(file: &str, a: RawAdvisor, adv: &mut AdvisorConfig) -> Result<(), String> {
    if let Some(w) = a.window {
        adv.window = parse_duration(&w).map_err(|m| format!("{file}: advisor.window: {m}"))?;
        if adv.window < Duration::from_secs(2) {
            return Err(format!(
                "{file}: advisor.window: {w:?} is too short; use 2s or more"
            ));
        }
    }
    if let Some(slo) = a.latency_slo {
        adv.latency_slo =
            Some(parse_duration(&slo).map_err(|m| format!("{file}: advisor.latency_slo: {m}"))?);
    }
    let frac = |key: &str, v: Option<f64>, lo: f64, hi: f64, slot: &mut f64| {
        if let Some(v) = v {
            if !(lo..=hi).contains(&v) {
                return Err(format!(
                    "{file}: advisor.{key}: {v} is out of range; use a value from {lo} to {hi}"
                ));
            }
            *slot = v;
        }
        Ok(())
    };
    frac("sustain", a.sustain, 0.01, 1.0, &mut adv.sustain)?;
    frac("margin", a.margin, 0.0, 50.0, &mut adv.margin)?;
    frac(
        "cpu_percent",
        a.cpu_percent,
        1.0,
        1000.0,
        &mut adv.cpu_percent,
    )?;
    frac(
        "memory_percent",
        a.memory_percent,
        1.0,
        100.0,
        &mut adv.memory_percent,
    )?;
    frac(
        "latency_factor",
        a.latency_factor,
        1.0,
        100.0,
        &mut adv.latency_factor,
    )?;
    frac(
        "vram_percent",
        a.vram_percent,
        1.0,
        100.0,
        &mut adv.vram_percent,
    )?;
    frac(
        "host_cpu_percent",
        a.host_cpu_percent,
        1.0,
        100.0,
        &mut adv.host_cpu_percent,
    )?;
    frac(
        "host_memory_percent",
        a.host_memory_percent,
        1.0,
        100.0,
        &mut adv.host_memory_percent,
    )?;
    frac(
        "agent_error_percent",
        a.agent_error_percent,
        0.1,
        100.0,
        &mut adv.agent_error_percent,
    )?;
    if let Some(st) = a.stateless {
        adv.stateless = st;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("[supervisor]\nbackoff_initial = \"200ms\"\n", "x.toml").unwrap();
        assert_eq!(c.supervisor.backoff_initial, Duration::from_millis(200));
        assert_eq!(c.supervisor.crash_loop_restarts, 5);
    }

    #[test]
    fn console_section_and_the_shipped_file_parse() {
        let c = Config::parse(
            "[console]\nmouse = true\n[console.keys]\nrestart = \"R\"\n",
            "x.toml",
        )
        .unwrap();
        assert!(c.console.mouse);
        assert_eq!(c.console.keys["restart"], "R");
        let shipped = include_str!("../../config/osmen.toml");
        let c = Config::parse(shipped, "config/osmen.toml").unwrap();
        assert!(!c.console.mouse && c.console.keys.is_empty());
        let e = Config::parse("[console]\nmouse = \"yes\"\n", "osmen.toml").unwrap_err();
        assert!(e.starts_with("osmen.toml:2:"), "{e}");
    }

    #[test]
    fn fleet_entries_and_their_errors() {
        let c = Config::parse(
            "[[fleet]]\nname = \"a\"\nhost = \"tcp://10.0.0.2:2375\"\ncompose = \"../a.yml\"\n\
             [[fleet]]\nname = \"b\"\ncontext = \"prod\"\nproject = \"shop\"\n",
            "/etc/osmen/osmen.toml",
        )
        .unwrap();
        use crate::model::fleet::{FleetEngine, FleetProject};
        assert_eq!(c.fleet.len(), 2);
        assert_eq!(
            c.fleet[0].engine,
            FleetEngine::Host("tcp://10.0.0.2:2375".into())
        );
        assert_eq!(
            c.fleet[0].project,
            FleetProject::Compose("/etc/osmen/../a.yml".into())
        );
        assert_eq!(c.fleet[1].engine, FleetEngine::Context("prod".into()));
        assert_eq!(c.fleet[1].project, FleetProject::Name("shop".into()));
        let bad = |t: &str| Config::parse(t, "osmen.toml").unwrap_err();
        let e = bad("[[fleet]]\nname = \"a\"\nhost = \"10.0.0.2\"\nproject = \"p\"\n");
        assert!(
            e.starts_with("osmen.toml: fleet entry \"a\": host: \"10.0.0.2\""),
            "{e}"
        );
        let e = bad("[[fleet]]\nhost = \"tcp://h:1\"\nproject = \"p\"\n");
        assert_eq!(
            e,
            "osmen.toml: fleet entry 1: name: missing; every [[fleet]] entry needs a name"
        );
        let e = bad("[[fleet]]\nname = \"a\"\nhost = \"tcp://h:1\"\n");
        assert!(e.contains("fleet entry \"a\": compose: missing"), "{e}");
        let e = bad(
            "[[fleet]]\nname = \"a\"\nhost = \"tcp://h:1\"\ncontext = \"x\"\nproject = \"p\"\n",
        );
        assert!(e.contains("host and context: both set"), "{e}");
        let e = bad("[[fleet]]\nname = \"a\"\nhots = \"tcp://h:1\"\n");
        assert!(e.starts_with("osmen.toml:3:") && e.contains("hots"), "{e}");
        let e = bad(
            "[[fleet]]\nname = \"a\"\nproject = \"p\"\nhost = \"tcp://h:1\"\n\
             [[fleet]]\nname = \"a\"\nproject = \"q\"\nhost = \"tcp://h:2\"\n",
        );
        assert!(e.contains("name: used twice"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = Config::parse("[supervisor]\nbackof_initial = \"1s\"\n", "osmen.toml").unwrap_err();
        assert!(e.starts_with("osmen.toml:2:"), "{e}");
        assert!(e.contains("backof_initial"), "{e}");
        let e = Config::parse("[supervisor]\nstop_grace = \"10\"\n", "osmen.toml").unwrap_err();
        assert!(
            e.contains("supervisor.stop_grace") && e.contains("missing unit"),
            "{e}"
        );
    }
}
