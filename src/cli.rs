//! Command-line definitions. Global options come before the subcommand, as with
//! `docker compose`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::stack::image::PullPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "osmen",
    version,
    about = "Terminal operations console for the OsMEN agent stack",
    long_about = "osmen starts and supervises the OsMEN container stack of docker-compose.yml \
                  through the Docker Engine API.\n\nWithout a subcommand, on a terminal, it opens \
                  the console: it starts the embedded gateway, brings the stack up (or adopts \
                  it) and shows services, agents, GPU, logs, suggestions and events; press ? \
                  inside for the keys. Quitting never stops the stack.\n\nExit codes: 0 ok, \
                  1 ran but the answer is no (a service did not come up), 2 error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Console: only watch; do not bring the stack up or supervise it.
    #[arg(long = "no-up")]
    pub no_up: bool,
    /// Console: ASCII only (for fonts without braille, blocks or box drawing).
    #[arg(long)]
    pub ascii: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Compose file (repeatable: later files are merged over earlier ones, as Compose
    /// does; `-` reads standard input). Default: COMPOSE_FILE (split on
    /// COMPOSE_PATH_SEPARATOR, `:`), else compose.yaml, compose.yml, docker-compose.yml or
    /// docker-compose.yaml found here or in a parent directory, with its *.override.* file.
    #[arg(
        short = 'f',
        long = "file",
        env = "OSMEN_COMPOSE_FILE",
        value_name = "FILE"
    )]
    pub file: Vec<PathBuf>,
    /// Project name (default: the compose file's `name:`, else its directory's name).
    #[arg(short = 'p', long = "project-name", env = "COMPOSE_PROJECT_NAME")]
    pub project: Option<String>,
    /// Enable a compose profile (repeatable).
    #[arg(
        long = "profile",
        value_name = "PROFILE",
        env = "COMPOSE_PROFILES",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
    /// osmen settings file (default: config/osmen.toml beside the compose file, if present).
    #[arg(long = "config", value_name = "FILE", env = "OSMEN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Refuse every command that would change the stack.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// How the stack runs: `compose` (osmen creates and supervises the containers) or
    /// `swarm` (Swarm services, as `docker stack deploy`; up, down, ps and suggest --apply).
    #[arg(
        long = "engine",
        value_enum,
        default_value = "compose",
        env = "OSMEN_ENGINE"
    )]
    pub engine: EngineKind,
    /// The Docker context to use (as `docker --context`; it wins over DOCKER_HOST). Default:
    /// DOCKER_HOST, else DOCKER_CONTEXT, else the Docker CLI's current context.
    #[arg(long = "context", value_name = "NAME")]
    pub context: Option<String>,
    /// What goes to the log, runtime/osmen.log beside the compose file (never to the
    /// terminal): error, warn, info, debug or trace, or directives as RUST_LOG takes them
    /// (osmen::stack=debug,warn).
    #[arg(
        long = "log-level",
        value_name = "LEVEL",
        default_value = "info",
        env = "OSMEN_LOG"
    )]
    pub log_level: crate::logging::LogFilter,
    /// COMPOSE_FILE as the working directory's `.env` sets it (see `with_dotenv`).
    #[arg(skip)]
    pub dotenv_compose_file: Option<String>,
}

/// The value `.env` in `dir` gives `name`, read as the loader reads it (the environment
/// interpolates it). A missing or unreadable `.env` gives none: the load reports its
/// errors with file and line.
fn dotenv_value(dir: &std::path::Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".env")).ok()?;
    let env = |k: &str| std::env::var(k).ok();
    let pairs = crate::stack::compose::envfile::parse(
        &text,
        crate::stack::compose::envfile::Format::Compose,
        &env,
    )
    .ok()?;
    pairs
        .into_iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

impl Global {
    /// Takes COMPOSE_FILE and COMPOSE_PROFILES from `.env` where neither the command line
    /// nor the environment sets them, as docker compose does: COMPOSE_FILE from the
    /// working directory's `.env` (it decides where the project is), COMPOSE_PROFILES
    /// from the project directory's (the first compose file's), else the working
    /// directory's.
    pub fn with_dotenv(mut self, cwd: &std::path::Path) -> Global {
        if self.file.is_empty() && std::env::var_os("COMPOSE_FILE").is_none() {
            self.dotenv_compose_file = dotenv_value(cwd, "COMPOSE_FILE");
        }
        if self.profiles.is_empty() && std::env::var_os("COMPOSE_PROFILES").is_none() {
            let first = self.compose_file();
            let project = first
                .parent()
                .map(|d| cwd.join(d))
                .unwrap_or(cwd.to_path_buf());
            let value = dotenv_value(&project, "COMPOSE_PROFILES")
                .or_else(|| dotenv_value(cwd, "COMPOSE_PROFILES"));
            self.profiles = value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
        }
        self
    }

    /// The compose files, in merge order: `-f` (or OSMEN_COMPOSE_FILE), else COMPOSE_FILE
    /// (the environment's, else `.env`'s), else the discovered file and its override. Discovery's warnings (several files with
    /// supported names) go to standard error once.
    pub fn compose_files(&self) -> Result<Vec<PathBuf>, crate::stack::compose::DiscoverError> {
        if !self.file.is_empty() {
            return Ok(self.file.clone());
        }
        let list = std::env::var_os("COMPOSE_FILE")
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| self.dotenv_compose_file.clone());
        if let Some(list) = list.filter(|v| !v.is_empty()) {
            let sep = std::env::var("COMPOSE_PATH_SEPARATOR").unwrap_or_else(|_| ":".into());
            return Ok(list
                .split(sep.as_str())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect());
        }
        let found = crate::stack::compose::discover(std::path::Path::new(""))?;
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            for w in &found.warnings {
                eprintln!("warning: {w}");
            }
        });
        Ok(found.files)
    }

    /// The first compose file: the project directory is its directory. When none is found,
    /// `compose.yaml` (the load then says what is missing).
    pub fn compose_file(&self) -> PathBuf {
        self.compose_files()
            .ok()
            .and_then(|f| f.into_iter().next())
            .unwrap_or_else(|| PathBuf::from("compose.yaml"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineKind {
    Compose,
    Swarm,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start the stack (or the named services and what they depend on).
    Up(UpArgs),
    /// Stop and remove the stack's containers and networks; volumes stay unless --volumes.
    Down(DownArgs),
    /// List the stack's containers.
    Ps(PsArgs),
    /// Show a service's logs.
    Logs(LogsArgs),
    /// Restart a service's containers.
    Restart(RestartArgs),
    /// Show the resolved stack (interpolated, validated, secrets masked).
    Config(ConfigArgs),
    /// Keep the stack running: restart what crashes (with backoff), hold crash loops.
    Supervise,
    /// Exit 0 when an HTTP URL on this host answers 200 (for exec health checks).
    Probe(ProbeArgs),
    /// Pull the services' images from their registries, with progress.
    Pull(ServicesArgs),
    /// Build the images of services that have a `build:` section.
    Build(ServicesArgs),
    /// Check everything a first run needs: engine, compose file, images, ports, disk, GPU.
    Doctor,
    /// Run the agents gateway headless (the API of the performance guide).
    Gateway(GatewayArgs),
    /// Scrape one Prometheus endpoint: every family and sample, and P50/P95/P99.
    Metrics(MetricsArgs),
    /// Live host, container, GPU, Ollama and agent figures (the console's snapshot).
    Status(StatusArgs),
    /// The scaling advisor: thresholds crossed, the evidence, and what to do (exit 1 when
    /// there is advice).
    Suggest(SuggestArgs),
    /// The guide's capacity row for a load, and a projection from this deployment's costs.
    Plan(PlanArgs),
    /// The guide's load test: N users x M requests against an agent, with P50/P95/P99.
    Bench(BenchArgs),
    /// Write the stack as manifests for another orchestrator (`export k8s`).
    Export(ExportArgs),
    /// The stack's Ollama: loaded models (context, GPU/CPU share, time to unload) and
    /// warm, unload or pin a model.
    Ollama(OllamaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `osmen man > osmen.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct OllamaArgs {
    #[command(subcommand)]
    pub action: OllamaAction,
}

#[derive(Debug, Subcommand)]
pub enum OllamaAction {
    /// The loaded models: context length, GPU and CPU share, size, and time until unload.
    Ps {
        /// Print JSON (the snapshot's `ollama` object).
        #[arg(long)]
        json: bool,
    },
    /// Load a model with Ollama's configured keep-alive (OLLAMA_KEEP_ALIVE, else 5m).
    Warm { model: String },
    /// Unload a model now (keep-alive 0).
    Unload { model: String },
    /// Keep a model loaded until Ollama stops (keep-alive -1).
    Pin { model: String },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Kubernetes: Deployments or StatefulSets with claims, Services, ConfigMaps, Secret
    /// references (never values), limits, probes, nvidia.com/gpu and the gateway's HPA.
    K8s(K8sArgs),
}

#[derive(Debug, Args)]
pub struct K8sArgs {
    /// Write one file per service and a kustomization.yaml into DIR (default: all
    /// manifests to standard output).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Storage requested by each PersistentVolumeClaim.
    #[arg(long, value_name = "SIZE", default_value = "10Gi")]
    pub volume_size: String,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    #[arg(long)]
    pub json: bool,
    /// Apply the suggestion with this id (`cpu:gateway`): limits in place with no restart,
    /// replicas by converging the service. Journaled first.
    #[arg(long, value_name = "ID")]
    pub apply: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Concurrent users to plan for.
    #[arg(long)]
    pub users: u64,
    /// Requests per day (default: 100 per user).
    #[arg(long, value_name = "R")]
    pub requests_per_day: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The gateway (default: http://OSMEN_GATEWAY_LISTEN or http://127.0.0.1:8080).
    #[arg(long)]
    pub url: Option<String>,
    /// API key (default: the first of OSMEN_API_KEYS, else the gateway's generated key).
    #[arg(long, env = "OSMEN_BENCH_KEY", hide_env_values = true)]
    pub key: Option<String>,
    #[arg(long, default_value = "daily_brief")]
    pub agent: String,
    /// Concurrent users (connections).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Requests per user (with --rate: per user's share of the total).
    #[arg(long, default_value_t = 100)]
    pub requests: u64,
    /// Run for this long instead of a number of requests (e.g. 30s).
    #[arg(long)]
    pub duration: Option<String>,
    /// Open loop: start this many requests per second in all, latency measured from each
    /// request's intended start.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The input text (each request appends its number).
    #[arg(long, default_value = "Test request")]
    pub input: String,
    /// Per-request timeout.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// GET --url itself instead of an agent (a trivial endpoint, to measure the tool).
    #[arg(long)]
    pub raw: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on (default 127.0.0.1:8080, or OSMEN_GATEWAY_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Gateway settings (default: config/gateway.toml beside the compose file, if present).
    #[arg(long, value_name = "FILE")]
    pub gateway_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
    /// Refresh every second until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Also run a short Ollama generation: time to first token and tokens/s.
    #[arg(long)]
    pub probe_ollama: bool,
    /// The `[[fleet]]` hosts of the settings file instead, one line each.
    #[arg(long)]
    pub fleet: bool,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The endpoint, e.g. http://127.0.0.1:8080/metrics.
    pub url: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// http://HOST:PORT/PATH (plain HTTP only).
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Wait until every service is healthy (or running, if it has no health check).
    #[arg(long)]
    pub wait: bool,
    /// Recreate containers even if their configuration did not change.
    #[arg(long)]
    pub force_recreate: bool,
    /// Pull policy for every service: always, missing, never, build, daily, weekly or
    /// every_<duration> (pull an image tagged longer ago).
    #[arg(long, value_name = "POLICY", value_parser = parse_pull_policy)]
    pub pull: Option<PullPolicy>,
    /// Run N replicas of SERVICE instead of the file's count (repeatable): gateway=3.
    /// A balancer in front of it (x-osmen-balance) follows.
    #[arg(long, value_name = "SERVICE=N", value_parser = parse_scale)]
    pub scale: Vec<(String, u32)>,
    pub services: Vec<String>,
}

/// An `up --scale` value that is not SERVICE=N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("{0:?}: write SERVICE=N, for example gateway=3")]
    NoCount(String),
    #[error("{arg:?}: {count:?} is not a replica count (0 or more)")]
    BadCount { arg: String, count: String },
    #[error("{0:?}: name the service, for example gateway=3")]
    NoService(String),
}

fn parse_scale(s: &str) -> Result<(String, u32), ScaleError> {
    let (svc, n) = s
        .split_once('=')
        .ok_or_else(|| ScaleError::NoCount(s.into()))?;
    let n: u32 = n.parse().map_err(|_| ScaleError::BadCount {
        arg: s.into(),
        count: n.into(),
    })?;
    if svc.is_empty() {
        return Err(ScaleError::NoService(s.into()));
    }
    Ok((svc.to_string(), n))
}

fn parse_pull_policy(s: &str) -> Result<PullPolicy, crate::stack::image::ImageError> {
    PullPolicy::parse(s)
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services (default: every active service).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also remove the named volumes declared in the compose file (their data is lost).
    #[arg(short = 'v', long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// One JSON list, one object per container.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    pub service: String,
    /// Keep printing new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines of each container.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    pub service: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
    /// Every service, also those of profiles not enabled (by default only the services
    /// `up` would start, as `docker compose config` shows them).
    #[arg(long = "all-profiles", alias = "all")]
    pub all_profiles: bool,
}
