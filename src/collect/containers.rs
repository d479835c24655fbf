//! Per-container CPU, memory, network, block I/O and PIDs with `docker stats` semantics:
//! CPU% = d(container CPU) / d(system CPU) x online CPUs x 100 (100 = one core), memory =
//! usage minus inactive file cache. Samples are taken each period; the container set
//! changes only on engine events.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures_util::Stream;

use crate::model::container::ContainerRow;
use crate::model::snapshot::{RawStats, ServiceStats};

/// What the collector needs from the engine (wired to the Docker adapter by the caller).
pub trait ContainerSource: Send + Sync + 'static {
    /// The engine's own error; its text is what the `containers` source shows.
    type Error: std::error::Error + Send + Sync + 'static;
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerRow>, Self::Error>> + Send;
    fn stats(&self, id: &str) -> impl Future<Output = Result<RawStats, Self::Error>> + Send;
    /// Lifecycle events (container ids); the collector re-lists when one arrives.
    fn events(&self) -> Pin<Box<dyn Stream<Item = Result<String, Self::Error>> + Send>>;
    /// The engine's machine when it is not this one: published ports are reached there.
    fn remote_host(&self) -> Option<String> {
        None
    }
}

/// `docker stats` CPU%: 0 unless both deltas are positive.
pub fn cpu_percent(prev: &RawStats, cur: &RawStats) -> f64 {
    let dcpu = cur.cpu_total_ns.saturating_sub(prev.cpu_total_ns) as f64;
    let dsys = cur.system_ns.saturating_sub(prev.system_ns) as f64;
    if dcpu > 0.0 && dsys > 0.0 {
        dcpu / dsys * f64::from(cur.online_cpus.max(1)) * 100.0
    } else {
        0.0
    }
}

/// `docker stats` memory: usage minus inactive file cache.
pub fn working_set(s: &RawStats) -> u64 {
    match s.mem_inactive_file {
        Some(i) if i < s.mem_usage => s.mem_usage - i,
        _ => s.mem_usage,
    }
}

/// One service row from the container's state and (optionally) its two latest samples.
pub fn derive(
    row: &ContainerRow,
    cur: Option<&(RawStats, Instant)>,
    prev: Option<&(RawStats, Instant)>,
) -> ServiceStats {
    let mut out = ServiceStats {
        service: row.service.clone(),
        container: row.name.clone(),
        container_id: row.id.clone(),
        number: row.number,
        state: row.state.clone(),
        // Only a running container has a health: the engine keeps the last status of
        // one that exited, which is no longer true.
        health: if row.state == "running" {
            row.health.as_str().to_string()
        } else {
            String::new()
        },
        exit_code: (row.state != "running").then_some(row.exit_code).flatten(),
        oom_killed: row.oom_killed,
        created: row.created.clone(),
        health_output: row.health_output.clone(),
        restarts: row.restart_count,
        started_at: row.started_at.clone(),
        ports: row.ports.iter().map(|p| p.to_string()).collect(),
        cpu_limit: row.cpu_limit,
        memory_limit: row.memory_limit,
        ..Default::default()
    };
    let Some((c, tc)) = cur else { return out };
    let ws = working_set(c);
    out.memory_bytes = Some(ws);
    out.pids = Some(c.pids);
    if c.mem_limit > 0 {
        out.memory_limit_bytes = Some(c.mem_limit);
        out.memory_percent = Some(ws as f64 / c.mem_limit as f64 * 100.0);
    }
    if let Some((p, tp)) = prev {
        let cpu = cpu_percent(p, c);
        out.cpu_percent = Some(cpu);
        out.cpu_limit_percent = row.cpu_limit.map(|l| cpu / l);
        let dt = tc.duration_since(*tp).as_secs_f64();
        if dt > 0.0 {
            let rate = |a: u64, b: u64| Some(b.saturating_sub(a) as f64 / dt);
            out.net_rx_bytes_per_s = rate(p.net_rx, c.net_rx);
            out.net_tx_bytes_per_s = rate(p.net_tx, c.net_tx);
            out.block_read_bytes_per_s = rate(p.blk_read, c.blk_read);
            out.block_write_bytes_per_s = rate(p.blk_write, c.blk_write);
        }
    }
    out
}

/// Keeps the last two samples of every container.
#[derive(Default)]
pub struct Tracker {
    samples: HashMap<String, [Option<(RawStats, Instant)>; 2]>,
}

impl Tracker {
    pub fn push(&mut self, id: &str, s: RawStats, at: Instant) {
        let slot = self.samples.entry(id.to_string()).or_default();
        slot[0] = slot[1].take();
        slot[1] = Some((s, at));
    }

    pub fn forget_missing(&mut self, live: &[String]) {
        self.samples.retain(|id, _| live.contains(id));
    }

    pub fn rows(&self, rows: &[ContainerRow]) -> Vec<ServiceStats> {
        rows.iter()
            .map(|r| {
                // A stopped container has no current figures, only its state.
                if r.state != "running" {
                    return derive(r, None, None);
                }
                let s = self.samples.get(&r.id);
                let cur = s.and_then(|x| x[1].as_ref());
                let prev = s.and_then(|x| x[0].as_ref());
                derive(r, cur, prev)
            })
            .collect()
    }
}

/// A full re-list at least this often, whatever the events said: it catches an event
/// the stream missed (a reconnect, an engine that dropped it for a slow reader).
pub const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the engine's lifecycle events without pause, so none waits behind a sample,
/// and passes on that something changed. Reconnects after a failure, saying so.
async fn read_events<S: ContainerSource>(
    src: std::sync::Arc<S>,
    changed: tokio::sync::mpsc::Sender<Result<String, S::Error>>,
) {
    use futures_util::StreamExt;
    loop {
        let mut events = src.events();
        while let Some(ev) = events.next().await {
            let failed = ev.is_err();
            // A full channel already holds a change to act on: dropping this one loses
            // nothing, since every change leads to a whole re-list.
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = changed.try_send(ev) {
                return;
            }
            if failed {
                break;
            }
        }
        if changed.is_closed() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Follows the project's containers: re-lists them as soon as the engine reports a
/// lifecycle event (start, die, kill, oom, health_status, update, rename, destroy...)
/// and publishes the rows at once, samples every running container each `period`, and
/// re-lists every `RECONCILE_EVERY` in case an event was missed. Ends when `stop` turns
/// true.
pub async fn run<S: ContainerSource>(
    src: std::sync::Arc<S>,
    mut tick: super::ticker::Ticker,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let (changed_tx, mut changed) = tokio::sync::mpsc::channel(64);
    let reader = tokio::spawn(read_events(src.clone(), changed_tx));
    let mut tracker = Tracker::default();
    let mut rows: Vec<ContainerRow> = Vec::new();
    let mut stale = true;
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let mut sample = false;
        // Biased: an event waiting is acted on before a sample is taken, so a change is
        // never shown a sampling round late, however long the engine takes to answer.
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            ev = changed.recv() => {
                let Some(ev) = ev else { break };
                if let Err(e) = ev {
                    let why = format!("engine unreachable: events: {e}");
                    let _ = tx.send(Update::Source("containers", Err(why))).await;
                }
                // Several events of one change (kill, die, stop) make one re-list.
                while changed.try_recv().is_ok() {}
                stale = true;
            }
            _ = reconcile.tick() => stale = true,
            _ = tick.tick() => sample = true,
        }
        if stale {
            match src.list().await {
                Ok(r) => {
                    rows = r;
                    stale = false;
                }
                Err(e) => {
                    let why = format!("engine unreachable: {e}");
                    let _ = tx.send(Update::Source("containers", Err(why))).await;
                    continue;
                }
            }
            // A container that is not running starts its figures afresh when it starts
            // again (its counters start from zero then).
            let ids: Vec<String> = rows
                .iter()
                .filter(|r| r.state == "running")
                .map(|r| r.id.clone())
                .collect();
            tracker.forget_missing(&ids);
            if !sample {
                // The change is shown now, with the figures already sampled.
                let _ = tx.send(Update::Services(tracker.rows(&rows))).await;
                continue;
            }
        }
        let running: Vec<ContainerRow> = rows
            .iter()
            .filter(|r| r.state == "running")
            .cloned()
            .collect();
        let samples =
            futures_util::future::join_all(running.iter().map(|r| src.stats(&r.id))).await;
        let at = Instant::now();
        let mut failed = None;
        for (r, s) in running.iter().zip(samples) {
            match s {
                Ok(s) => tracker.push(&r.id, s, at),
                Err(e) => {
                    // A container that stopped between the list and the sample: its row
                    // is re-read now rather than shown with an empty sample.
                    failed = Some(e);
                    stale = true;
                }
            }
        }
        // An event that arrived while sampling: the rows are re-read before they go out.
        while let Ok(ev) = changed.try_recv() {
            if let Err(e) = ev {
                let why = format!("engine unreachable: events: {e}");
                let _ = tx.send(Update::Source("containers", Err(why))).await;
            }
            stale = true;
        }
        if stale && let Ok(r) = src.list().await {
            rows = r;
            stale = false;
            failed = None;
        }
        let _ = tx.send(Update::Services(tracker.rows(&rows))).await;
        let health = match failed {
            Some(e) if running.len() == 1 => Err(e.to_string()),
            _ => Ok(()),
        };
        let _ = tx.send(Update::Source("containers", health)).await;
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(cpu: u64, sys: u64) -> RawStats {
        RawStats {
            cpu_total_ns: cpu,
            system_ns: sys,
            online_cpus: 2,
            mem_usage: 300 << 20,
            mem_inactive_file: Some(100 << 20),
            mem_limit: 1 << 30,
            ..Default::default()
        }
    }

    #[test]
    fn docker_stats_arithmetic() {
        // Half a core: 0.5 s of CPU while the system (2 CPUs) did 2 s.
        let p = raw(1_000_000_000, 10_000_000_000);
        let c = raw(1_500_000_000, 12_000_000_000);
        assert!((cpu_percent(&p, &c) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&c, &c), 0.0);
        assert_eq!(working_set(&c), 200 << 20);
        let no_cache = RawStats {
            mem_inactive_file: None,
            ..c
        };
        assert_eq!(working_set(&no_cache), 300 << 20);
    }

    #[test]
    fn limit_percent_and_rates() {
        let row = ContainerRow {
            service: "api".into(),
            name: "p-api-1".into(),
            id: "x".into(),
            number: 1,
            image: "i".into(),
            state: "running".into(),
            health: crate::model::container::Health::Healthy,
            restart_count: 2,
            managed: true,
            cpu_limit: Some(0.5),
            memory_limit: Some(1 << 30),
            ..Default::default()
        };
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(2);
        let mut p = raw(1_000_000_000, 10_000_000_000);
        p.net_rx = 1000;
        let mut c = raw(1_500_000_000, 12_000_000_000);
        c.net_rx = 5000;
        let s = derive(&row, Some(&(c, t1)), Some(&(p, t0)));
        assert!((s.cpu_limit_percent.unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(s.net_rx_bytes_per_s, Some(2000.0));
        assert!((s.memory_percent.unwrap() - 200.0 / 1024.0 * 100.0).abs() < 1e-9);
        let first = derive(&row, Some(&(c, t1)), None);
        assert_eq!(first.cpu_percent, None, "one sample is not a rate");
        // A container that stopped keeps no stale figures.
        let mut tr = Tracker::default();
        tr.push("x", p, t0);
        tr.push("x", c, t1);
        let stopped = ContainerRow {
            state: "exited".into(),
            ..row.clone()
        };
        let rows = tr.rows(&[stopped]);
        assert_eq!((rows[0].cpu_percent, rows[0].memory_bytes), (None, None));
        assert!(tr.rows(&[row])[0].cpu_percent.is_some());
    }
}
