//! The hub: folds samples from every source into one immutable snapshot, keeps bounded
//! history, and publishes `Arc<Snapshot>` on a watch channel (notify, then let readers
//! pull). The recent hour is persisted under `runtime/` for whoever attaches later.
//!
//! Downstream of every source: collectors send `Update`s (and the `GpuSample` inside one)
//! and name nothing else here; the hub reads no file but its own history (`history_file`).
//! The joins of what several sources measure are pure functions here,
//! tested with fixtures (`gpu`, `agent_gpu`, `probes`).

use std::time::Duration;

mod activity;
pub mod agent_gpu;
mod fleet;
mod fold;
pub mod gpu;
mod history_file;
pub mod ollama_queue;
mod probes;
mod restarts;
mod spawn;
mod update;

pub use activity::ActivityChange;
pub use fold::Hub;
pub use restarts::SupervisorRestarts;
pub use spawn::{spawn, spawn_with};
pub use update::{GpuSample, Update};

pub const PERSIST_EVERY: Duration = Duration::from_secs(60);
pub const ADVISE_EVERY: Duration = Duration::from_secs(1);
