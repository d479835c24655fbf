//! The fold: `Hub` takes one update at a time into the snapshot and the bounded history,
//! joins what several sources measure (probes, GPU processes, agents) and persists the
//! recent hour.

use std::path::PathBuf;

use super::restarts::SupervisorRestarts;
use super::update::{GpuSample, Update};
use super::{agent_gpu, gpu, history_file};
use crate::advisor::AdvisorState;
use crate::model::config::AdvisorConfig;
use crate::model::history::History;
use crate::model::probe::Figures;
use crate::model::snapshot::{
    HostStats, MAX_EVENTS, ServiceStats, Snapshot, SourceHealth, TREND_POINTS,
};
use crate::sys::now_secs;

/// Per agent: (time, requests, errors, CPU seconds) at the last scrape.
type AgentCounters = std::collections::BTreeMap<String, (f64, f64, f64, f64)>;

pub struct Hub {
    pub snapshot: Snapshot,
    pub history: History,
    /// GPU processes as NVML gave them, attributed again when the container set changes.
    raw_gpus: GpuSample,
    advisor: Option<(AdvisorConfig, AdvisorState)>,
    /// Container -> (CPU limit, memory limit) at the last sample.
    limits: std::collections::HashMap<String, (Option<f64>, Option<u64>)>,
    /// Per agent: (time, requests, errors, CPU seconds) at the previous scrape.
    agent_counters: AgentCounters,
    /// The replica rows' own, apart: each update replaces its map whole.
    replica_counters: AgentCounters,
    pub(super) history_file: Option<PathBuf>,
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
    /// Calls in flight to Ollama against how many it serves at once.
    ollama_queue: super::ollama_queue::QueueJoin,
}

/// One figure of a probe's (None: not of this kind, or not measured).
type ProbeFigure = fn(&Figures) -> Option<f64>;

/// Probe figures kept in the history (for the advisor's windows): key, the figure.
const PROBE_SERIES: [(&str, ProbeFigure); 5] = [
    ("connections_percent", |f| {
        Some(f.postgres()?.connections.percent)
    }),
    ("transactions_per_s", |f| f.postgres()?.transactions_per_s),
    ("evictions_per_s", |f| f.redis()?.evictions_per_s),
    ("memory_percent", |f| f.redis()?.memory_percent),
    ("search_p95_ms", |f| f.qdrant()?.search_p95_ms),
];

/// `HH:MM:SS UTC` of a time in seconds since the epoch.
fn clock(t: f64) -> String {
    let s = crate::model::units::format_rfc3339(t as u64, 0);
    format!("{} UTC", s.get(11..19).unwrap_or(&s))
}

impl Hub {
    pub fn new(project: &str, runtime_dir: Option<PathBuf>) -> Hub {
        let history_file = runtime_dir.map(|d| d.join("history.json"));
        let history = history_file
            .as_deref()
            .and_then(history_file::load)
            .unwrap_or_default();
        Hub {
            snapshot: Snapshot {
                project: project.to_string(),
                ..Default::default()
            },
            history,
            raw_gpus: GpuSample::default(),
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
            ollama_queue: Default::default(),
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
            Update::Host(h) => self.fold_host(h, t),
            Update::Services(s) => self.fold_services(s, t),
            Update::Journal(entries) => self.fold_journal(entries),
            Update::Declared(names) => {
                self.declared = Some(names);
                self.publish_services();
            }
            Update::ComposeForms(f) => self.snapshot.compose_forms = f,
            Update::Gpus(g) => self.fold_gpus(g, t),
            Update::Ollama(o) => {
                self.snapshot.ollama = Some(o);
                self.join_agents();
                self.ollama_queue.join(self.snapshot.ollama.as_mut(), t);
            }
            Update::OllamaInFlight(n) => {
                self.ollama_queue.in_flight = n;
                self.ollama_queue.join(self.snapshot.ollama.as_mut(), t);
            }
            Update::OllamaParallel(n) => {
                self.ollama_queue.configured = n;
                self.ollama_queue.join(self.snapshot.ollama.as_mut(), t);
            }
            Update::Agents(a) => self.fold_agents(a, t),
            Update::Events(e) => {
                let ev = std::sync::Arc::make_mut(&mut self.snapshot.events);
                ev.extend(e);
                if ev.len() > MAX_EVENTS {
                    ev.drain(..ev.len() - MAX_EVENTS);
                }
            }
            Update::Logs(l) => self.snapshot.logs.push(l),
            Update::Activity(c) => c.apply(&mut self.snapshot.activity),
            Update::Scrapes(t) => self.snapshot.scrapes = t,
            Update::ReplicaAgents(mut a) => {
                // Rates per replica row (its own name); no history: the advisor reads
                // the merged rows.
                Self::agent_rates(&mut self.replica_counters, &mut a, t);
                self.snapshot.replica_agents = a;
            }
            Update::Source(name, r) => {
                // A source that fails holds nothing we know of now: Ollama's last models
                // and the GPUs' last figures are not shown (or advised on) as current.
                if r.is_err() {
                    let dropped = match name {
                        "ollama" => self.snapshot.ollama.take().is_some(),
                        "gpu" => !std::mem::take(&mut self.snapshot.gpus).is_empty(),
                        _ => false,
                    };
                    if dropped {
                        self.join_agents();
                    }
                }
                self.set_source(name, r, t)
            }
            Update::Probe(r) => self.fold_probe(r, t),
            Update::Fleet(rows) => {
                self.snapshot.fleet = rows;
                super::fleet::join_local(&mut self.snapshot);
            }
        }
    }

    /// Host CPU and memory, into the history too.
    fn fold_host(&mut self, h: HostStats, t: f64) {
        self.history.push("host:cpu_percent", t, h.cpu_percent);
        self.history
            .push("host:memory_used_bytes", t, h.memory_used_bytes as f64);
        if h.memory_total_bytes > 0 {
            let p = h.memory_used_bytes as f64 / h.memory_total_bytes as f64 * 100.0;
            self.history.push("host:memory_percent", t, p);
        }
        self.snapshot.host = Some(h);
    }

    /// The container rows: uptime, and the CPU and memory series (a changed limit starts
    /// its shares afresh).
    fn fold_services(&mut self, mut s: Vec<ServiceStats>, t: f64) {
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

    /// Journal entries are events; the supervisor's restarts count in RST.
    fn fold_journal(&mut self, entries: Vec<crate::model::journal::JournalEntry>) {
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

    /// A GPU sample: VRAM shares into the history, then attributed to services and agents.
    fn fold_gpus(&mut self, g: GpuSample, t: f64) {
        for x in &g.gpus {
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

    /// The agents' rows: rates from their counters, and the series the advisor reads.
    fn fold_agents(&mut self, mut a: Vec<crate::model::agent::AgentRow>, t: f64) {
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

    /// One probe's report merged into its last state; its figures into the history.
    fn fold_probe(&mut self, r: Box<crate::model::probe::ProbeReport>, t: f64) {
        let svc = r.service.clone();
        let merged = super::probes::merge(self.probes.get(&svc), &r, t);
        if r.result.is_ok() {
            for (key, figure) in PROBE_SERIES {
                let v = merged.figures.as_ref().and_then(figure);
                // NaN and the infinities were null in the JSON: never kept.
                if let Some(v) = v.filter(|v| v.is_finite()) {
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
        let mut g = self.raw_gpus.gpus.clone();
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
        let sample = &self.raw_gpus;
        gpu::attribute(&mut g, &containers, |pid| sample.cgroups.get(&pid).cloned());
        agent_gpu::mark_runners(&mut g, |pid| sample.cmdlines.get(&pid).cloned());
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
        agent_gpu::join(
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
            history_file::write(p, &view);
        }
    }
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
    fn a_failing_ollama_or_gpu_source_leaves_no_stale_figures() {
        use crate::model::ollama::{LoadedModel, Ollama};
        use crate::model::snapshot::GpuStats;
        let mut hub = Hub::new("p", None);
        hub.apply(Update::Ollama(Ollama {
            url: "http://127.0.0.1:11434".into(),
            loaded: vec![LoadedModel {
                name: "llama3.2:1b".into(),
                ..Default::default()
            }],
            ..Default::default()
        }));
        hub.apply(Update::Gpus(crate::hub::GpuSample {
            gpus: vec![GpuStats::default()],
            ..Default::default()
        }));
        hub.apply(Update::Source("ollama", Ok(())));
        hub.apply(Update::Source("gpu", Ok(())));
        assert!(hub.snapshot.ollama.is_some() && hub.snapshot.gpus.len() == 1);
        hub.apply(Update::Source("ollama", Err("connection refused".into())));
        hub.apply(Update::Source("gpu", Err("GPU is lost".into())));
        assert!(
            hub.snapshot.ollama.is_none(),
            "Ollama's last models dropped"
        );
        assert!(
            hub.snapshot.gpus.is_empty(),
            "the GPUs' last figures dropped"
        );
        assert!(
            hub.snapshot.sources["ollama"]
                .status
                .contains("connection refused")
        );
        // Another source failing leaves them alone.
        hub.apply(Update::Gpus(crate::hub::GpuSample {
            gpus: vec![GpuStats::default()],
            ..Default::default()
        }));
        hub.apply(Update::Source("host", Err("sampling failed".into())));
        assert_eq!(hub.snapshot.gpus.len(), 1);
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
    fn gpu_processes_are_joined_from_the_sample_s_proc_text() {
        use crate::model::snapshot::{GpuProcess, GpuStats};
        let id = "3f2a9c4b1e7d8f60a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2";
        let blob = "sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";
        let mut hub = Hub::new("p", None);
        hub.apply(Update::Services(vec![ServiceStats {
            service: "ollama".into(),
            container: "p-ollama-1".into(),
            container_id: id.into(),
            state: "running".into(),
            ..Default::default()
        }]));
        let p = |pid, mib: u64| GpuProcess {
            pid,
            used_memory_bytes: mib << 20,
            ..Default::default()
        };
        hub.apply(Update::Gpus(GpuSample {
            gpus: vec![GpuStats {
                processes: vec![p(100, 700), p(200, 5)],
                ..Default::default()
            }],
            cgroups: [(100, format!("0::/system.slice/docker-{id}.scope\n"))].into(),
            cmdlines: [(100, format!("ollama\0runner\0--model\0/m/{blob}\0"))].into(),
        }));
        let procs = &hub.snapshot.gpus[0].processes;
        assert_eq!(procs[0].service.as_deref(), Some("ollama"));
        assert_eq!(procs[0].model_blob.as_deref(), Some(blob));
        assert_eq!(
            (procs[1].service.as_deref(), procs[1].model_blob.as_deref()),
            (None, None)
        );
        assert_eq!(hub.snapshot.services[0].gpu_memory_bytes, Some(700 << 20));
    }
}
