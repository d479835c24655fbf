//! The host: total and per-core CPU, memory, swap, load, the file systems holding the
//! stack's volumes, network rates, and osmen's own CPU and memory (sysinfo). Refresh it
//! from a blocking thread: a refresh reads many /proc files.

use std::time::Instant;

use sysinfo::{Disks, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::model::snapshot::{DiskStats, HostStats};

pub struct Host {
    sys: System,
    disks: Disks,
    nets: Networks,
    pid: Option<Pid>,
    last: Option<(Instant, u64, u64)>,
    /// Mount points of interest (the engine's data dir, volume roots); empty = all.
    pub mounts: Vec<String>,
}

impl Host {
    pub fn new(mounts: Vec<String>) -> Result<Host, String> {
        let mut sys = System::new().map_err(|e| format!("host metrics unavailable: {e}"))?;
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        Ok(Host {
            sys,
            disks: Disks::new_with_refreshed_list()
                .map_err(|e| format!("disk metrics unavailable: {e}"))?,
            nets: Networks::new_with_refreshed_list()
                .map_err(|e| format!("network metrics unavailable: {e}"))?,
            pid: sysinfo::get_current_pid().ok(),
            last: None,
            mounts,
        })
    }

    /// One sample. CPU figures need a previous refresh at least
    /// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` earlier (the first call reads 0).
    pub fn sample(&mut self) -> HostStats {
        self.sys.refresh_cpu_usage();
        self.sys.refresh_memory();
        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
        }
        self.disks.refresh(true);
        self.nets.refresh(true);
        let (rx, tx) = self
            .nets
            .iter()
            .filter(|(name, _)| *name != "lo")
            .fold((0u64, 0u64), |(r, t), (_, d)| {
                (r + d.total_received(), t + d.total_transmitted())
            });
        let now = Instant::now();
        let (rx_rate, tx_rate) = match self.last {
            Some((t, r0, t0)) => {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                (
                    rx.saturating_sub(r0) as f64 / dt,
                    tx.saturating_sub(t0) as f64 / dt,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, rx, tx));
        let load = System::load_average()
            .ok()
            .map(|l| [l.one, l.five, l.fifteen]);
        let disks = self
            .disks
            .iter()
            .filter(|d| {
                let m = d.mount_point().to_string_lossy();
                self.mounts.is_empty() || self.mounts.iter().any(|x| x == m.as_ref())
            })
            .map(|d| DiskStats {
                mount: d.mount_point().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                available_bytes: d.available_space(),
            })
            .collect();
        let me = self.pid.and_then(|p| self.sys.process(p));
        HostStats {
            cpu_percent: f64::from(self.sys.global_cpu_usage()),
            per_core_percent: self
                .sys
                .cpus()
                .iter()
                .map(|c| f64::from(c.usage()))
                .collect(),
            memory_total_bytes: self.sys.total_memory(),
            memory_used_bytes: self.sys.used_memory(),
            memory_available_bytes: self.sys.available_memory(),
            swap_total_bytes: self.sys.total_swap(),
            swap_used_bytes: self.sys.used_swap(),
            load,
            disks,
            net_rx_bytes_per_s: rx_rate,
            net_tx_bytes_per_s: tx_rate,
            osmen_cpu_percent: me.map(|p| f64::from(p.cpu_usage())).unwrap_or(0.0),
            osmen_memory_bytes: me.map(|p| p.memory()).unwrap_or(0),
        }
    }
}

/// Samples the host each `period` on a blocking thread.
pub async fn run(
    mounts: Vec<String>,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let host = match Host::new(mounts) {
        Ok(h) => h,
        Err(e) => {
            let _ = tx
                .send(Update::Source("host", Err(format!("unavailable: {e}"))))
                .await;
            return;
        }
    };
    let host = std::sync::Arc::new(std::sync::Mutex::new(host));
    let mut tick = tokio::time::interval(period.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let h = host.clone();
        match tokio::task::spawn_blocking(move || h.lock().map(|mut h| h.sample()).ok()).await {
            Ok(Some(s)) => {
                let _ = tx.send(Update::Host(s)).await;
                let _ = tx.send(Update::Source("host", Ok(()))).await;
            }
            _ => {
                let _ = tx
                    .send(Update::Source("host", Err("sampling failed".into())))
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_this_machine() {
        let mut h = super::Host::new(vec!["/".into()]).unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let s = h.sample();
        assert!(s.memory_total_bytes > 0 && s.memory_available_bytes <= s.memory_total_bytes);
        assert_eq!(
            s.per_core_percent.len(),
            std::thread::available_parallelism().unwrap().get()
        );
        assert!(s.osmen_memory_bytes > 0, "the test process itself");
        assert!(s.disks.iter().any(|d| d.mount == "/"));
    }
}
