//! One file per subcommand; this one loads what they all need (compose file, settings,
//! engine) and turns failures into the stable exit codes.

pub mod bench;
pub mod config;
pub mod console;
pub mod console_actions;
pub mod console_shell;
pub mod console_switch;
pub mod doctor;
pub mod down;
pub mod engine_side;
pub mod export;
pub mod fleet_engines;
pub mod gateway;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod ollama;
pub mod probe;
pub mod progress;
pub mod ps;
pub mod restart;
pub mod status;
pub mod suggest;
pub mod supervise;
pub mod swarm;
pub mod up;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::cli::Global;
use crate::model::config::Config;
use crate::stack::compose::{self, LoadOptions, Project};
use crate::stack::engine::DockerEngine;
use crate::stack::journal::Journal;
use crate::stack::supervise::{Reporter, Supervisor};

/// Exit code: the command ran and the answer is yes.
pub const OK: u8 = 0;
/// Exit code: the command ran and the answer is no (a service did not come up).
pub const NO: u8 = 1;

pub struct Ctx {
    pub global: Global,
    pub project: Arc<Project>,
    pub config: Config,
    pub runtime_dir: PathBuf,
}

/// What loading does about a secret a fresh clone lacks (`compose::dotenv::GENERATED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstRun {
    /// Fail on it, saying that `osmen up` creates it.
    Require,
    /// `up` and the console: write it to `.env` and say so.
    Generate,
    /// `config` and `doctor`: resolve it to a masked placeholder and say `up` creates it.
    Preview,
}

impl Ctx {
    pub fn load(global: &Global) -> anyhow::Result<Ctx> {
        Ctx::load_first_run(global, FirstRun::Require).map(|(c, _)| c)
    }

    /// Loads the stack; with a first-run secret missing, does what `mode` says and
    /// returns the one line to show about it.
    pub fn load_first_run(
        global: &Global,
        mode: FirstRun,
    ) -> anyhow::Result<(Ctx, Option<String>)> {
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        let files = global.compose_files().map_err(|e| anyhow::anyhow!(e))?;
        let first = global.compose_file();
        let missing = compose::dotenv::missing(&first, &env);
        let dotenv = compose::dotenv::path(&first);
        let mut note = None;
        if !missing.is_empty() {
            match mode {
                FirstRun::Require => {}
                FirstRun::Generate => {
                    // Only for a file that loads once it has the value: a broken file
                    // gets its own error and no `.env`.
                    let mut trial = env.clone();
                    for n in &missing {
                        trial.insert(n.clone(), compose::dotenv::PLACEHOLDER.into());
                    }
                    let opts = LoadOptions {
                        project_name: global.project.clone(),
                        env: trial,
                    };
                    compose::load_files(&files, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let p = compose::dotenv::generate(&first, &missing)
                        .map_err(|e| anyhow::anyhow!(e))?;
                    note = Some(compose::dotenv::created_note(&p, &missing));
                }
                FirstRun::Preview => {
                    for n in &missing {
                        env.insert(n.clone(), compose::dotenv::PLACEHOLDER.into());
                    }
                    note = Some(compose::dotenv::pending_note(&dotenv, &missing));
                }
            }
        }
        let opts = LoadOptions {
            project_name: global.project.clone(),
            env,
        };
        let project = compose::load_files(&files, &opts).map_err(|e| {
            if mode == FirstRun::Require && !missing.is_empty() {
                anyhow::anyhow!(
                    "{e}\n{}: the first `osmen up` (or the console) writes a random one to {} \
                     (mode 0600), or set it there yourself",
                    missing.join(", "),
                    dotenv.display()
                )
            } else {
                anyhow::anyhow!("{e}")
            }
        })?;
        Ok((Ctx::finish(global, project)?, note))
    }

    /// A project known by name only (`-p NAME` and no compose file): no services, so
    /// every container with its label is an orphan to take down.
    pub fn without_file(global: &Global, name: &str) -> anyhow::Result<Ctx> {
        let dir = std::env::current_dir().context("the working directory")?;
        let project = Project {
            name: compose::normalize_project_name(name),
            file: PathBuf::new(),
            files: Vec::new(),
            sources: Vec::new(),
            dir,
            services: Default::default(),
            networks: Default::default(),
            volumes: Default::default(),
            secrets: Default::default(),
            configs: Default::default(),
            secret_vars: Default::default(),
            models: Default::default(),
        };
        Ctx::finish(global, project)
    }

    fn finish(global: &Global, project: Project) -> anyhow::Result<Ctx> {
        let dir = project.dir.clone();
        let config_path = global.config.clone().or_else(|| {
            let p = dir.join("config").join("osmen.toml");
            p.exists().then_some(p)
        });
        let config = match config_path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read the settings file {}", p.display()))?;
                Config::parse(&text, &p.display().to_string()).map_err(|e| anyhow::anyhow!(e))?
            }
        };
        let runtime_dir = runtime_dir_in(&dir);
        Ok(Ctx {
            global: global.clone(),
            project: Arc::new(project),
            config,
            runtime_dir,
        })
    }

    pub fn refuse_if_read_only(&self, what: &str) -> anyhow::Result<()> {
        if self.global.read_only {
            bail!(
                "--read-only is set: `{what}` would change the stack; run it without --read-only"
            );
        }
        Ok(())
    }

    pub fn journal(&self) -> Arc<Journal> {
        Arc::new(Journal::new(
            &self.runtime_dir,
            &self.project.name,
            self.config.supervisor.journal_max_entries,
        ))
    }

    pub async fn engine(&self) -> anyhow::Result<Arc<DockerEngine>> {
        Ok(Arc::new(DockerEngine::connect().await?))
    }

    pub async fn supervisor(&self) -> anyhow::Result<Supervisor<DockerEngine>> {
        self.supervisor_for(self.project.clone()).await
    }

    /// A supervisor for the file's stack as changed for this run (`up --scale`).
    pub async fn supervisor_for(
        &self,
        project: Arc<Project>,
    ) -> anyhow::Result<Supervisor<DockerEngine>> {
        Ok(Supervisor::new(
            self.engine().await?,
            project,
            self.config.supervisor.clone(),
            self.journal(),
            stderr_reporter(),
        ))
    }
}

/// Where osmen keeps what it writes for a project in `project_dir` (journal, history,
/// gateway key and address, the log): `runtime/` there, or OSMEN_RUNTIME_DIR.
pub fn runtime_dir_in(project_dir: &Path) -> PathBuf {
    std::env::var_os("OSMEN_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_dir.join("runtime"))
}

/// The runtime directory of the project the command line names, found before anything
/// loads (for the log): beside the first compose file. None when no compose file is
/// found and OSMEN_RUNTIME_DIR is unset, so a directory without a stack gets no
/// `runtime/`.
pub fn runtime_dir(global: &Global) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("OSMEN_RUNTIME_DIR") {
        return Some(PathBuf::from(d));
    }
    let first = global.compose_files().ok()?.into_iter().next()?;
    let stdin = first.as_os_str() == "-";
    if !stdin && !first.is_file() {
        return None;
    }
    let parent = match first.parent() {
        Some(p) if !stdin && !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&parent).unwrap_or(parent);
    Some(runtime_dir_in(&dir))
}

pub fn stderr_reporter() -> Reporter {
    Arc::new(|line: &str| {
        let _ = writeln!(std::io::stderr(), "{line}");
    })
}

/// Writes to stdout; a closed pipe (`osmen ps | head`) is not an error.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}
