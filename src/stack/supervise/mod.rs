//! The supervisor: brings the stack up in dependency order (independent services in
//! parallel), takes it down in reverse, restarts what crashes with exponential backoff and
//! holds what crash-loops. Every action is journaled before it is carried out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::compose::{Condition, HealthTest, Project, Restart, Service};
use super::engine::{
    Engine, EngineError, LABEL_HASH, LABEL_NETWORK, LABEL_OSMEN, LABEL_PROJECT, LABEL_VOLUME,
};
use super::journal::Journal;
use super::plan;
use super::provision;
use crate::model::config::SupervisorConfig;
use crate::model::container::{ContainerRow, Health};

mod balancers;
mod down;
mod models;
mod restart;
mod supervision;
mod up;

pub use restart::{RestartTracker, Verdict, backoff};

/// Progress lines for the operator (stderr for the CLI, the event log for the console).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    // Not a `source`: the message already says it, and a chain would say it twice.
    #[error("cannot write the journal {path}: {error} (osmen does not act unrecorded)")]
    Journal { path: String, error: std::io::Error },
    #[error("{0}")]
    Plan(String),
    #[error("{}", .0.join("\n"))]
    Failed(Vec<String>),
}

type SResult<T> = Result<T, SuperviseError>;

#[derive(Debug, Clone, PartialEq)]
enum SvcState {
    Pending,
    Running,
    Healthy,
    /// Still starting; the text says why (health state, last check output).
    Starting(String),
    Exited(i64),
    Failed(String),
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Wait until every started service is healthy (or running, without a health check).
    pub wait: bool,
    /// Recreate containers even when their configuration is unchanged.
    pub force_recreate: bool,
    /// `--pull POLICY`: overrides every service's pull_policy.
    pub pull: Option<super::image::PullPolicy>,
}

/// What `up` did to each service.
#[derive(Debug, Clone, PartialEq)]
pub struct UpOutcome {
    pub service: String,
    /// created, recreated, started, unchanged, adopted.
    pub action: String,
    pub state: String,
}

pub struct Supervisor<E: Engine> {
    engine: Arc<E>,
    project: Arc<Project>,
    cfg: SupervisorConfig,
    journal: Arc<Journal>,
    report: Reporter,
    /// One balancer rewrite at a time: a target's and its balancer's tasks both rewrite,
    /// and an older list must not land after a newer one.
    balance: Arc<tokio::sync::Mutex<()>>,
    /// Compose `models:` made present during this `up` (see models.rs).
    models: Arc<tokio::sync::Mutex<models::ModelsState>>,
}

/// Gives a recreated container the anonymous volumes of the one it replaces: a volume of
/// the old container that is none of the project's named volumes, at a path the new spec
/// mounts anonymously or not at all (an image `VOLUME`), is mounted there by name.
/// (docker-compose and compose v2 keep them the same way.)
fn inherit_anonymous_volumes(
    spec: &mut crate::stack::engine::ContainerSpec,
    project: &Project,
    old: &[(String, String)],
) {
    use crate::stack::compose::{Mount, MountKind};
    let named: BTreeSet<&str> = project.volumes.values().map(|v| v.name.as_str()).collect();
    for (volume, target) in old {
        if named.contains(volume.as_str()) {
            continue;
        }
        match spec.mounts.iter_mut().find(|m| m.target == *target) {
            Some(m) if m.kind == MountKind::Volume && m.source.is_none() => {
                m.source = Some(volume.clone())
            }
            Some(_) => {}
            // With volumes_from, a path the file does not mount may come from another
            // container: the engine gives it again.
            None if !spec.settings.volumes_from.is_empty() => {}
            None => spec.mounts.push(Mount::new(
                MountKind::Volume,
                Some(volume.clone()),
                target.clone(),
                false,
            )),
        }
    }
}

impl<E: Engine> Clone for Supervisor<E> {
    fn clone(&self) -> Self {
        Supervisor {
            engine: self.engine.clone(),
            project: self.project.clone(),
            cfg: self.cfg.clone(),
            journal: self.journal.clone(),
            report: self.report.clone(),
            balance: self.balance.clone(),
            models: self.models.clone(),
        }
    }
}

fn base_labels(project: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_PROJECT.to_string(), project.to_string()),
        (LABEL_OSMEN.to_string(), "true".to_string()),
    ])
}

impl<E: Engine> Supervisor<E> {
    pub fn new(
        engine: Arc<E>,
        project: Arc<Project>,
        cfg: SupervisorConfig,
        journal: Arc<Journal>,
        report: Reporter,
    ) -> Self {
        Supervisor {
            engine,
            project,
            cfg,
            journal,
            report,
            balance: Default::default(),
            models: Default::default(),
        }
    }

    fn record(&self, service: &str, action: &str, reason: &str) -> SResult<()> {
        self.journal
            .record(service, action, reason)
            .map_err(|error| SuperviseError::Journal {
                path: self.journal.path().display().to_string(),
                error,
            })
    }

    /// Creates one container; each warning the engine gives (a limit the kernel cannot
    /// honour) goes to the operator and the journal, with the service's name, as
    /// `docker` prints them.
    async fn create(&self, service: &str, spec: &super::engine::ContainerSpec) -> SResult<String> {
        let created = self.engine.create(spec).await?;
        for w in &created.warnings {
            (self.report)(&format!("{service}: WARNING: {w}"));
            self.record(service, "warning", &format!("{}: {w}", spec.name))?;
        }
        Ok(created.id)
    }

    /// Starts a container, then runs its service's `post_start` hooks in it; a failing
    /// hook stops the container again and is the error (the Compose Specification's rule).
    pub async fn start_container(&self, service: &str, id: &str) -> SResult<()> {
        self.engine.start(id).await?;
        let Some(svc) = self.project.services.get(service) else {
            return Ok(());
        };
        match crate::stack::hooks::post_start(&*self.engine, svc, id).await {
            Ok(0) => Ok(()),
            Ok(n) => self.record(service, "hook", &format!("post_start: {n} ran")),
            Err(why) => {
                self.record(service, "hook", &why.to_string())?;
                let _ = self.engine.stop(id, self.grace(Some(svc))).await;
                // `up` names the service in front of its failure.
                Err(SuperviseError::Failed(vec![format!(
                    "{why}; the container was stopped"
                )]))
            }
        }
    }

    /// Runs the service's `pre_stop` hooks in a running container, then stops it; a
    /// failing hook aborts the stop and is the error (the Compose Specification's rule).
    pub async fn stop_container(&self, service: &str, id: &str) -> SResult<()> {
        let svc = self.project.services.get(service);
        if let Some(s) = svc {
            match crate::stack::hooks::pre_stop(&*self.engine, s, id).await {
                Ok(0) => {}
                Ok(n) => self.record(service, "hook", &format!("pre_stop: {n} ran"))?,
                Err(why) => {
                    self.record(service, "hook", &why.to_string())?;
                    return Err(SuperviseError::Failed(vec![format!(
                        "{service}: {why}; the container was not stopped"
                    )]));
                }
            }
        }
        self.engine.stop(id, self.grace(svc)).await?;
        Ok(())
    }

    /// A container's volumes that are none of the project's named ones.
    async fn anonymous_volumes(&self, id: &str) -> SResult<Vec<String>> {
        let named: BTreeSet<&str> = self
            .project
            .volumes
            .values()
            .map(|v| v.name.as_str())
            .collect();
        Ok(self
            .engine
            .volume_mounts(id)
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| !named.contains(n.as_str()))
            .collect())
    }

    fn grace(&self, svc: Option<&Service>) -> i64 {
        svc.and_then(|s| s.stop_grace_period)
            .unwrap_or(self.cfg.stop_grace)
            .as_secs() as i64
    }
}

fn is_osmen(c: &ContainerRow) -> bool {
    c.managed
}

fn state_word(s: &SvcState) -> String {
    match s {
        SvcState::Pending => "pending".into(),
        SvcState::Running => "running".into(),
        SvcState::Healthy => "healthy".into(),
        SvcState::Starting(w) => format!("starting ({w})"),
        SvcState::Exited(c) => format!("exited({c})"),
        SvcState::Failed(w) => format!("failed: {w}"),
    }
}
