//! The hub: folds samples from every source into one immutable snapshot, keeps bounded
//! history, and publishes `Arc<Snapshot>` on a watch channel (notify, then let readers
//! pull). The recent hour is persisted under `runtime/` for whoever attaches later.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::collect::gpu;
use crate::model::history::History;
use crate::model::snapshot::{GpuStats, HostStats, ServiceStats, Snapshot, SourceHealth};

pub enum Update {
    Host(HostStats),
    Services(Vec<ServiceStats>),
    Gpus(Vec<GpuStats>),
    Ollama(serde_json::Value),
    Agents(Vec<serde_json::Value>),
    Scrapes(Vec<crate::model::snapshot::ScrapeTarget>),
    /// A source's health: Ok(()) after a good sample, Err(reason) otherwise.
    Source(&'static str, Result<(), String>),
}

pub const PERSIST_EVERY: Duration = Duration::from_secs(60);

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub struct Hub {
    pub snapshot: Snapshot,
    pub history: History,
    /// GPU processes as NVML gave them, attributed again when the container set changes.
    raw_gpus: Vec<GpuStats>,
    history_file: Option<PathBuf>,
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
            history_file,
        }
    }

    pub fn apply(&mut self, u: Update) {
        let t = now_secs();
        self.snapshot.taken_at = t;
        match u {
            Update::Host(h) => {
                self.history.push("host:cpu_percent", t, h.cpu_percent);
                self.history
                    .push("host:memory_used_bytes", t, h.memory_used_bytes as f64);
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
                    if let Some(m) = x.memory_bytes {
                        self.history.push(
                            &format!("service:{}:memory_bytes", x.container),
                            t,
                            m as f64,
                        );
                    }
                }
                self.snapshot.services = s;
                self.attribute_gpus();
            }
            Update::Gpus(g) => {
                self.raw_gpus = g;
                self.attribute_gpus();
            }
            Update::Ollama(o) => self.snapshot.ollama = Some(o),
            Update::Agents(a) => self.snapshot.agents = a,
            Update::Scrapes(t) => self.snapshot.scrapes = t,
            Update::Source(name, r) => {
                let entry = self
                    .snapshot
                    .sources
                    .entry(name.to_string())
                    .or_insert(SourceHealth {
                        status: String::new(),
                        last_error: None,
                        last_sample: None,
                    });
                match r {
                    Ok(()) => {
                        entry.status = "ok".into();
                        entry.last_sample = Some(t);
                    }
                    Err(e) => {
                        entry.status = if e.starts_with("unavailable") {
                            e.clone()
                        } else {
                            format!("error: {e}")
                        };
                        entry.last_error = Some(e);
                    }
                }
            }
        }
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

    pub fn persist(&self) {
        if let Some(p) = &self.history_file {
            let recent = self.history.recent(now_secs() - 3600.0);
            if let Ok(text) = serde_json::to_string(&recent) {
                let tmp = p.with_extension("json.tmp");
                if std::fs::create_dir_all(p.parent().unwrap_or(std::path::Path::new(".")))
                    .and_then(|_| std::fs::write(&tmp, text))
                    .and_then(|_| std::fs::rename(&tmp, p))
                    .is_err()
                {
                    // History is a convenience; a full disk must not stop the console.
                }
            }
        }
    }
}

/// Runs the hub: updates in, snapshots out.
pub fn spawn(
    project: &str,
    runtime_dir: Option<PathBuf>,
) -> (mpsc::Sender<Update>, watch::Receiver<Arc<Snapshot>>) {
    let mut hub = Hub::new(project, runtime_dir);
    let (tx, mut rx) = mpsc::channel::<Update>(256);
    let (stx, srx) = watch::channel(Arc::new(hub.snapshot.clone()));
    tokio::spawn(async move {
        let mut last_persist = tokio::time::Instant::now();
        while let Some(u) = rx.recv().await {
            hub.apply(u);
            while let Ok(more) = rx.try_recv() {
                hub.apply(more);
            }
            stx.send_replace(Arc::new(hub.snapshot.clone()));
            if last_persist.elapsed() >= PERSIST_EVERY {
                hub.persist();
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
}
