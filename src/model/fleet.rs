//! The fleet: other hosts' stacks an on-call operator watches beside this one. The
//! `[[fleet]]` entries of the settings file (where each engine is and which project) and
//! the row per host the fleet collector measures and the hub publishes in the snapshot.

use std::path::PathBuf;

use serde::Serialize;

/// Where a fleet host's engine is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetEngine {
    /// An engine address: `unix://`, `tcp://` or `ssh://`.
    Host(String),
    /// A Docker context of the context store.
    Context(String),
    /// This machine's own engine, as osmen itself connects (`--context`, DOCKER_HOST),
    /// shown as this address: the console's own stack, the fleet list's first line.
    Here(String),
}

/// Which project of that engine: named, or the project name of a compose file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetProject {
    Name(String),
    /// The compose file, resolved against the settings file's folder.
    Compose(PathBuf),
}

/// One `[[fleet]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetEntry {
    pub name: String,
    pub engine: FleetEngine,
    pub project: FleetProject,
}

impl FleetEntry {
    /// The engine as the operator wrote it (`tcp://...` or `context NAME`).
    pub fn engine_shown(&self) -> String {
        match &self.engine {
            FleetEngine::Host(h) => h.clone(),
            FleetEngine::Context(c) => format!("context {c}"),
            FleetEngine::Here(h) => h.clone(),
        }
    }
}

/// One host's line: what its engine says about its project's containers. `None` is
/// "not known here" (shown as `-`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetRow {
    pub name: String,
    /// The engine address (or `context NAME`) as configured.
    pub engine: String,
    /// The compose project name (empty until it is known).
    pub project: String,
    /// The engine is on this machine (a unix socket): NVML's figures are its own.
    pub local: bool,
    /// The console's own stack (its first fleet line, where Enter switches back).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub home: bool,
    pub running: usize,
    pub total: usize,
    pub unhealthy: usize,
    /// The project's containers' restart counts, summed.
    pub restarts: i64,
    /// The engine's host: CPUs (`NCPU`) and memory (`MemTotal`) of `docker info`.
    pub host_cpus: Option<u32>,
    pub host_memory_total_bytes: Option<u64>,
    /// The project's containers' CPU (100 = one core) and working set, summed over
    /// their `docker stats`: what this stack uses of that host.
    pub cpu_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    /// NVML's memory used and total, for the host that is this machine.
    pub gpu_memory_used_bytes: Option<u64>,
    pub gpu_memory_total_bytes: Option<u64>,
    /// For this console's own stack: agents with failed requests since the last scrape,
    /// and the advisor's suggestions.
    pub agents_failing: Option<usize>,
    pub advice: Option<usize>,
    /// When the engine was last answered (seconds since the Unix epoch).
    pub last_ok: Option<f64>,
    /// Why the engine cannot be reached, and since when (seconds since the Unix epoch).
    pub error: Option<String>,
    pub unreachable_since: Option<f64>,
    /// The project's containers as last answered, by service and replica (the Overview's
    /// Enter lists them, read-only).
    pub services: Vec<FleetService>,
}

/// One container of a fleet host's project.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetService {
    pub service: String,
    pub container: String,
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or empty without a health check.
    pub health: String,
    pub restarts: i64,
    /// CPU (100 = one core; from the second sample on) and working set.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

impl FleetService {
    /// `web  web-1  running healthy  cpu 1.5%  mem 20MiB  restarts 0`.
    pub fn line(&self) -> String {
        let state = if self.health.is_empty() {
            self.state.clone()
        } else {
            format!("{} {}", self.state, self.health)
        };
        let cpu = self
            .cpu_percent
            .map(|c| format!("{c:.1}%"))
            .unwrap_or_else(|| "-".into());
        let mem = self
            .memory_bytes
            .map(super::units::format_bytes)
            .unwrap_or_else(|| "-".into());
        format!(
            "{:<12} {:<28} {:<18} cpu {cpu:>6}  mem {mem:>8}  restarts {}",
            self.service, self.container, state, self.restarts
        )
    }
}

impl FleetRow {
    /// `unreachable since HH:MM:SS: reason` (UTC), when the host cannot be reached.
    pub fn unreachable(&self) -> Option<String> {
        let e = self.error.as_ref()?;
        let since = self.unreachable_since.map(clock).unwrap_or_default();
        Some(format!("unreachable since {since}: {e}"))
    }

    /// CPU of the host's CPUs (`12.5% of 8`), or `-`.
    pub fn cpu_shown(&self) -> String {
        match (self.cpu_percent, self.host_cpus) {
            (Some(c), Some(n)) => format!("{c:.1}% of {n}"),
            (Some(c), None) => format!("{c:.1}%"),
            _ => "-".into(),
        }
    }

    /// Memory used of the host's memory (`1GiB/15.6GiB`), or `-`.
    pub fn memory_shown(&self) -> String {
        use super::units::format_bytes;
        match (self.memory_used_bytes, self.host_memory_total_bytes) {
            (Some(u), Some(t)) => format!("{}/{}", format_bytes(u), format_bytes(t)),
            (Some(u), None) => format_bytes(u),
            _ => "-".into(),
        }
    }

    /// GPU memory used of total, or `-` (not this machine, or no GPU).
    pub fn gpu_shown(&self) -> String {
        use super::units::format_bytes;
        match (self.gpu_memory_used_bytes, self.gpu_memory_total_bytes) {
            (Some(u), Some(t)) => format!("{}/{}", format_bytes(u), format_bytes(t)),
            _ => "-".into(),
        }
    }

    /// The line's cells, in the order of [`FLEET_COLUMNS`].
    pub fn cells(&self) -> [String; 10] {
        let opt = |v: Option<usize>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        [
            self.name.clone(),
            if self.project.is_empty() {
                "-".into()
            } else {
                self.project.clone()
            },
            format!("{}/{}", self.running, self.total),
            self.unhealthy.to_string(),
            self.restarts.to_string(),
            self.cpu_shown(),
            self.memory_shown(),
            self.gpu_shown(),
            opt(self.agents_failing),
            opt(self.advice),
        ]
    }
}

/// The headings of a fleet line's cells.
pub const FLEET_COLUMNS: [&str; 10] = [
    "HOST",
    "PROJECT",
    "RUNNING",
    "UNHEALTHY",
    "RESTARTS",
    "CPU",
    "MEMORY",
    "GPU MEM",
    "AGENTS FAILING",
    "ADVICE",
];

/// The fleet as aligned text lines, headings first: a line per host, or its name and
/// why it cannot be reached (`status --fleet` and the Overview both show these).
pub fn table_lines(rows: &[FleetRow]) -> Vec<String> {
    let cells: Vec<[String; 10]> = rows.iter().map(|r| r.cells()).collect();
    let mut w = FLEET_COLUMNS.map(str::len);
    for c in &cells {
        for (i, x) in c.iter().enumerate() {
            w[i] = w[i].max(x.chars().count());
        }
    }
    let line = |c: &[String]| {
        let l = c
            .iter()
            .enumerate()
            .map(|(i, x)| format!("{x:<0$}", w[i]))
            .collect::<Vec<_>>()
            .join("  ");
        l.trim_end().to_string()
    };
    let mut out = vec![line(&FLEET_COLUMNS.map(String::from))];
    for (r, c) in rows.iter().zip(&cells) {
        out.push(match r.unreachable() {
            Some(u) => format!("{:<1$}  {u}", r.name, w[0]),
            None => line(c),
        });
    }
    out
}

/// `HH:MM:SS` (UTC) of seconds since the Unix epoch.
pub fn clock(t: f64) -> String {
    let s = super::units::format_rfc3339(t.max(0.0) as u64, 0);
    s.get(11..19).unwrap_or(&s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_host_says_since_when() {
        let r = FleetRow {
            name: "b".into(),
            error: Some("connection refused".into()),
            unreachable_since: Some(3661.0),
            ..FleetRow::default()
        };
        assert_eq!(
            r.unreachable().unwrap(),
            "unreachable since 01:01:01: connection refused"
        );
        let cells = r.cells();
        assert_eq!(cells[1], "-");
        assert_eq!(cells[5], "-");
        assert_eq!(cells[9], "-");
    }

    #[test]
    fn figures_show_with_the_hosts_capacity() {
        let r = FleetRow {
            running: 2,
            total: 3,
            cpu_percent: Some(12.5),
            host_cpus: Some(8),
            memory_used_bytes: Some(1 << 30),
            host_memory_total_bytes: Some(16 << 30),
            advice: Some(1),
            ..FleetRow::default()
        };
        let c = r.cells();
        assert_eq!(c[2], "2/3");
        assert_eq!(c[5], "12.5% of 8");
        assert_eq!(c[6], "1GiB/16GiB");
        assert_eq!(c[9], "1");
        assert!(r.unreachable().is_none());
        let far = FleetRow {
            name: "far-away".into(),
            error: Some("refused".into()),
            unreachable_since: Some(0.0),
            ..FleetRow::default()
        };
        let t = table_lines(&[r, far]);
        assert!(t[0].starts_with("HOST      PROJECT  RUNNING"), "{t:?}");
        assert!(t[1].starts_with("          -        2/3"), "{t:?}");
        assert_eq!(t[2], "far-away  unreachable since 00:00:00: refused");
    }
}
