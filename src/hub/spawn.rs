//! The hub's task: updates in, snapshots out, the advisor once a second and the history
//! persisted once a minute.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::fold::Hub;
use super::update::Update;
use super::{ADVISE_EVERY, PERSIST_EVERY};
use crate::model::config::AdvisorConfig;
use crate::model::snapshot::Snapshot;

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
                crate::sys::trim_heap();
                last_persist = tokio::time::Instant::now();
            }
        }
        hub.persist();
    });
    (tx, srx)
}
