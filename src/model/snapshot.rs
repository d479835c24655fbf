//! The snapshot: everything the console and `osmen status` show, measured, in one
//! immutable value that the hub publishes. Sources that could not measure say why in
//! `sources` instead of leaving a zero behind.

use std::collections::BTreeMap;

use serde::Serialize;

/// The raw counters of one `docker stats` sample, engine-independent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RawStats {
    pub cpu_total_ns: u64,
    pub system_ns: u64,
    pub online_cpus: u32,
    pub mem_usage: u64,
    /// `total_inactive_file` (cgroup v1) or `inactive_file` (v2), when reported.
    pub mem_inactive_file: Option<u64>,
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceStats {
    pub service: String,
    pub container: String,
    pub container_id: String,
    /// The replica number (`com.docker.compose.container-number`); 0 for a service of
    /// the compose file that has no container yet.
    pub number: u32,
    /// The engine's state (created, running, restarting, exited, paused, dead), or
    /// `not created` for a service of the compose file without a container.
    pub state: String,
    /// The last run's exit code, for a container that is not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The kernel's OOM killer ended the last run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// When the container was created (RFC 3339); restarts are counted since then.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created: String,
    pub health: String,
    pub health_output: String,
    /// 100 = one core, as `docker stats`. None until two samples exist.
    pub cpu_percent: Option<f64>,
    /// Percent of the container's own CPU limit (None without a limit).
    pub cpu_limit_percent: Option<f64>,
    /// The CPU limit in cores, as configured (None: unlimited).
    pub cpu_limit: Option<f64>,
    /// The memory limit as configured (None: unlimited, the engine then reports the host's).
    pub memory_limit: Option<u64>,
    /// Working set: usage minus inactive file cache, as `docker stats`.
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub memory_percent: Option<f64>,
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub block_read_bytes_per_s: Option<f64>,
    pub block_write_bytes_per_s: Option<f64>,
    pub pids: Option<u64>,
    /// Restarts of this container: the engine's (restart policy) and osmen's
    /// supervisor's (from the journal), since the container was created.
    pub restarts: i64,
    pub started_at: String,
    /// Published ports, `127.0.0.1:6379->6379/tcp`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Seconds since the container started (running containers only).
    pub uptime_s: Option<f64>,
    /// VRAM held by the container's processes, from NVML.
    pub gpu_memory_bytes: Option<u64>,
    /// The service probe's last report (PostgreSQL, Redis, Qdrant, n8n, Langflow, Ollama):
    /// kind, address, status, last error and the figures it measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<super::probe::ProbeState>,
}

/// The state a service row has when its compose service has no container.
pub const NOT_CREATED: &str = "not created";

impl ServiceStats {
    /// What the STATE column reads: `running`, `exited (137)`, `oom (137)`, `dead`...
    pub fn state_label(&self) -> String {
        match self.state.as_str() {
            "exited" if self.oom_killed => format!("oom ({})", self.exit_code.unwrap_or(137)),
            "exited" => format!("exited ({})", self.exit_code.unwrap_or(0)),
            "dead" if self.oom_killed => "oom".into(),
            s => s.into(),
        }
    }

    /// The service name, with the replica number from the second replica on
    /// (`worker`, `worker#2`).
    pub fn display_name(&self) -> String {
        if self.number > 1 {
            format!("{}#{}", self.service, self.number)
        } else {
            self.service.clone()
        }
    }

    /// A row for a service of the compose file that has no container.
    pub fn not_created(service: &str) -> ServiceStats {
        ServiceStats {
            service: service.to_string(),
            state: NOT_CREATED.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostStats {
    pub cpu_percent: f64,
    pub per_core_percent: Vec<f64>,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// 1, 5 and 15 minute load averages, when the kernel reports them.
    pub load: Option<[f64; 3]>,
    pub disks: Vec<DiskStats>,
    pub net_rx_bytes_per_s: f64,
    pub net_tx_bytes_per_s: f64,
    pub osmen_cpu_percent: f64,
    pub osmen_memory_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskStats {
    pub mount: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuProcess {
    pub pid: u32,
    pub used_memory_bytes: u64,
    pub container: Option<String>,
    pub service: Option<String>,
    /// For an Ollama runner: the model file it serves (`sha256-...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_blob: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuStats {
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub gpu_util_percent: Option<u32>,
    pub memory_util_percent: Option<u32>,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    pub power_limit_w: Option<f64>,
    pub fan_percent: Option<u32>,
    pub processes: Vec<GpuProcess>,
}

/// A source's health: `ok`, or `unavailable: <reason>` / `error: <reason>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub status: String,
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch of the last good sample.
    pub last_sample: Option<f64>,
    /// When the source stopped answering (the first failure of the current run of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<f64>,
}

/// P50/P95/P99 of one latency series of a scraped target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySeries {
    pub family: String,
    pub labels: String,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// `summary` (the target's own quantiles), `histogram, last 60 s`, or `histogram,
    /// since start` (first scrape, or nothing observed in the window).
    pub source: String,
}

/// One Prometheus target as last scraped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScrapeTarget {
    pub url: String,
    /// For a replica of a scaled service: the service (its merged row has this too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_of: Option<String>,
    /// The replica's container, or "merged (N replicas)" for the merged row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub up: bool,
    pub error: Option<String>,
    pub families: usize,
    pub samples: usize,
    pub latencies: Vec<LatencySeries>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Seconds since the Unix epoch.
    pub taken_at: f64,
    pub project: String,
    pub host: Option<HostStats>,
    pub services: Vec<ServiceStats>,
    pub gpus: Vec<GpuStats>,
    pub ollama: Option<super::ollama::Ollama>,
    pub agents: Vec<super::agent::AgentRow>,
    /// Per-agent figures of each replica of a scaled gateway (`service/agent@container`,
    /// with `group_agent` naming the merged row in `agents`), from its own /metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_agents: Vec<super::agent::AgentRow>,
    pub scrapes: Vec<ScrapeTarget>,
    pub sources: BTreeMap<String, SourceHealth>,
    /// Journal entries, engine events and console messages, oldest first, bounded;
    /// shared between snapshots (they change far less often than the figures).
    #[serde(skip)]
    pub events: std::sync::Arc<Vec<super::console::EventLine>>,
    /// Recent log lines of the stack's containers (the console follows them).
    #[serde(skip)]
    pub logs: super::console::LogRing,
    pub activity: super::console::Activity,
    /// The advisor's current suggestions.
    pub suggestions: Vec<super::advice::Suggestion>,
    /// Per compose service, how its file writes limits and command (for the patches).
    #[serde(skip)]
    pub compose_forms: BTreeMap<String, super::advice::ComposeForm>,
    /// The last minute of a few series (key as in the history), for sparklines.
    #[serde(skip)]
    pub trends: std::sync::Arc<BTreeMap<String, Vec<f64>>>,
    /// One line per `[[fleet]]` host of the settings file (none without such entries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fleet: Vec<super::fleet::FleetRow>,
}

/// Events kept in the snapshot.
pub const MAX_EVENTS: usize = 500;
/// Points per trend series.
pub const TREND_POINTS: usize = 60;
