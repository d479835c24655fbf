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
    fn list(&self) -> impl Future<Output = Result<Vec<ContainerRow>, String>> + Send;
    fn stats(&self, id: &str) -> impl Future<Output = Result<RawStats, String>> + Send;
    /// Lifecycle events (container ids); the collector re-lists when one arrives.
    fn events(&self) -> Pin<Box<dyn Stream<Item = Result<String, String>> + Send>>;
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
        state: row.state.clone(),
        health: row.health.as_str().to_string(),
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

/// Samples every running container each `period`; re-lists only when the engine reports a
/// lifecycle event. Ends when `stop` turns true.
pub async fn run<S: ContainerSource>(
    src: std::sync::Arc<S>,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    use futures_util::StreamExt;
    let mut tracker = Tracker::default();
    let mut rows: Vec<ContainerRow> = Vec::new();
    let mut stale = true;
    let mut events = src.events();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            ev = events.next() => match ev {
                Some(Ok(_)) => { stale = true; continue; }
                Some(Err(e)) => {
                    let _ = tx.send(Update::Source("containers", Err(format!("engine unreachable: events: {e}")))).await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    events = src.events();
                    stale = true;
                    continue;
                }
                None => { events = src.events(); stale = true; continue; }
            },
            _ = tick.tick() => {}
        }
        if stale {
            match src.list().await {
                Ok(r) => {
                    rows = r;
                    stale = false;
                }
                Err(e) => {
                    let _ = tx
                        .send(Update::Source(
                            "containers",
                            Err(format!("engine unreachable: {e}")),
                        ))
                        .await;
                    continue;
                }
            }
        }
        let running: Vec<&ContainerRow> = rows.iter().filter(|r| r.state == "running").collect();
        let samples =
            futures_util::future::join_all(running.iter().map(|r| src.stats(&r.id))).await;
        let at = Instant::now();
        let mut failed = None;
        for (r, s) in running.iter().zip(samples) {
            match s {
                Ok(s) => tracker.push(&r.id, s, at),
                Err(e) => {
                    // A container that stopped between the list and the sample.
                    failed = Some(e);
                    stale = true;
                }
            }
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        tracker.forget_missing(&ids);
        let _ = tx.send(Update::Services(tracker.rows(&rows))).await;
        let health = match failed {
            Some(e) if running.len() == 1 => Err(e),
            _ => Ok(()),
        };
        let _ = tx.send(Update::Source("containers", health)).await;
    }
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
            exit_code: None,
            restart_count: 2,
            started_at: String::new(),
            ports: vec![],
            health_output: String::new(),
            config_hash: String::new(),
            managed: true,
            cpu_limit: Some(0.5),
            memory_limit: Some(1 << 30),
            addresses: vec![],
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
