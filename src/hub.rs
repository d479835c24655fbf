//! The hub: folds samples from every source into one immutable snapshot, keeps bounded
//! history, and publishes `Arc<Snapshot>` on a watch channel (notify, then let readers
//! pull). The recent hour is persisted under `runtime/` for whoever attaches later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::advisor::AdvisorState;
use crate::collect::gpu;
use crate::model::config::AdvisorConfig;
use crate::model::console::{Activity, EventLine, LogLine};
use crate::model::history::History;
use crate::model::snapshot::{
    GpuStats, HostStats, MAX_EVENTS, ServiceStats, Snapshot, SourceHealth, TREND_POINTS,
};

pub enum Update {
    Host(HostStats),
    Services(Vec<ServiceStats>),
    Gpus(Vec<GpuStats>),
    Ollama(crate::model::ollama::Ollama),
    Agents(Vec<crate::model::agent::AgentRow>),
    Scrapes(Vec<crate::model::snapshot::ScrapeTarget>),
    ReplicaAgents(Vec<crate::model::agent::AgentRow>),
    /// A source's health: Ok(()) after a good sample, Err(reason) otherwise.
    Source(&'static str, Result<(), String>),
    Events(Vec<EventLine>),
    Logs(Vec<LogLine>),
    /// One service probe's sample (or why it failed).
    Probe(Box<crate::model::probe::ProbeReport>),
    /// A change to what the stack is doing (up running, blocked services, commands).
    Activity(Box<dyn FnOnce(&mut Activity) + Send>),
    /// New journal entries: shown as events; the supervisor's restarts count in RST.
    Journal(Vec<crate::model::journal::JournalEntry>),
    /// The services the compose file declares now (active profiles): one without a
    /// container shows as `not created`.
    Declared(Vec<String>),
    /// How the compose file writes each service's limits and command (the advisor's
    /// patches edit those keys).
    ComposeForms(std::collections::BTreeMap<String, crate::model::advice::ComposeForm>),
}

pub const PERSIST_EVERY: Duration = Duration::from_secs(60);
pub const ADVISE_EVERY: Duration = Duration::from_secs(1);

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Per agent: (time, requests, errors, CPU seconds) at the last scrape.
type AgentCounters = std::collections::BTreeMap<String, (f64, f64, f64, f64)>;

pub struct Hub {
    pub snapshot: Snapshot,
    pub history: History,
    /// GPU processes as NVML gave them, attributed again when the container set changes.
    raw_gpus: Vec<GpuStats>,
    advisor: Option<(AdvisorConfig, AdvisorState)>,
    /// Container -> (CPU limit, memory limit) at the last sample.
    limits: std::collections::HashMap<String, (Option<f64>, Option<u64>)>,
    /// Per agent: (time, requests, errors, CPU seconds) at the previous scrape.
    agent_counters: AgentCounters,
    /// The replica rows' own, apart: each update replaces its map whole.
    replica_counters: AgentCounters,
    history_file: Option<PathBuf>,
    /// Service -> its probe's last report (as `ServiceStats::probe` shows it).
    probes: std::collections::BTreeMap<String, crate::model::probe::ProbeState>,
    /// The container rows as the collector sent them, before restarts and declared
    /// services are joined.
    raw_services: Vec<ServiceStats>,
    /// The compose file's services, when known.
    declared: Option<Vec<String>>,
    /// Whether the container collector has sent a list.
    services_listed: bool,
    /// Container name -> times the supervisor restarted it (from the journal).
    supervisor_restarts: SupervisorRestarts,
}

/// Container name -> times (seconds since the epoch) the supervisor restarted it; bounded.
#[derive(Default)]
pub struct SupervisorRestarts {
    times: std::collections::BTreeMap<String, std::collections::VecDeque<f64>>,
}

impl SupervisorRestarts {
    /// At most this many containers, and this many restarts each, are remembered.
    pub const CONTAINERS: usize = 512;
    pub const PER_CONTAINER: usize = 1000;

    /// Notes a journal entry; only the supervisor's own restarts count (`restart` with
    /// `NAME: after backoff`), not an operator's restart.
    pub fn note(&mut self, e: &crate::model::journal::JournalEntry) {
        if e.action != "restart" {
            return;
        }
        let Some((name, why)) = e.reason.split_once(": ") else {
            return;
        };
        if name == "operator asked" || !why.starts_with("after backoff") {
            return;
        }
        let Some(t) = crate::model::units::parse_rfc3339_utc(&e.time) else {
            return;
        };
        if !self.times.contains_key(name) && self.times.len() >= Self::CONTAINERS {
            self.times.pop_first();
        }
        let v = self.times.entry(name.to_string()).or_default();
        if v.len() >= Self::PER_CONTAINER {
            v.pop_front();
        }
        v.push_back(t);
    }

    /// Restarts of `container` since it was created (`created`, RFC 3339; all when
    /// unknown).
    pub fn since(&self, container: &str, created: &str) -> i64 {
        let from = crate::model::units::parse_rfc3339_utc(created).unwrap_or(0.0);
        self.times
            .get(container)
            .map(|v| v.iter().filter(|t| **t >= from).count() as i64)
            .unwrap_or(0)
    }
}

/// Probe figures kept in the history (for the advisor's windows): key, JSON pointer.
const PROBE_SERIES: [(&str, &str); 5] = [
    ("connections_percent", "/connections/percent"),
    ("transactions_per_s", "/transactions_per_s"),
    ("evictions_per_s", "/evictions_per_s"),
    ("memory_percent", "/memory_percent"),
    ("search_p95_ms", "/search_p95_ms"),
];

/// `HH:MM:SS UTC` of a time in seconds since the epoch.
fn clock(t: f64) -> String {
    let s = crate::model::units::format_rfc3339(t as u64, 0);
    format!("{} UTC", s.get(11..19).unwrap_or(&s))
}

fn pointer_f64(v: &serde_json::Value, p: &str) -> Option<f64> {
    v.pointer(p).and_then(serde_json::Value::as_f64)
}

impl Hub {
    pub fn new(project: &str, runtime_dir: Option<PathBuf>) -> Hub {
        let history_file = runtime_dir.map(|d| d.join("history.json"));
        let history = history_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Hub {
            snapshot: Snapshot {
                project: project.to_string(),
                ..Default::default()
            },
            history,
            raw_gpus: Vec::new(),
            agent_counters: Default::default(),
            replica_counters: Default::default(),
            advisor: None,
            limits: Default::default(),
            history_file,
            probes: Default::default(),
            raw_services: Vec::new(),
            declared: None,
            services_listed: false,
            supervisor_restarts: Default::default(),
        }
    }

    /// The service rows as shown: the containers with the supervisor's restarts added,
    /// then each declared service that has no container, as `not created`.
    fn publish_services(&mut self) {
        let mut rows = self.raw_services.clone();
        for x in &mut rows {
            x.restarts += self.supervisor_restarts.since(&x.container, &x.created);
        }
        // Only against a container list: without one (no engine) nothing is known to
        // be missing.
        if let Some(declared) = self.declared.as_ref().filter(|_| self.services_listed) {
            for name in declared {
                if !rows.iter().any(|x| &x.service == name) {
                    rows.push(ServiceStats::not_created(name));
                }
            }
        }
        self.snapshot.services = rows;
        self.join_probes();
        self.attribute_gpus();
        self.join_agents();
    }

    pub fn apply(&mut self, u: Update) {
        let t = now_secs();
        self.snapshot.taken_at = t;
        match u {
            Update::Host(h) => {
                self.history.push("host:cpu_percent", t, h.cpu_percent);
                self.history
                    .push("host:memory_used_bytes", t, h.memory_used_bytes as f64);
                if h.memory_total_bytes > 0 {
                    let p = h.memory_used_bytes as f64 / h.memory_total_bytes as f64 * 100.0;
                    self.history.push("host:memory_percent", t, p);
                }
                self.snapshot.host = Some(h);
            }
            Update::Services(mut s) => {
                for x in &mut s {
                    if x.state == "running" {
                        x.uptime_s = crate::model::units::parse_rfc3339_utc(&x.started_at)
                            .map(|st| (t - st).max(0.0));
                    }
                    if let Some(c) = x.cpu_percent {
                        self.history
                            .push(&format!("service:{}:cpu_percent", x.container), t, c);
                    }
                    // A changed limit (an applied suggestion) starts the shares afresh:
                    // samples against the old limit say nothing about the new one.
                    let limits = (x.cpu_limit, x.memory_limit);
                    if self
                        .limits
                        .insert(x.container.clone(), limits)
                        .is_some_and(|l| l != limits)
                    {
                        for k in ["cpu_limit_percent", "memory_limit_percent"] {
                            self.history
                                .series
                                .remove(&format!("service:{}:{k}", x.container));
                        }
                    }
                    if let Some(c) = x.cpu_limit_percent {
                        let key = format!("service:{}:cpu_limit_percent", x.container);
                        self.history.push(&key, t, c);
                    }
                    if let (Some(m), Some(l)) = (x.memory_bytes, x.memory_limit)
                        && l > 0
                    {
                        let key = format!("service:{}:memory_limit_percent", x.container);
                        self.history.push(&key, t, m as f64 / l as f64 * 100.0);
                    }
                    if let Some(m) = x.memory_bytes {
                        self.history.push(
                            &format!("service:{}:memory_bytes", x.container),
                            t,
                            m as f64,
                        );
                    }
                }
                self.raw_services = s;
                self.services_listed = true;
                self.publish_services();
            }
            Update::Journal(entries) => {
                let ev = std::sync::Arc::make_mut(&mut self.snapshot.events);
                for e in &entries {
                    ev.push(e.event_line());
                    self.supervisor_restarts.note(e);
                }
                if ev.len() > MAX_EVENTS {
                    ev.drain(..ev.len() - MAX_EVENTS);
                }
                if entries.iter().any(|e| e.action == "restart") {
                    self.publish_services();
                }
            }
            Update::Declared(names) => {
                self.declared = Some(names);
                self.publish_services();
            }
            Update::ComposeForms(f) => self.snapshot.compose_forms = f,
            Update::Gpus(g) => {
                for x in &g {
                    if x.memory_total_bytes > 0 {
                        let p = x.memory_used_bytes as f64 / x.memory_total_bytes as f64 * 100.0;
                        self.history
                            .push(&format!("gpu:{}:vram_percent", x.index), t, p);
                    }
                }
                self.raw_gpus = g;
                self.attribute_gpus();
                self.join_agents();
            }
            Update::Ollama(o) => {
                self.snapshot.ollama = Some(o);
                self.join_agents();
            }
            Update::Agents(mut a) => {
                Self::agent_rates(&mut self.agent_counters, &mut a, t);
                for x in &a {
                    let name = &x.agent;
                    // P95, queue and errors feed the advisor; P99 the console's sparkline.
                    for (k, v) in [
                        ("p95_seconds", x.p95_seconds.flatten()),
                        ("p99_seconds", x.p99_seconds.flatten()),
                        ("queued", x.queued),
                        ("error_percent", x.error_percent),
                    ] {
                        if let Some(v) = v {
                            self.history.push(&format!("agent:{name}:{k}"), t, v);
                        }
                    }
                }
                self.snapshot.agents = a;
                self.join_agents();
            }
            Update::Events(e) => {
                let ev = std::sync::Arc::make_mut(&mut self.snapshot.events);
                ev.extend(e);
                if ev.len() > MAX_EVENTS {
                    ev.drain(..ev.len() - MAX_EVENTS);
                }
            }
            Update::Logs(l) => self.snapshot.logs.push(l),
            Update::Activity(f) => f(&mut self.snapshot.activity),
            Update::Scrapes(t) => self.snapshot.scrapes = t,
            Update::ReplicaAgents(mut a) => {
                // Rates per replica row (its own name); no history: the advisor reads
                // the merged rows.
                Self::agent_rates(&mut self.replica_counters, &mut a, t);
                self.snapshot.replica_agents = a;
            }
            Update::Source(name, r) => self.set_source(name, r, t),
            Update::Probe(r) => {
                let svc = r.service.clone();
                let merged = crate::collect::probes::merge(self.probes.get(&svc), &r, t);
                if r.result.is_ok() {
                    for (key, path) in PROBE_SERIES {
                        if let Some(v) = merged.figures.as_ref().and_then(|f| pointer_f64(f, path))
                        {
                            self.history.push(&format!("probe:{svc}:{key}"), t, v);
                        }
                    }
                }
                self.set_source(
                    &format!("probe:{svc}"),
                    r.result.as_ref().map(|_| ()).map_err(Clone::clone),
                    t,
                );
                self.probes.insert(svc, merged);
                self.join_probes();
            }
        }
    }

    /// Each service row carries its probe's last report.
    fn join_probes(&mut self) {
        for x in &mut self.snapshot.services {
            x.probe = self.probes.get(&x.service).cloned();
        }
    }

    fn set_source(&mut self, name: &str, r: Result<(), String>, t: f64) {
        crate::logging::source_health(name, self.snapshot.sources.get(name), &r);
        let entry = self
            .snapshot
            .sources
            .entry(name.to_string())
            .or_insert(SourceHealth {
                status: String::new(),
                last_error: None,
                last_sample: None,
                failing_since: None,
            });
        match r {
            Ok(()) => {
                entry.status = "ok".into();
                entry.last_sample = Some(t);
                entry.failing_since = None;
            }
            Err(e) => {
                let since = *entry.failing_since.get_or_insert(t);
                entry.status = if e.starts_with("unavailable") {
                    e.clone()
                } else {
                    // How long it has been failing is what an on-call engineer asks first.
                    format!("error since {}: {e}", clock(since))
                };
                entry.last_error = Some(e);
            }
        }
    }

    /// Requests/s, errors/s, the share of failed requests (`error_percent`, when there
    /// were requests) and CPU% of each agent from its counters' change since the previous
    /// scrape (nothing until two scrapes exist, nothing across a counter reset).
    fn agent_rates(
        counters: &mut AgentCounters,
        agents: &mut [crate::model::agent::AgentRow],
        t: f64,
    ) {
        let mut now = std::collections::BTreeMap::new();
        for x in agents.iter_mut() {
            let name = x.agent.clone();
            let req = x.requests_total();
            let err = x.errors_total.unwrap_or(0.0);
            let cpu = x.cpu_seconds_total.unwrap_or(0.0);
            if let Some(&(t0, r0, e0, c0)) = counters.get(&name) {
                let dt = t - t0;
                if dt > 0.0 && req >= r0 && err >= e0 && cpu >= c0 {
                    x.requests_per_s = Some((req - r0) / dt);
                    x.errors_per_s = Some((err - e0) / dt);
                    if let Some(p) = crate::model::agent_error::error_percent(req - r0, err - e0) {
                        x.error_percent = Some(p);
                    }
                    x.cpu_percent = Some((cpu - c0) / dt * 100.0);
                }
            }
            now.insert(name, (t, req, err, cpu));
        }
        *counters = now;
    }

    /// Turns the advisor on: every published snapshot then carries its suggestions.
    pub fn with_advisor(mut self, cfg: AdvisorConfig) -> Hub {
        self.advisor = Some((cfg, AdvisorState::default()));
        self
    }

    /// The advisor's verdict on the history so far.
    pub fn advise(&mut self) {
        if let Some((cfg, state)) = &mut self.advisor {
            self.snapshot.suggestions =
                crate::advisor::evaluate(&self.history, &self.snapshot, cfg, state, now_secs());
        }
    }

    /// The last minute of the series the console draws as sparklines.
    pub fn refresh_trends(&mut self) {
        let mut trends = std::collections::BTreeMap::new();
        for (k, series) in &self.history.series {
            let wanted = k == "host:cpu_percent"
                || (k.starts_with("service:")
                    && (k.ends_with(":cpu_percent") || k.ends_with(":cpu_limit_percent")))
                || k.starts_with("agent:");
            if wanted {
                let n = series.fine.len();
                let v: Vec<f64> = series
                    .fine
                    .iter()
                    .skip(n.saturating_sub(TREND_POINTS))
                    .map(|p| p.1)
                    .collect();
                trends.insert(k.clone(), v);
            }
        }
        self.snapshot.trends = std::sync::Arc::new(trends);
    }

    fn attribute_gpus(&mut self) {
        let mut g = self.raw_gpus.clone();
        let containers: Vec<(String, String, String)> = self
            .snapshot
            .services
            .iter()
            .map(|s| {
                (
                    s.container_id.clone(),
                    s.container.clone(),
                    s.service.clone(),
                )
            })
            .collect();
        gpu::attribute(&mut g, &containers, |pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
        });
        crate::collect::agent_gpu::mark_runners(&mut g, |pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()
        });
        let vram = gpu::vram_by_service(&g);
        for s in &mut self.snapshot.services {
            s.gpu_memory_bytes = if g.is_empty() {
                None
            } else {
                Some(vram.get(&s.service).copied().unwrap_or(0))
            };
        }
        self.snapshot.gpus = g;
    }

    /// Agent -> model -> VRAM, again whenever one of the three sources changes.
    fn join_agents(&mut self) {
        crate::collect::agent_gpu::join(
            &mut self.snapshot.agents,
            self.snapshot.ollama.as_mut(),
            &self.snapshot.gpus,
        );
    }

    pub fn persist(&self) {
        if let Some(p) = &self.history_file {
            let view = crate::model::history::RecentView {
                history: &self.history,
                since: now_secs() - 3600.0,
            };
            let tmp = p.with_extension("json.tmp");
            let written = std::fs::create_dir_all(p.parent().unwrap_or(std::path::Path::new(".")))
                .and_then(|_| std::fs::File::create(&tmp))
                .and_then(|f| {
                    use std::io::Write as _;
                    let mut w = std::io::BufWriter::new(f);
                    serde_json::to_writer(&mut w, &view)?;
                    w.flush()
                })
                .and_then(|_| std::fs::rename(&tmp, p));
            if written.is_err() {
                // History is a convenience; a full disk must not stop the console.
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// Runs the hub: updates in, snapshots out.
pub fn spawn(
    project: &str,
    runtime_dir: Option<PathBuf>,
    advisor: Option<AdvisorConfig>,
) -> (mpsc::Sender<Update>, watch::Receiver<Arc<Snapshot>>) {
    spawn_with(project, runtime_dir, advisor, true)
}

/// As `spawn`; with `persist` false the history under `runtime/` is read but never
/// written: a one-shot command's few seconds must not pass for a console's hour (`suggest`
/// trusts a recently written history as the console's).
pub fn spawn_with(
    project: &str,
    runtime_dir: Option<PathBuf>,
    advisor: Option<AdvisorConfig>,
    persist: bool,
) -> (mpsc::Sender<Update>, watch::Receiver<Arc<Snapshot>>) {
    let mut hub = Hub::new(project, runtime_dir);
    if !persist {
        hub.history_file = None;
    }
    if let Some(cfg) = advisor {
        hub = hub.with_advisor(cfg);
    }
    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let (stx, srx) = watch::channel(Arc::new(hub.snapshot.clone()));
    tokio::spawn(async move {
        let mut last_persist = tokio::time::Instant::now();
        let mut last_advice: Option<tokio::time::Instant> = None;
        while let Some(u) = rx.recv().await {
            hub.apply(u);
            while let Ok(more) = rx.try_recv() {
                hub.apply(more);
            }
            // Samples arrive several times a second; sparklines move one point a second
            // and the advisor's windows are seconds long, so both once a second.
            if last_advice.is_none_or(|t| t.elapsed() >= ADVISE_EVERY) {
                hub.refresh_trends();
                hub.advise();
                last_advice = Some(tokio::time::Instant::now());
            }
            stx.send_replace(Arc::new(hub.snapshot.clone()));
            if last_persist.elapsed() >= PERSIST_EVERY {
                hub.persist();
                crate::gateway::accounting::trim_heap();
                last_persist = tokio::time::Instant::now();
            }
        }
        hub.persist();
    });
    (tx, srx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_and_limits_feed_the_advisor_series() {
        let mut hub = Hub::new("p", None);
        hub.apply(Update::Agents(vec![
            serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({
                "agent": "a", "p95_seconds": 0.5, "p99_seconds": 0.9, "queued": 3.0
            }))
            .unwrap(),
        ]));
        for k in ["p95_seconds", "p99_seconds", "queued"] {
            assert!(
                hub.history.series.contains_key(&format!("agent:a:{k}")),
                "{k}"
            );
        }
        let svc = |limit: f64| ServiceStats {
            service: "s".into(),
            container: "p-s-1".into(),
            state: "running".into(),
            cpu_limit: Some(limit),
            cpu_limit_percent: Some(90.0),
            ..Default::default()
        };
        hub.apply(Update::Services(vec![svc(0.5)]));
        hub.apply(Update::Services(vec![svc(0.5)]));
        let key = "service:p-s-1:cpu_limit_percent";
        assert_eq!(hub.history.series[key].fine.len(), 2);
        // The limit was raised: the old shares are gone, the new one starts the series.
        hub.apply(Update::Services(vec![svc(1.0)]));
        assert_eq!(hub.history.series[key].fine.len(), 1);
    }

    #[test]
    fn replica_rows_do_not_reset_the_agents_rates() {
        // Regression: both updates shared one counter map and each replaced it, so no
        // agent ever had a rate once replica rows were sent after the agents.
        let mut hub = Hub::new("p", None);
        for (i, n) in [10.0, 30.0].iter().enumerate() {
            hub.apply(Update::Agents(vec![
                serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({
                    "agent": "a", "requests_success": n
                }))
                .unwrap(),
            ]));
            hub.apply(Update::ReplicaAgents(vec![
                serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({
                    "agent": "gateway/a@g-1", "requests_success": n * 2.0
                }))
                .unwrap(),
            ]));
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        assert!(hub.snapshot.agents[0].requests_per_s.unwrap() > 0.0);
        assert!(hub.snapshot.replica_agents[0].requests_per_s.unwrap() > 0.0);
    }

    #[test]
    fn history_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("osmen-hub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut hub = Hub::new("p", Some(dir.clone()));
        for cpu in [10.0, 20.0, 30.0] {
            hub.apply(Update::Host(HostStats {
                cpu_percent: cpu,
                ..Default::default()
            }));
        }
        hub.apply(Update::Source("gpu", Err("unavailable: no driver".into())));
        assert_eq!(hub.snapshot.sources["gpu"].status, "unavailable: no driver");
        hub.persist();
        let again = Hub::new("p", Some(dir.clone()));
        let s = &again.history.series["host:cpu_percent"];
        assert_eq!(s.fine.len(), 3);
        assert_eq!(s.last(), Some(30.0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rst_adds_the_supervisors_restarts_since_the_container_was_created() {
        use crate::model::journal::JournalEntry;
        let entry = |time: &str, action: &str, reason: &str| JournalEntry {
            time: time.into(),
            project: "p".into(),
            service: "api".into(),
            action: action.into(),
            reason: reason.into(),
        };
        let mut hub = Hub::new("p", None);
        let row = |created: &str| ServiceStats {
            service: "api".into(),
            container: "p-api-1".into(),
            number: 1,
            state: "running".into(),
            restarts: 1,
            created: created.into(),
            ..Default::default()
        };
        hub.apply(Update::Services(vec![row("2026-11-29T03:00:00Z")]));
        hub.apply(Update::Journal(vec![
            // Before this container was created: another container of the same name.
            entry("2026-11-29T02:00:00Z", "restart", "p-api-1: after backoff"),
            entry("2026-11-29T03:10:00Z", "restart", "p-api-1: after backoff"),
            entry("2026-11-29T03:20:00Z", "restart", "p-api-1: after backoff"),
            // An operator's restart and other actions are not the supervisor's.
            entry("2026-11-29T03:30:00Z", "restart", "operator asked: p-api-1"),
            entry(
                "2026-11-29T03:40:00Z",
                "schedule-restart",
                "p-api-1: exited; restart 3",
            ),
        ]));
        assert_eq!(
            hub.snapshot.services[0].restarts,
            1 + 2,
            "engine 1 + supervisor 2"
        );
        assert_eq!(
            hub.snapshot.events.len(),
            5,
            "journal entries are events too"
        );
        // A recreated container starts afresh.
        hub.apply(Update::Services(vec![row("2026-11-29T03:50:00Z")]));
        assert_eq!(hub.snapshot.services[0].restarts, 1);
    }

    #[test]
    fn declared_services_without_a_container_show_as_not_created() {
        let mut hub = Hub::new("p", None);
        let api = ServiceStats {
            service: "api".into(),
            container: "p-api-1".into(),
            number: 1,
            state: "exited".into(),
            ..Default::default()
        };
        hub.apply(Update::Services(vec![api]));
        hub.apply(Update::Declared(vec!["api".into(), "burner".into()]));
        let rows: Vec<(String, String)> = hub
            .snapshot
            .services
            .iter()
            .map(|x| (x.display_name(), x.state_label()))
            .collect();
        assert_eq!(
            rows,
            [
                ("api".to_string(), "exited (0)".to_string()),
                ("burner".to_string(), "not created".to_string())
            ]
        );
        // Once it has a container, the placeholder goes.
        let burner = ServiceStats {
            service: "burner".into(),
            container: "p-burner-1".into(),
            number: 1,
            state: "running".into(),
            ..Default::default()
        };
        hub.apply(Update::Services(vec![burner]));
        let states: Vec<String> = hub
            .snapshot
            .services
            .iter()
            .map(|x| x.state_label())
            .collect();
        assert_eq!(
            states,
            ["running", "not created"],
            "api has no container now"
        );
    }

    #[test]
    fn supervisor_restarts_are_bounded() {
        use crate::model::journal::JournalEntry;
        let mut r = SupervisorRestarts::default();
        for i in 0..(SupervisorRestarts::CONTAINERS + 10) {
            for _ in 0..3 {
                r.note(&JournalEntry {
                    time: "2026-11-29T03:10:00Z".into(),
                    project: "p".into(),
                    service: "s".into(),
                    action: "restart".into(),
                    reason: format!("c{i}: after backoff"),
                });
            }
        }
        assert_eq!(r.times.len(), SupervisorRestarts::CONTAINERS);
        let one = JournalEntry {
            time: "2026-11-29T03:10:00Z".into(),
            project: "p".into(),
            service: "s".into(),
            action: "restart".into(),
            reason: "busy: after backoff".into(),
        };
        for _ in 0..(SupervisorRestarts::PER_CONTAINER + 5) {
            r.note(&one);
        }
        assert_eq!(
            r.since("busy", ""),
            SupervisorRestarts::PER_CONTAINER as i64
        );
    }
}
