//! The Docker Engine behind a small trait. The supervisor speaks in compose terms
//! ([`ContainerSpec`], [`ContainerRow`]); only this module knows bollard's types, so an
//! engine upgrade or a fake engine touches nothing else.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerUpdateBody, DeviceMapping,
    DeviceRequest, EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig,
    HostConfigCgroupnsModeEnum, HostConfigLogConfig, Mount as BMount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, ResourcesBlkioWeightDevice,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, ThrottleDevice, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use super::compose::settings::DeviceRate;
use super::compose::{
    ContainerSettings, GpuRequest, HealthTest, Healthcheck, MountKind, NetworkDef, Port, Restart,
    VolumeDef,
};
use super::image::{Credentials, ImageRef};
use crate::model::console::{HealthRun, Inspection};
use crate::model::container::{ContainerRow, Health, PortRow};
use crate::model::progress::LayerEvent;
use crate::model::snapshot::RawStats;

mod create;
mod docker;
mod files;
mod inspect;
mod networks;
mod swarm;

pub use create::health_config;
use create::*;
use files::*;
use inspect::*;
use networks::*;
pub use swarm::{ServiceSpec, SwarmService, Task};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const LABEL_WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_VERSION: &str = "com.docker.compose.version";
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";
/// Marks containers osmen created itself (others were adopted from Compose).
pub const LABEL_OSMEN: &str = "io.osmen.managed";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {host}: {detail}\n  {hint}")]
    Unreachable {
        host: String,
        detail: String,
        hint: &'static str,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("the engine refused ({status}): {message}")]
    Api { status: u16, message: String },
    /// A pull or build the registry or builder refused, with its own message.
    #[error("{0}")]
    Image(String),
    /// `DOCKER_HOST` names no address osmen can use.
    #[error(transparent)]
    Remote(#[from] super::remote::RemoteError),
    #[error("{0}")]
    Other(String),
}

impl From<BollardError> for EngineError {
    fn from(e: BollardError) -> Self {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::NotFound(message),
            BollardError::DockerResponseServerError {
                status_code,
                message,
            } => EngineError::Api {
                status: status_code,
                message,
            },
            other => EngineError::Other(other.to_string()),
        }
    }
}

pub type EResult<T> = Result<T, EngineError>;
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// Everything needed to create one container of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub memory_reservation: Option<u64>,
    pub restart: Restart,
    pub ports: Vec<Port>,
    /// (kind, engine-side source, target, read-only).
    /// The service's mounts, volume names resolved to the engine's.
    pub mounts: Vec<crate::stack::compose::Mount>,
    pub gpus: Vec<GpuRequest>,
    /// The networks to join, in attachment order (the first at create, the others
    /// connected after it, as Compose does).
    pub networks: Vec<Attachment>,
    /// Secrets and configs written into the container after create, before start (those
    /// from `environment:` or `content:`, or a file with uid, gid or mode).
    pub files: Vec<InjectedFile>,
    pub stop_timeout_s: Option<i64>,
    pub stop_signal: Option<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub init: Option<bool>,
    pub log_driver: Option<(String, HashMap<String, String>)>,
    /// The service's container settings; `service:x` modes already resolved to
    /// `container:<id>` by the supervisor (see `plan::resolve_refs`).
    pub settings: ContainerSettings,
    /// Links as the engine takes them (`CONTAINER:ALIAS`): on the first network's endpoint,
    /// or in HostConfig with a network_mode.
    pub links: Vec<String>,
}

/// One network attachment of a container: the engine-side network name and its
/// endpoint's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    pub network: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub link_local_ips: Vec<String>,
    pub mac_address: Option<String>,
    pub driver_opts: std::collections::BTreeMap<String, String>,
}

/// Where an injected file's bytes come from.
#[derive(Clone, PartialEq)]
pub enum FileContent {
    /// A value read at load (a secret's variable, a config's `content:`).
    Inline(String),
    /// A host file, read when the container is created.
    Path(std::path::PathBuf),
}

/// The value never appears in a Debug print (specs are logged).
impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileContent::Inline(v) => write!(f, "Inline(<{} bytes>)", v.len()),
            FileContent::Path(p) => write!(f, "Path({})", p.display()),
        }
    }
}

/// A file copied into a created container through the archive API, as `docker compose`
/// injects secrets and configs.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedFile {
    /// Absolute path in the container.
    pub target: String,
    pub content: FileContent,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A created container and what the engine said about it (`Warnings`: settings the
/// kernel cannot honour, such as swap limits without swap accounting).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct LogChunk {
    pub stream: LogStream,
    pub text: String,
}

/// A container lifecycle event of the project (health-check execs are filtered out).
#[derive(Debug, Clone)]
pub struct EngineEvent {
    pub container_id: String,
    pub service: String,
    /// die, start, kill, stop, health_status: healthy, oom, destroy...
    pub action: String,
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    pub host: String,
    /// The engine's data directory (images live below it).
    pub root_dir: Option<String>,
    /// Container runtimes the engine knows (`runc`, `nvidia`, ...).
    pub runtimes: Vec<String>,
}

/// A build request for the engine's classic builder.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub tag: String,
    pub dockerfile: String,
    pub args: HashMap<String, String>,
    pub target: Option<String>,
    pub labels: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A line of builder output (`Step 2/4 : COPY ...`, the step's own output).
    Output(String),
    /// The image was built; its id.
    Built(String),
}

/// What the supervisor needs from a container engine.
pub trait Engine: Send + Sync + 'static {
    fn info(&self) -> impl Future<Output = EResult<EngineInfo>> + Send;
    /// The engine's machine when it is not this one (where its published ports are).
    fn machine(&self) -> Option<String> {
        None
    }
    fn list_containers(
        &self,
        project: &str,
    ) -> impl Future<Output = EResult<Vec<ContainerRow>>> + Send;
    fn inspect(&self, id: &str) -> impl Future<Output = EResult<ContainerRow>> + Send;
    fn image_exists(&self, image: &str) -> impl Future<Output = EResult<bool>> + Send;
    /// Refuses a container this engine's API version would create without one of its
    /// settings (the same check `create` makes), before anything is created.
    fn check_spec(&self, spec: &ContainerSpec) -> EResult<()>;
    /// When the engine's image was last tagged (built or tagged; engines from 23 on also
    /// record a pull), in seconds since the Unix epoch, else when the image was created;
    /// None when the engine has no such image.
    fn image_tagged_at(&self, image: &str) -> impl Future<Output = EResult<Option<f64>>> + Send;
    /// Creates the network with every option of its definition; an existing one must
    /// match them (else the error names each difference). True when created.
    fn ensure_network(
        &self,
        def: &NetworkDef,
        labels: HashMap<String, String>,
    ) -> impl Future<Output = EResult<bool>> + Send;
    fn project_networks(&self, project: &str) -> impl Future<Output = EResult<Vec<String>>> + Send;
    fn remove_network(&self, name: &str) -> impl Future<Output = EResult<()>> + Send;
    /// As `ensure_network`, for a volume.
    fn ensure_volume(
        &self,
        def: &VolumeDef,
        labels: HashMap<String, String>,
    ) -> impl Future<Output = EResult<bool>> + Send;
    fn volume_exists(&self, name: &str) -> impl Future<Output = EResult<bool>> + Send;
    fn remove_volume(&self, name: &str) -> impl Future<Output = EResult<()>> + Send;
    /// Creates the container, joins its further networks and writes its injected files.
    fn create(&self, spec: &ContainerSpec) -> impl Future<Output = EResult<Created>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = EResult<()>> + Send;
    fn stop(&self, id: &str, grace_s: i64) -> impl Future<Output = EResult<()>> + Send;
    fn remove(&self, id: &str) -> impl Future<Output = EResult<()>> + Send;
    /// Removes a container and its anonymous volumes (`down --volumes`).
    fn remove_with_volumes(&self, id: &str) -> impl Future<Output = EResult<()>> + Send;
    /// A container's volume mounts: (the volume's name, the container path).
    fn volume_mounts(
        &self,
        id: &str,
    ) -> impl Future<Output = EResult<Vec<(String, String)>>> + Send;
    fn set_restart(&self, id: &str, restart: &Restart) -> impl Future<Output = EResult<()>> + Send;
    fn logs(&self, id: &str, follow: bool, tail: Option<u64>) -> BoxStream<EResult<LogChunk>>;
    fn events(&self, project: &str) -> BoxStream<EResult<EngineEvent>>;
    fn pull(&self, image: &ImageRef, creds: Option<Credentials>) -> BoxStream<EResult<LayerEvent>>;
    fn build(&self, req: BuildRequest, context: Vec<u8>) -> BoxStream<EResult<BuildEvent>>;
    /// One `docker stats` sample (no streaming, no waiting for a second sample).
    fn stats_once(&self, id: &str) -> impl Future<Output = EResult<RawStats>> + Send;
    /// Writes one file into a container (created or running), through the engine's
    /// archive API: it works on a remote engine too, where a bind mount would not.
    fn write_file(
        &self,
        id: &str,
        dir: &str,
        name: &str,
        body: &[u8],
    ) -> impl Future<Output = EResult<()>> + Send;
    /// Sends a signal to a running container's main process (`HUP` reloads nginx).
    fn signal(&self, id: &str, signal: &str) -> impl Future<Output = EResult<()>> + Send;
    /// What the console's inspect pane shows of a container, secrets masked.
    fn inspection(&self, id: &str) -> impl Future<Output = EResult<Inspection>> + Send;
    /// Runs `cmd` in the container without a terminal and waits for it: its exit code
    /// and its output (stdout and stderr).
    fn exec_output(
        &self,
        id: &str,
        cmd: &[&str],
    ) -> impl Future<Output = EResult<(Option<i64>, String)>> + Send;
    /// Starts `cmd` in the container with a TTY of `size` (columns, rows) and stdin
    /// attached: the operator's shell.
    fn exec_tty(
        &self,
        id: &str,
        cmd: &[&str],
        size: (u16, u16),
    ) -> impl Future<Output = EResult<TtyExec>> + Send;
    fn resize_exec(
        &self,
        exec_id: &str,
        size: (u16, u16),
    ) -> impl Future<Output = EResult<()>> + Send;
    /// The exit code of a finished exec (None while it runs).
    fn exec_exit_code(&self, exec_id: &str) -> impl Future<Output = EResult<Option<i64>>> + Send;
    /// Runs a lifecycle hook (`post_start`, `pre_stop`) in the container with its user,
    /// privileges, working directory and environment, and waits: exit code and output.
    fn exec_hook(
        &self,
        id: &str,
        hook: &crate::stack::compose::hooks::Hook,
    ) -> impl Future<Output = EResult<(Option<i64>, String)>> + Send;
}

/// An exec with a TTY: what it prints, and its standard input.
pub struct TtyExec {
    pub id: String,
    pub output: BoxStream<EResult<Vec<u8>>>,
    pub input: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

pub struct DockerEngine {
    docker: Docker,
    host: String,
    /// The engine's machine when it is not this one: its published ports are there.
    remote_host: Option<String>,
    /// For ssh://: the forward this engine is reached through, kept for its lifetime.
    _tunnel: Option<super::remote::SshTunnel>,
}

impl DockerEngine {
    /// Changes a running container's CPU and memory limits in place (`docker update`):
    /// the container keeps running, no restart. Swap follows memory at twice its size,
    /// as `docker run --memory` does.
    pub async fn update_limits(
        &self,
        id: &str,
        cpus: Option<f64>,
        memory: Option<u64>,
    ) -> EResult<()> {
        let body = ContainerUpdateBody {
            nano_cpus: cpus.map(|c| (c * 1e9).round() as i64),
            memory: memory.map(|m| m as i64),
            memory_swap: memory.map(|m| m.saturating_mul(2) as i64),
            ..Default::default()
        };
        Ok(self.docker.update_container(id, body).await?)
    }

    /// Follows a container's output with the engine's timestamps, from `since` (seconds
    /// since the epoch; 0 = from the start) or, with `tail`, its last lines.
    pub fn follow_logs(
        &self,
        id: &str,
        since: i64,
        tail: Option<u64>,
    ) -> BoxStream<EResult<(f64, LogChunk)>> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(since as i32)
            .tail(&tail)
            .build();
        Box::pin(self.docker.logs(id, Some(opts)).map(|r| {
            r.map_err(EngineError::from).map(|o| {
                let LogChunk { stream, text } = log_chunk(o);
                let (t, rest) = match text.split_once(' ') {
                    Some((ts, rest)) => match crate::model::units::parse_rfc3339_utc(ts) {
                        Some(t) => (t, rest.to_string()),
                        None => (0.0, text.clone()),
                    },
                    None => (0.0, text.clone()),
                };
                (t, LogChunk { stream, text: rest })
            })
        }))
    }

    /// Connects where `DOCKER_HOST` points (unix://, tcp:// with or without TLS, ssh://;
    /// see [`super::remote`]) or to the default socket, negotiates the API version and
    /// checks that the engine answers.
    pub async fn connect() -> EResult<DockerEngine> {
        Self::connect_to(&super::remote::HostEnv::from_process()).await
    }

    /// Connects to the engine `env` names rather than the process's (a fleet host's
    /// address or context): `HostEnv { docker_host: Some("tcp://...".into()), .. }`, or
    /// `HostEnv::with_context` for a named context. Logged: connected, or why not.
    pub async fn connect_to(env: &super::remote::HostEnv) -> EResult<DockerEngine> {
        use crate::model::secret::mask_url_credentials as masked;
        let r = Self::dial(env).await;
        match &r {
            Ok(e) => tracing::info!(host = %masked(&e.host), "engine connected"),
            Err(e) => tracing::warn!(error = %masked(&e.to_string()), "engine unreachable"),
        }
        r
    }

    async fn dial(env: &super::remote::HostEnv) -> EResult<DockerEngine> {
        use super::remote::{Endpoint, SshTunnel, endpoint};
        let host = match env.context.as_str() {
            super::context::DEFAULT_CONTEXT => env.shown(),
            name => format!("{} (context {name})", env.shown()),
        };
        let ep = endpoint(env)?;
        let in_context = env.context != super::context::DEFAULT_CONTEXT && !env.context.is_empty();
        let hint = match ep {
            // `--context` and a context beat DOCKER_HOST: pointing it elsewhere would not help.
            Endpoint::Unix(_) | Endpoint::Tcp(_) if in_context => {
                "start the engine the context points at, or use another context (`docker \
                 context ls`; `--context NAME`, DOCKER_CONTEXT, or `docker context use NAME`)"
            }
            Endpoint::Ssh(_) => {
                "check that `ssh` to that host works without a prompt (keys, known_hosts; \
                 OSMEN_SSH_CONFIG names an ssh_config to use) and that its user may use the \
                 engine's socket"
            }
            Endpoint::Tls { .. } => {
                "check the engine's address and that DOCKER_CERT_PATH holds the CA and the \
                 client certificate the engine trusts"
            }
            _ => {
                "start the engine (for example `sudo systemctl start docker`), or point \
                 DOCKER_HOST at a running one (unix:///path/to/docker.sock, tcp://host:2375, \
                 ssh://user@host)"
            }
        };
        let unreachable = |detail: String| EngineError::Unreachable {
            host: host.clone(),
            detail,
            hint,
        };
        let remote_host = ep.remote_host();
        let version = bollard::API_DEFAULT_VERSION;
        let mut tunnel = None;
        let docker = match &ep {
            Endpoint::Unix(path) => {
                if !path.exists() {
                    return Err(unreachable(format!("no socket at {}", path.display())));
                }
                Docker::connect_with_unix(&format!("unix://{}", path.display()), 120, version)
            }
            Endpoint::Tcp(addr) => Docker::connect_with_http(addr, 120, version),
            Endpoint::Tls { addr, files } => {
                Docker::connect_with_ssl(addr, &files.key, &files.cert, &files.ca, 120, version)
            }
            Endpoint::Ssh(target) => {
                let t = SshTunnel::open(target)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let sock = format!("unix://{}", t.socket.display());
                tunnel = Some(t);
                Docker::connect_with_unix(&sock, 120, version)
            }
        }
        .map_err(|e| unreachable(chain(&e)))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(chain(&e)))?;
        docker.ping().await.map_err(|e| unreachable(chain(&e)))?;
        Ok(DockerEngine {
            docker,
            host,
            remote_host,
            _tunnel: tunnel,
        })
    }

    /// The Docker API itself, for tests that read the engine's own answer; the code
    /// speaks through the adapter's methods (Swarm's in `engine/swarm.rs`).
    pub fn api(&self) -> &Docker {
        &self.docker
    }

    /// The engine's machine when it is not this one (where its published ports are).
    pub fn remote_host(&self) -> Option<String> {
        self.remote_host.clone()
    }

    /// The engine's host: its CPUs and memory (`docker info`'s `NCPU` and `MemTotal`).
    pub async fn host_capacity(&self) -> EResult<(Option<u32>, Option<u64>)> {
        let i = self.docker.info().await?;
        Ok((
            i.ncpu.and_then(|n| u32::try_from(n).ok()),
            i.mem_total.and_then(|m| u64::try_from(m).ok()),
        ))
    }
}

/// An error with its causes: hyper's "client error (Connect)" alone does not say that the
/// certificate was refused or the connection reset.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The engine's answer, where "no such object" is the `absent` value, not an error.
pub(super) fn absent_ok<T>(r: Result<T, BollardError>, absent: T) -> EResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => match EngineError::from(e) {
            EngineError::NotFound(_) => Ok(absent),
            other => Err(other),
        },
    }
}

/// The container actions osmen follows: everything that changes what a row shows.
pub const LIFECYCLE_EVENTS: [&str; 13] = [
    "create",
    "start",
    "restart",
    "die",
    "stop",
    "kill",
    "oom",
    "destroy",
    "health_status",
    "update",
    "rename",
    "pause",
    "unpause",
];

pub(super) fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_PROJECT}={project}")],
    )])
}

pub(super) fn image_error(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError { message, .. } => EngineError::Image(message),
        BollardError::DockerStreamError { error } => EngineError::Image(error),
        other => EngineError::Other(other.to_string()),
    }
}
