//! The fleet collector's side of the engine: per `[[fleet]]` host its own connection
//! (an address, a context, or this machine's own engine for the console's first line),
//! made on first use and again after a failure, and its project's containers, stats and
//! the engine host's size each period.

use std::sync::Arc;

use crate::collect::fleet::{FleetSource, HostSample};
use crate::model::fleet::{FleetEngine, FleetEntry, FleetProject};
use crate::stack::engine::{DockerEngine, Engine, EngineError};

/// The fleet collector's engines: per `[[fleet]]` host its own connection, made on first
/// use and again after a failure, and its project's name (from its compose file once).
pub struct FleetEngines {
    entries: Vec<FleetEntry>,
    projects: Vec<Result<String, Arc<FleetHostError>>>,
    conns: Vec<tokio::sync::Mutex<Option<Arc<DockerEngine>>>>,
}

impl FleetEngines {
    pub fn new(entries: &[FleetEntry]) -> FleetEngines {
        let opts = crate::stack::compose::LoadOptions {
            project_name: None,
            env: std::env::vars().collect(),
        };
        let projects = entries
            .iter()
            .map(|e| match &e.project {
                FleetProject::Name(n) => Ok(n.clone()),
                FleetProject::Compose(f) => crate::stack::compose::load(f, &opts)
                    .map(|p| p.name)
                    .map_err(|source| {
                        Arc::new(FleetHostError::Compose {
                            file: f.clone(),
                            source,
                        })
                    }),
            })
            .collect();
        FleetEngines {
            entries: entries.to_vec(),
            projects,
            conns: entries.iter().map(|_| Default::default()).collect(),
        }
    }
}

/// Why a fleet host gave no sample; the first line is its Overview line's reason.
#[derive(Debug, thiserror::Error)]
pub enum FleetHostError {
    #[error("compose file {}: {source}", file.display())]
    Compose {
        file: std::path::PathBuf,
        source: crate::stack::compose::ComposeErrors,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The same compose error, read once and said each period.
    #[error(transparent)]
    Again(Arc<FleetHostError>),
}

/// Where a fleet entry's engine is, as the connection reads it.
pub fn fleet_env(e: &FleetEntry) -> crate::stack::remote::HostEnv {
    use crate::stack::context::{ContextEnv, DEFAULT_CONTEXT};
    use crate::stack::remote::HostEnv;
    match &e.engine {
        FleetEngine::Host(h) => HostEnv {
            docker_host: Some(h.clone()),
            home: std::env::var("HOME").ok(),
            context: DEFAULT_CONTEXT.into(),
            context_by: "[[fleet]] host",
            ..HostEnv::default()
        },
        FleetEngine::Context(c) => HostEnv::with_context(&ContextEnv {
            flag: Some(c.clone()),
            ..ContextEnv::from_process()
        }),
        FleetEngine::Here(_) => HostEnv::from_process(),
    }
}

impl FleetSource for FleetEngines {
    fn hosts(&self) -> Vec<crate::model::fleet::FleetRow> {
        self.entries
            .iter()
            .zip(&self.projects)
            .map(|(e, p)| crate::model::fleet::FleetRow {
                name: e.name.clone(),
                engine: e.engine_shown(),
                project: p.clone().unwrap_or_default(),
                home: matches!(e.engine, FleetEngine::Here(_)),
                ..Default::default()
            })
            .collect()
    }

    type Error = FleetHostError;

    async fn sample(&self, i: usize) -> Result<HostSample, FleetHostError> {
        let project = self.projects[i].clone().map_err(FleetHostError::Again)?;
        let mut slot = self.conns[i].lock().await;
        let engine = match &*slot {
            Some(e) => e.clone(),
            None => {
                let e = DockerEngine::connect_to(&fleet_env(&self.entries[i])).await?;
                slot.insert(Arc::new(e)).clone()
            }
        };
        let r = fleet_sample(&engine, project).await.map_err(Into::into);
        if r.is_err() {
            // Connect again next time: the engine may have moved or restarted.
            *slot = None;
        }
        r
    }
}

/// One host's project: its containers, the running ones' stats, the engine host's size.
async fn fleet_sample(engine: &DockerEngine, project: String) -> Result<HostSample, EngineError> {
    let containers = engine.list_containers(&project).await?;
    let (cpus, memory_total) = engine.host_capacity().await?;
    let running = containers.iter().filter(|c| c.state == "running");
    let stats = futures_util::future::join_all(
        running.map(|c| async { (c.id.clone(), engine.stats_once(&c.id).await) }),
    )
    .await
    .into_iter()
    .filter_map(|(id, r)| r.ok().map(|s| (id, s)))
    .collect();
    Ok(HostSample {
        project,
        local: engine.remote_host().is_none(),
        containers,
        stats,
        cpus,
        memory_total,
    })
}
