//! The host: total and per-core CPU, memory, swap, load, the file systems holding the
//! stack's volumes, network rates, and osmen's own CPU and memory (sysinfo). Refresh it
//! from a blocking thread: a refresh reads many /proc files.

use std::time::Instant;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use crate::model::snapshot::{DiskStats, HostStats};

/// sysinfo could not read the host (no /proc, say).
#[derive(Debug, thiserror::Error)]
#[error("host metrics unavailable: {0}")]
pub struct HostError(sysinfo::Error);

pub struct Host {
    sys: System,
    pid: Option<Pid>,
    last: Option<(Instant, u64, u64)>,
    /// Mount points of interest (the engine's data dir, volume roots); empty = all.
    pub mounts: Vec<String>,
}

impl Host {
    pub fn new(mounts: Vec<String>) -> Result<Host, HostError> {
        let mut sys = System::new().map_err(HostError)?;
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        Ok(Host {
            sys,
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
        // One read of /proc/net/dev rather than sysinfo's walk of /sys/class/net (a file
        // per counter per interface, and a Docker host has a veth per container).
        let (rx, tx) = std::fs::read_to_string("/proc/net/dev")
            .map(|t| host_traffic(&t))
            .unwrap_or((0, 0));
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
        // statvfs of the few paths that matter, not a refresh of every mount (a Docker
        // host has one overlay mount per container).
        let disks = self
            .mounts
            .iter()
            .filter_map(|m| {
                crate::sys::space(m).ok().map(|sp| DiskStats {
                    mount: m.clone(),
                    total_bytes: sp.total,
                    available_bytes: sp.available,
                })
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
/// Bytes received and sent by the host's own interfaces, from /proc/net/dev: loopback
/// and the container plumbing (veth pairs, Docker bridges) are left out, since container
/// traffic crosses them twice and is shown per container anyway.
pub fn host_traffic(proc_net_dev: &str) -> (u64, u64) {
    proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            let virtual_if = name == "lo"
                || name.starts_with("veth")
                || name.starts_with("docker")
                || name.starts_with("br-");
            if virtual_if {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((*f.first()?, *f.get(8)?))
        })
        .fold((0, 0), |(r, t), (a, b)| (r + a, t + b))
}

pub async fn run(
    mounts: Vec<String>,
    mut tick: super::ticker::Ticker,
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
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
                   \x20   lo: 5000 10 0 0 0 0 0 0 5000 10 0 0 0 0 0 0\n\
                   \x20 eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n\
                   vethab12: 700 7 0 0 0 0 0 0 900 9 0 0 0 0 0 0\n\
                   docker0: 300 3 0 0 0 0 0 0 400 4 0 0 0 0 0 0\n\
                   \x20wlan0: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0\n";
        assert_eq!(super::host_traffic(dev), (1010, 2020));
    }
}
