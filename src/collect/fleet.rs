//! The fleet: each `[[fleet]]` host's project, over that host's own engine connection,
//! sampled with the same period as this stack's containers. Per host its containers'
//! states, health and restarts, the engine host's CPUs and memory (`docker info`), and
//! what the project uses of them (its containers' `docker stats`, summed: the same
//! measure on every host, reachable or not by anything else). A host that stops
//! answering keeps its line with the time it stopped, and recovers on its own.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::containers::{cpu_percent, working_set};
use crate::hub::Update;
use crate::model::container::{ContainerRow, Health};
use crate::model::fleet::{FleetRow, FleetService};
use crate::model::snapshot::RawStats;

/// What one host answered in one period.
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    pub project: String,
    /// The engine is on this machine.
    pub local: bool,
    pub containers: Vec<ContainerRow>,
    /// Container id -> its `docker stats` sample, for the running ones that answered.
    pub stats: Vec<(String, RawStats)>,
    pub cpus: Option<u32>,
    pub memory_total: Option<u64>,
}

/// The hosts' engines (wired to the Docker adapter by the caller); `host` indexes the
/// rows of `hosts`.
pub trait FleetSource: Send + Sync + 'static {
    /// Each host's row before its first answer: its name, engine and (when the settings
    /// name it) project.
    fn hosts(&self) -> Vec<FleetRow>;
    /// Why a host did not answer; its first line is the host's reason on its line.
    type Error: std::error::Error + Send + Sync + 'static;
    fn sample(&self, host: usize) -> impl Future<Output = Result<HostSample, Self::Error>> + Send;
}

/// Why a host has no figures this period.
#[derive(Debug, thiserror::Error)]
pub enum HostError<E: std::error::Error + 'static> {
    #[error("no answer in {}s", HOST_TIMEOUT.as_secs())]
    Timeout,
    #[error(transparent)]
    Host(E),
}

/// How long one host may take to answer before it counts as unreachable this period.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the collector remembers of a host between periods.
#[derive(Default)]
struct HostState {
    row: FleetRow,
    prev: HashMap<String, (RawStats, Instant)>,
}

/// Samples every host each `period` (all at once, each within `HOST_TIMEOUT`) and sends
/// the rows to the hub as `Update::Fleet`.
pub async fn run<S: FleetSource>(
    src: std::sync::Arc<S>,
    period: Duration,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let mut hosts: Vec<HostState> = src
        .hosts()
        .into_iter()
        .map(|row| HostState {
            row,
            prev: HashMap::new(),
        })
        .collect();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let answers = futures_util::future::join_all((0..hosts.len()).map(|i| {
            let src = src.clone();
            async move {
                match tokio::time::timeout(HOST_TIMEOUT, src.sample(i)).await {
                    Ok(r) => r.map_err(HostError::Host),
                    Err(_) => Err(HostError::Timeout),
                }
            }
        }))
        .await;
        let now = now();
        for (h, a) in hosts.iter_mut().zip(answers) {
            fold(h, a, now);
        }
        let rows = hosts.iter().map(|h| h.row.clone()).collect();
        if tx.send(Update::Fleet(rows)).await.is_err() {
            return;
        }
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One host's answer (or failure) into its row.
fn fold(h: &mut HostState, answer: Result<HostSample, impl std::fmt::Display>, now: f64) {
    let s = match answer {
        Ok(s) => s,
        Err(e) => {
            let r = &mut h.row;
            r.unreachable_since.get_or_insert(now);
            // The reason's first line: the connection's hint for this machine's own
            // engine (start it, set DOCKER_HOST) does not fit a fleet line.
            let e = e.to_string();
            r.error = Some(e.lines().next().unwrap_or("no answer").trim().to_string());
            h.prev.clear();
            return;
        }
    };
    let r = &mut h.row;
    r.error = None;
    r.unreachable_since = None;
    r.last_ok = Some(now);
    r.project = s.project;
    r.local = s.local;
    r.total = s.containers.len();
    r.running = s.containers.iter().filter(|c| c.state == "running").count();
    r.unhealthy = s
        .containers
        .iter()
        .filter(|c| c.state == "running" && c.health == Health::Unhealthy)
        .count();
    r.restarts = s.containers.iter().map(|c| c.restart_count).sum();
    r.host_cpus = s.cpus;
    r.host_memory_total_bytes = s.memory_total;
    let t = Instant::now();
    let mut cpu = None::<f64>;
    let mut mem = 0u64;
    let mut next = HashMap::new();
    for (id, st) in s.stats {
        if let Some((p, _)) = h.prev.get(&id) {
            *cpu.get_or_insert(0.0) += cpu_percent(p, &st);
        }
        mem += working_set(&st);
        next.insert(id, (st, t));
    }
    // Nothing running uses nothing; with running containers, CPU needs two samples.
    r.cpu_percent = if r.running == 0 { Some(0.0) } else { cpu };
    r.memory_used_bytes = Some(mem);
    r.services = s
        .containers
        .iter()
        .map(|c| {
            let cur = next.get(&c.id).map(|(st, _)| st);
            FleetService {
                service: c.service.clone(),
                container: c.name.clone(),
                state: c.state.clone(),
                health: if c.state == "running" {
                    c.health.as_str().to_string()
                } else {
                    String::new()
                },
                restarts: c.restart_count,
                cpu_percent: cur
                    .zip(h.prev.get(&c.id))
                    .map(|(st, (p, _))| cpu_percent(p, st)),
                memory_bytes: cur.map(working_set),
            }
        })
        .collect();
    r.services
        .sort_by(|a, b| (&a.service, &a.container).cmp(&(&b.service, &b.container)));
    h.prev = next;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &str, health: Health, restarts: i64) -> ContainerRow {
        ContainerRow {
            service: "api".into(),
            name: format!("p-api-{id}"),
            id: id.into(),
            number: 1,
            image: "i".into(),
            state: state.into(),
            health,
            restart_count: restarts,
            managed: true,
            ..Default::default()
        }
    }

    fn stats(cpu: u64, sys: u64, mem: u64) -> RawStats {
        RawStats {
            cpu_total_ns: cpu,
            system_ns: sys,
            online_cpus: 4,
            mem_usage: mem,
            ..RawStats::default()
        }
    }

    #[test]
    fn a_host_counts_its_containers_and_says_since_when_it_is_unreachable() {
        let mut h = HostState::default();
        let sample = |cpu| HostSample {
            project: "shop".into(),
            containers: vec![
                row("a", "running", Health::Healthy, 1),
                row("b", "running", Health::Unhealthy, 2),
                row("c", "exited", Health::None, 0),
            ],
            stats: vec![
                ("a".into(), stats(cpu, cpu * 10, 100)),
                ("b".into(), stats(0, 0, 50)),
            ],
            cpus: Some(4),
            memory_total: Some(1000),
            ..HostSample::default()
        };
        fold(&mut h, Ok::<_, String>(sample(1_000)), 10.0);
        let r = &h.row;
        assert_eq!((r.running, r.total, r.unhealthy, r.restarts), (2, 3, 1, 3));
        assert_eq!((r.cpu_percent, r.memory_used_bytes), (None, Some(150)));
        assert_eq!(r.services.len(), 3);
        assert_eq!(r.services[0].memory_bytes, Some(100));
        fold(&mut h, Ok::<_, String>(sample(2_000)), 11.0);
        // d(cpu) 1000 / d(system) 10000 x 4 CPUs = 40%.
        assert_eq!(h.row.cpu_percent.map(|c| c.round()), Some(40.0));
        let a = &h.row.services[0];
        assert_eq!(
            (a.cpu_percent.map(|c| c.round()), a.health.as_str()),
            (Some(40.0), "healthy")
        );
        assert_eq!(
            (
                h.row.services[2].memory_bytes,
                h.row.services[2].state.as_str()
            ),
            (None, "exited")
        );
        fold(
            &mut h,
            Err::<HostSample, _>("connection refused\n  start the engine"),
            12.0,
        );
        fold(&mut h, Err::<HostSample, _>("connection refused"), 13.0);
        assert_eq!(h.row.unreachable_since, Some(12.0));
        assert_eq!(h.row.error.as_deref(), Some("connection refused"));
        assert_eq!(h.row.last_ok, Some(11.0));
        fold(&mut h, Ok::<_, String>(sample(3_000)), 14.0);
        assert_eq!(
            (h.row.error.as_ref(), h.row.unreachable_since),
            (None, None)
        );
        assert_eq!(h.row.cpu_percent, None);
    }
}
