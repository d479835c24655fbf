//! The Docker Engine behind a small trait. The supervisor speaks in compose terms
//! ([`ContainerSpec`], [`ContainerRow`]); only this file knows bollard's types, so an
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
    pub mounts: Vec<(MountKind, Option<String>, String, bool)>,
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
    fn list_containers(
        &self,
        project: &str,
    ) -> impl Future<Output = EResult<Vec<ContainerRow>>> + Send;
    fn inspect(&self, id: &str) -> impl Future<Output = EResult<ContainerRow>> + Send;
    fn image_exists(&self, image: &str) -> impl Future<Output = EResult<bool>> + Send;
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

/// The inspect pane's content from the engine's answer (masked by the caller's
/// `Inspection::masked`).
fn inspection_from(c: ContainerInspectResponse) -> Inspection {
    let cfg = c.config.clone().unwrap_or_default();
    let state = c.state.clone().unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let mut labels: Vec<(String, String)> =
        cfg.labels.clone().unwrap_or_default().into_iter().collect();
    labels.sort();
    let mounts = c
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{} {} -> {} ({})",
                m.typ.unwrap_or_default(),
                m.name.or(m.source).unwrap_or_default(),
                m.destination.unwrap_or_default(),
                if m.rw.unwrap_or(true) { "rw" } else { "ro" }
            )
        })
        .collect();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| {
            let aliases = e.aliases.unwrap_or_default();
            let mut l = format!("{name} {}", e.ip_address.unwrap_or_default());
            if !aliases.is_empty() {
                l.push_str(&format!(" (aliases {})", aliases.join(", ")));
            }
            l
        })
        .collect();
    networks.sort();
    let command: Vec<String> = cfg
        .entrypoint
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(cfg.cmd.clone().unwrap_or_default())
        .collect();
    Inspection {
        container: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: cfg.image.clone().unwrap_or_default(),
        // Secret options' values never reach the pane (`--requirepass x`).
        command: crate::model::secret::mask_command(&command).join(" "),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        created: c.created.clone().map(|t| t.to_string()).unwrap_or_default(),
        env: cfg.env.clone().unwrap_or_default(),
        mounts,
        labels,
        networks,
        health_status: health.status.map(|s| s.to_string()).unwrap_or_default(),
        health_log: health
            .log
            .unwrap_or_default()
            .into_iter()
            .map(|r| HealthRun {
                start: r.start.map(|t| t.to_string()).unwrap_or_default(),
                exit_code: r.exit_code.unwrap_or(-1),
                output: r.output.unwrap_or_default(),
            })
            .collect(),
    }
    .masked()
}

/// One piece of a container's output as text, with the stream it came from.
fn log_chunk(o: bollard::container::LogOutput) -> LogChunk {
    use bollard::container::LogOutput;
    let (stream, bytes) = match o {
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => (LogStream::Stdout, message),
    };
    LogChunk {
        stream,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
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
        use super::remote::{Endpoint, HostEnv, SshTunnel, endpoint};
        let env = HostEnv::from_process();
        let host = env.shown();
        let ep = endpoint(&env).map_err(EngineError::Other)?;
        let hint = match ep {
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
                let t = SshTunnel::open(target).await.map_err(&unreachable)?;
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

    /// The Docker API itself, for what only some engines do (Swarm services).
    pub fn api(&self) -> &Docker {
        &self.docker
    }

    /// The engine's machine when it is not this one (where its published ports are).
    pub fn remote_host(&self) -> Option<String> {
        self.remote_host.clone()
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

fn nanos(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| d.as_nanos() as i64)
}

fn restart_policy(r: &Restart) -> RestartPolicy {
    let (name, max) = match r {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: max,
    }
}

/// A compose health check as the engine takes it (containers and Swarm tasks alike).
pub fn health_config(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: h.test.as_ref().map(|t| match t {
            HealthTest::Exec(w) => std::iter::once("CMD".to_string())
                .chain(w.iter().cloned())
                .collect(),
            HealthTest::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            HealthTest::Disabled => vec!["NONE".to_string()],
        }),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: nanos(h.start_interval),
    }
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let healthcheck = spec.healthcheck.as_ref().map(health_config);
    let st = &spec.settings;
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = st.exposed_ports();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.published.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    let mounts = spec
        .mounts
        .iter()
        .map(|(kind, source, target, ro)| BMount {
            target: Some(target.clone()),
            source: source.clone(),
            typ: Some(match kind {
                MountKind::Volume => MountType::VOLUME,
                MountKind::Bind => MountType::BIND,
                MountKind::Tmpfs => MountType::TMPFS,
            }),
            read_only: Some(*ro),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let device_requests = spec
        .gpus
        .iter()
        .map(|g| DeviceRequest {
            driver: Some(g.driver.clone()),
            count: Some(g.count.map(i64::from).unwrap_or(-1)),
            device_ids: (!g.device_ids.is_empty()).then(|| g.device_ids.clone()),
            capabilities: Some(vec![g.capabilities.clone()]),
            options: None,
        })
        .collect::<Vec<_>>();
    // With network_mode the container joins no network of the project (as in Compose).
    let first_net = st
        .network_mode
        .clone()
        .or_else(|| spec.networks.first().map(|a| a.network.clone()));
    let endpoints: HashMap<String, EndpointSettings> = spec
        .networks
        .iter()
        .take(1)
        .map(|a| {
            let mut ep = endpoint(a);
            // On a user-defined network the engine takes links here and drops
            // HostConfig.Links without a word (docker-compose writes them here too).
            ep.links = non_empty(&spec.links);
            ep.mac_address = a.mac_address.clone().or_else(|| st.mac_address.clone());
            (a.network.clone(), ep)
        })
        .collect();
    let mut host_config = HostConfig {
        nano_cpus: spec.cpus.map(|c| (c * 1e9).round() as i64),
        memory: spec.memory.map(|m| m as i64),
        memory_reservation: spec.memory_reservation.map(|m| m as i64),
        restart_policy: Some(restart_policy(&spec.restart)),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        device_requests: (!device_requests.is_empty()).then_some(device_requests),
        network_mode: first_net,
        init: spec.init,
        log_config: spec.log_driver.as_ref().map(|(d, o)| HostConfigLogConfig {
            typ: Some(d.clone()),
            config: Some(o.clone()),
        }),
        // Only the default bridge (`network_mode: bridge`) has legacy links; other modes
        // with links are refused by the engine itself.
        links: st
            .network_mode
            .as_ref()
            .and_then(|_| non_empty(&spec.links)),
        ..Default::default()
    };
    apply_settings(st, &mut host_config);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone()),
        healthcheck,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        stop_timeout: spec.stop_timeout_s,
        stop_signal: spec.stop_signal.clone(),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        hostname: st.hostname.clone(),
        domainname: st.domainname.clone(),
        tty: st.tty,
        open_stdin: st.stdin_open,
        host_config: Some(host_config),
        networking_config: st.network_mode.is_none().then_some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

/// One attachment's endpoint: aliases and static addresses (`IPAMConfig`).
fn endpoint(a: &Attachment) -> EndpointSettings {
    let static_ip = a.ipv4_address.is_some() || a.ipv6_address.is_some();
    EndpointSettings {
        aliases: Some(a.aliases.clone()),
        ipam_config: (static_ip || !a.link_local_ips.is_empty()).then(|| EndpointIpamConfig {
            ipv4_address: a.ipv4_address.clone(),
            ipv6_address: a.ipv6_address.clone(),
            link_local_ips: non_empty(&a.link_local_ips),
        }),
        ..Default::default()
    }
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn hash_map(m: &std::collections::BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The service's container settings onto HostConfig, field by field as `docker compose`
/// writes them.
fn apply_settings(st: &ContainerSettings, hc: &mut HostConfig) {
    hc.cap_add = non_empty(&st.cap_add);
    hc.cap_drop = non_empty(&st.cap_drop);
    hc.privileged = st.privileged;
    hc.readonly_rootfs = st.read_only;
    hc.security_opt = non_empty(&st.security_opt);
    hc.tmpfs = (!st.tmpfs.is_empty()).then(|| {
        st.tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_string(), opts.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect()
    });
    hc.shm_size = st.shm_size.map(|b| b as i64);
    hc.ulimits = (!st.ulimits.is_empty()).then(|| {
        st.ulimits
            .iter()
            .map(|(name, l)| ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(l.soft),
                hard: Some(l.hard),
            })
            .collect()
    });
    hc.sysctls = hash_map(&st.sysctls);
    hc.devices = (!st.devices.is_empty()).then(|| {
        st.devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: Some(d.source.clone()),
                path_in_container: Some(d.target.clone()),
                cgroup_permissions: Some(d.permissions.clone()),
            })
            .collect()
    });
    hc.device_cgroup_rules = non_empty(&st.device_cgroup_rules);
    hc.extra_hosts = non_empty(&st.extra_hosts);
    hc.dns = non_empty(&st.dns);
    hc.dns_search = non_empty(&st.dns_search);
    hc.dns_options = non_empty(&st.dns_opt);
    hc.ipc_mode = st.ipc.clone();
    hc.pid_mode = st.pid.clone();
    hc.uts_mode = st.uts.clone();
    hc.cgroupns_mode = st.cgroup.as_deref().map(|c| match c {
        "host" => HostConfigCgroupnsModeEnum::HOST,
        _ => HostConfigCgroupnsModeEnum::PRIVATE,
    });
    hc.group_add = non_empty(&st.group_add);
    hc.oom_score_adj = st.oom_score_adj;
    hc.oom_kill_disable = st.oom_kill_disable;
    hc.cgroup_parent = st.cgroup_parent.clone();
    hc.userns_mode = st.userns_mode.clone();
    hc.runtime = st.runtime.clone();
    hc.cpu_count = st.cpu_count;
    hc.cpu_shares = st.cpu_shares;
    hc.cpu_period = st.cpu_period;
    hc.cpu_quota = st.cpu_quota;
    hc.cpu_realtime_runtime = st.cpu_rt_runtime;
    hc.cpu_realtime_period = st.cpu_rt_period;
    hc.cpuset_cpus = st.cpuset.clone();
    hc.memory_swappiness = st.mem_swappiness;
    hc.memory_swap = st.memswap_limit;
    hc.pids_limit = st.pids_limit;
    hc.storage_opt = hash_map(&st.storage_opt);
    hc.annotations = hash_map(&st.annotations);
    hc.volumes_from = non_empty(&st.volumes_from);
    if let Some(b) = &st.blkio_config {
        let throttle = |l: &[DeviceRate]| {
            (!l.is_empty()).then(|| {
                l.iter()
                    .map(|d| ThrottleDevice {
                        path: Some(d.path.clone()),
                        rate: Some(d.rate),
                    })
                    .collect()
            })
        };
        hc.blkio_weight = b.weight;
        hc.blkio_weight_device = (!b.weight_device.is_empty()).then(|| {
            b.weight_device
                .iter()
                .map(|d| ResourcesBlkioWeightDevice {
                    path: Some(d.path.clone()),
                    weight: Some(usize::from(d.weight)),
                })
                .collect()
        });
        hc.blkio_device_read_bps = throttle(&b.device_read_bps);
        hc.blkio_device_write_bps = throttle(&b.device_write_bps);
        hc.blkio_device_read_iops = throttle(&b.device_read_iops);
        hc.blkio_device_write_iops = throttle(&b.device_write_iops);
    }
}

/// Settings an older engine would drop without a word: refused with the version they
/// need instead.
fn check_api(spec: &ContainerSpec, api: (u16, u16)) -> EResult<()> {
    let needs = [
        (
            "annotations",
            !spec.settings.annotations.is_empty(),
            (1, 43),
        ),
        (
            "mac_address",
            spec.settings.mac_address.is_some()
                || spec.networks.iter().any(|a| a.mac_address.is_some()),
            (1, 44),
        ),
        (
            "healthcheck.start_interval",
            spec.healthcheck
                .as_ref()
                .is_some_and(|h| h.start_interval.is_some()),
            (1, 44),
        ),
    ];
    for (key, set, (major, minor)) in needs {
        if set && api < (major, minor) {
            return Err(EngineError::Other(format!(
                "{}: `{key}` needs Engine API {major}.{minor} or later; this engine speaks \
                 {}.{} and would ignore it. Remove the key or upgrade the engine",
                spec.name, api.0, api.1
            )));
        }
    }
    Ok(())
}

/// The archive `docker compose` copies into a container for its secrets and configs:
/// one entry per file at its absolute target, with its mode and owner.
fn files_tar(container: &str, files: &[InjectedFile]) -> EResult<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for f in files {
        let body = match &f.content {
            FileContent::Inline(v) => v.clone().into_bytes(),
            FileContent::Path(p) => std::fs::read(p).map_err(|e| {
                EngineError::Other(format!(
                    "{container}: cannot read {} for {}: {e}",
                    p.display(),
                    f.target
                ))
            })?,
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(f.mode);
        h.set_uid(u64::from(f.uid));
        h.set_gid(u64::from(f.gid));
        h.set_mtime(now);
        h.set_entry_type(tar::EntryType::Regular);
        let path = f.target.trim_start_matches('/');
        tar.append_data(&mut h, path, body.as_slice())
            .map_err(|e| EngineError::Other(format!("cannot pack {}: {e}", f.target)))?;
    }
    tar.into_inner()
        .map_err(|e| EngineError::Other(format!("cannot pack the files of {container}: {e}")))
}

/// The project's labels with the file's own (the file cannot override Compose's).
fn with_labels(
    mut labels: HashMap<String, String>,
    own: &std::collections::BTreeMap<String, String>,
) -> HashMap<String, String> {
    for (k, v) in own {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    labels
}

fn network_request(def: &NetworkDef, labels: HashMap<String, String>) -> NetworkCreateRequest {
    let ipam = def.ipam.as_ref().map(|i| bollard::models::Ipam {
        driver: Some(i.driver.clone().unwrap_or_else(|| "default".into())),
        config: Some(
            i.config
                .iter()
                .map(|c| bollard::models::IpamConfig {
                    subnet: c.subnet.clone(),
                    ip_range: c.ip_range.clone(),
                    gateway: c.gateway.clone(),
                    auxiliary_addresses: hash_map(&c.aux_addresses),
                })
                .collect(),
        ),
        options: hash_map(&i.options),
    });
    NetworkCreateRequest {
        name: def.name.clone(),
        driver: Some(def.driver.clone().unwrap_or_else(|| "bridge".into())),
        internal: def.internal.then_some(true),
        attachable: def.attachable.then_some(true),
        enable_ipv6: def.enable_ipv6.then_some(true),
        ipam,
        options: hash_map(&def.driver_opts),
        labels: Some(with_labels(labels, &def.labels)),
        ..Default::default()
    }
}

fn drift_error(what: &str, name: &str, drift: Vec<String>) -> EResult<bool> {
    if drift.is_empty() {
        return Ok(false);
    }
    let fix = if what == "network" {
        format!(
            "docker compose recreates a diverged network; osmen does not disconnect containers \
             on its own: run `osmen down`, then `docker network rm {name}`, then `osmen up`, \
             or mark it `external: true` to use it as it is"
        )
    } else {
        format!(
            "docker compose asks before recreating a diverged volume (its data is lost); osmen \
             does not delete data: back it up, `docker volume rm {name}`, then `osmen up`, or \
             mark it `external: true` to use it as it is"
        )
    };
    Err(EngineError::Other(format!(
        "{what} {name} exists but differs from the compose file: {}. {fix}",
        drift.join("; ")
    )))
}

/// What an existing network lacks of its definition (and the Compose labels that say
/// whose it is), as `docker compose` checks before using one.
fn network_drift(
    def: &NetworkDef,
    labels: &HashMap<String, String>,
    n: &bollard::models::NetworkInspect,
) -> Vec<String> {
    let mut out = Vec::new();
    let have = n.labels.clone().unwrap_or_default();
    let want = LABEL_NETWORK;
    if have.get(want) != labels.get(want) {
        out.push(format!(
            "label {want} is {:?} (expected {:?}; it was not created by Compose for this \
             project)",
            have.get(want).map_or("", String::as_str),
            labels.get(want).map_or("", String::as_str)
        ));
    }
    let driver = def.driver.as_deref().unwrap_or("bridge");
    if n.driver.as_deref() != Some(driver) {
        out.push(format!(
            "driver is {:?} (file: {driver:?})",
            n.driver.as_deref().unwrap_or("")
        ));
    }
    // `internal` both ways (a network cut off from outside, or not, changes what the
    // containers can reach); `attachable` and `enable_ipv6` when the file asks for them:
    // docker-compose 1.29 makes every network attachable, and its networks are adopted.
    for (key, want, got, both_ways) in [
        ("internal", def.internal, n.internal, true),
        ("attachable", def.attachable, n.attachable, false),
        ("enable_ipv6", def.enable_ipv6, n.enable_ipv6, false),
    ] {
        let got = got.unwrap_or(false);
        if got != want && (want || both_ways) {
            out.push(format!("{key} is {got} (file: {want})"));
        }
    }
    map_drift(
        &mut out,
        "driver_opts",
        &def.driver_opts,
        n.options.as_ref(),
    );
    map_drift(&mut out, "label", &def.labels, n.labels.as_ref());
    if let Some(ipam) = &def.ipam {
        let got = n.ipam.clone().unwrap_or_default();
        let drv = ipam.driver.as_deref().unwrap_or("default");
        if got.driver.as_deref().unwrap_or("default") != drv {
            out.push(format!("ipam driver is {:?} (file: {drv:?})", got.driver));
        }
        let pools: Vec<_> = got.config.unwrap_or_default();
        for c in &ipam.config {
            let found = pools.iter().any(|p| {
                p.subnet == c.subnet
                    && (c.ip_range.is_none() || p.ip_range == c.ip_range)
                    && (c.gateway.is_none() || p.gateway == c.gateway)
            });
            if !found {
                out.push(format!(
                    "no ipam pool with subnet {} (the network has {})",
                    c.subnet.as_deref().unwrap_or("(any)"),
                    pools
                        .iter()
                        .filter_map(|p| p.subnet.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    out
}

fn volume_drift(
    def: &VolumeDef,
    labels: &HashMap<String, String>,
    v: &bollard::models::Volume,
) -> Vec<String> {
    let mut out = Vec::new();
    let want = LABEL_VOLUME;
    if v.labels.get(want) != labels.get(want) {
        out.push(format!(
            "label {want} is {:?} (expected {:?}; it was not created by Compose for this \
             project)",
            v.labels.get(want).map_or("", String::as_str),
            labels.get(want).map_or("", String::as_str)
        ));
    }
    let driver = def.driver.as_deref().unwrap_or("local");
    if v.driver != driver {
        out.push(format!("driver is {:?} (file: {driver:?})", v.driver));
    }
    map_drift(&mut out, "driver_opts", &def.driver_opts, Some(&v.options));
    map_drift(&mut out, "label", &def.labels, Some(&v.labels));
    out
}

fn map_drift(
    out: &mut Vec<String>,
    what: &str,
    want: &std::collections::BTreeMap<String, String>,
    have: Option<&HashMap<String, String>>,
) {
    for (k, v) in want {
        let got = have.and_then(|h| h.get(k));
        if got != Some(v) {
            out.push(format!(
                "{what} {k} is {} (file: {v:?})",
                got.map_or("unset".to_string(), |g| format!("{g:?}"))
            ));
        }
    }
}

fn row_from_inspect(c: ContainerInspectResponse) -> ContainerRow {
    let labels = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default();
    let state = c.state.clone().unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let health_output = health
        .log
        .as_ref()
        .and_then(|l| l.last())
        .and_then(|r| r.output.clone())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(300)
        .collect();
    let mut ports: Vec<PortRow> = Vec::new();
    if let Some(map) = c.network_settings.as_ref().and_then(|n| n.ports.clone()) {
        for (key, binds) in map {
            let (cport, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            for b in binds.unwrap_or_default() {
                ports.push(PortRow {
                    host_ip: b.host_ip.unwrap_or_default(),
                    host_port: b.host_port.and_then(|p| p.parse().ok()).unwrap_or(0),
                    container_port: cport.parse().unwrap_or(0),
                    protocol: proto.to_string(),
                });
            }
        }
    }
    ports.sort_by_key(|p| (p.container_port, p.host_ip.clone()));
    let addresses = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|nets| {
            nets.values()
                .filter_map(|e| e.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .collect()
        })
        .unwrap_or_default();
    ContainerRow {
        addresses,
        service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
        number: labels
            .get(LABEL_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        config_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
        managed: labels.contains_key(LABEL_OSMEN),
        cpu_limit: c.host_config.as_ref().and_then(cpu_limit_of),
        memory_limit: c
            .host_config
            .as_ref()
            .and_then(|h| h.memory)
            .filter(|m| *m > 0)
            .map(|m| m as u64),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        id: c.id.unwrap_or_default(),
        image: c.config.and_then(|cfg| cfg.image).unwrap_or_default(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health: health
            .status
            .map(|s| Health::parse(s.as_ref()))
            .unwrap_or(Health::None),
        exit_code: state.exit_code,
        restart_count: c.restart_count.unwrap_or(0),
        started_at: state.started_at.unwrap_or_default(),
        created: c.created.clone().map(|t| t.to_string()).unwrap_or_default(),
        oom_killed: state.oom_killed.unwrap_or(false),
        ports,
        health_output,
    }
}

/// The CPU limit in cores: `--cpus` (NanoCpus), else a CFS quota over its period
/// (`cpu_quota`/`cpu_period`, as `docker update --cpu-quota` sets it).
fn cpu_limit_of(h: &bollard::models::HostConfig) -> Option<f64> {
    if let Some(n) = h.nano_cpus.filter(|n| *n > 0) {
        return Some(n as f64 / 1e9);
    }
    let quota = h.cpu_quota.filter(|q| *q > 0)?;
    let period = h.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
    Some(quota as f64 / period as f64)
}

/// The engine's answer, where "no such object" is the `absent` value, not an error.
fn absent_ok<T>(r: Result<T, BollardError>, absent: T) -> EResult<T> {
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

fn project_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_PROJECT}={project}")],
    )])
}

fn image_error(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError { message, .. } => EngineError::Image(message),
        BollardError::DockerStreamError { error } => EngineError::Image(error),
        other => EngineError::Other(other.to_string()),
    }
}

impl DockerEngine {
    /// Creates and runs an exec, collecting its output, and returns its exit code.
    async fn exec_collect(
        &self,
        id: &str,
        opts: bollard::exec::CreateExecOptions<String>,
    ) -> EResult<(Option<i64>, String)> {
        use bollard::exec::StartExecResults;
        let e = self.docker.create_exec(id, opts).await?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&e.id, None).await?
        {
            while let Some(chunk) = output.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk?.into_bytes()));
            }
        }
        let code = self.exec_exit_code(&e.id).await?;
        Ok((code, text))
    }
}

impl Engine for DockerEngine {
    async fn inspection(&self, id: &str) -> EResult<Inspection> {
        let c = self.docker.inspect_container(id, None).await?;
        Ok(inspection_from(c))
    }

    async fn exec_output(&self, id: &str, cmd: &[&str]) -> EResult<(Option<i64>, String)> {
        let opts = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        self.exec_collect(id, opts).await
    }

    async fn exec_hook(
        &self,
        id: &str,
        hook: &crate::stack::compose::hooks::Hook,
    ) -> EResult<(Option<i64>, String)> {
        let env: Vec<String> = hook
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let opts = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(hook.command.clone()),
            user: hook.user.clone(),
            privileged: Some(hook.privileged),
            working_dir: hook.working_dir.clone(),
            env: (!env.is_empty()).then_some(env),
            ..Default::default()
        };
        self.exec_collect(id, opts).await
    }

    async fn exec_tty(&self, id: &str, cmd: &[&str], size: (u16, u16)) -> EResult<TtyExec> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let e = self
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(true),
                    env: Some(vec![format!("TERM={term}")]),
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
                    ..Default::default()
                },
            )
            .await?;
        let opts = StartExecOptions {
            detach: false,
            tty: true,
            output_capacity: None,
        };
        match self.docker.start_exec(&e.id, Some(opts)).await? {
            StartExecResults::Attached { output, input } => {
                // The engine may refuse a size before the process runs: best effort, the
                // caller sizes it again.
                let _ = self.resize_exec(&e.id, size).await;
                Ok(TtyExec {
                    id: e.id,
                    output: Box::pin(output.map(|r| {
                        r.map(|o| o.into_bytes().to_vec())
                            .map_err(EngineError::from)
                    })),
                    input,
                })
            }
            StartExecResults::Detached => Err(EngineError::Other(
                "the engine started the exec detached: no terminal to attach".into(),
            )),
        }
    }

    async fn resize_exec(&self, exec_id: &str, size: (u16, u16)) -> EResult<()> {
        let opts = bollard::exec::ResizeExecOptions {
            width: size.0,
            height: size.1,
        };
        Ok(self.docker.resize_exec(exec_id, opts).await?)
    }

    async fn exec_exit_code(&self, exec_id: &str) -> EResult<Option<i64>> {
        Ok(self.docker.inspect_exec(exec_id).await?.exit_code)
    }

    async fn info(&self) -> EResult<EngineInfo> {
        let v = self.docker.version().await?;
        let i = self.docker.info().await?;
        let mut runtimes: Vec<String> = i.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            host: self.host.clone(),
            root_dir: i.docker_root_dir,
            runtimes,
        })
    }

    async fn list_containers(&self, project: &str) -> EResult<Vec<ContainerRow>> {
        let mut filters = project_filter(project);
        if let Some(v) = filters.get_mut("label") {
            v.push(format!("{LABEL_ONEOFF}=False"));
        }
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self.docker.list_containers(Some(opts)).await?;
        let mut rows = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            match self.inspect(&id).await {
                Ok(r) => rows.push(r),
                // Removed between the list and the inspect: nothing to show.
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        rows.sort_by(|a, b| (&a.service, a.number).cmp(&(&b.service, b.number)));
        Ok(rows)
    }

    async fn inspect(&self, id: &str) -> EResult<ContainerRow> {
        let c = self.docker.inspect_container(id, None).await?;
        Ok(row_from_inspect(c))
    }

    async fn image_exists(&self, image: &str) -> EResult<bool> {
        absent_ok(self.docker.inspect_image(image).await.map(|_| true), false)
    }

    async fn image_tagged_at(&self, image: &str) -> EResult<Option<f64>> {
        let i = absent_ok(self.docker.inspect_image(image).await.map(Some), None)?;
        Ok(i.map(|i| {
            let tagged = i.metadata.and_then(|m| m.last_tag_time);
            // A pulled image on engines before 23 has LastTagTime 0001-01-01: unknown.
            tagged
                .iter()
                .chain(i.created.iter())
                .filter_map(|t| crate::model::units::parse_rfc3339_utc(t))
                .find(|t| *t > 0.0)
                .unwrap_or(0.0)
        }))
    }

    async fn ensure_network(
        &self,
        def: &NetworkDef,
        labels: HashMap<String, String>,
    ) -> EResult<bool> {
        match self.docker.inspect_network(&def.name, None).await {
            Ok(n) => return drift_error("network", &def.name, network_drift(def, &labels, &n)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        self.docker
            .create_network(network_request(def, labels))
            .await?;
        Ok(true)
    }

    async fn project_networks(&self, project: &str) -> EResult<Vec<String>> {
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&project_filter(project))
            .build();
        let nets = self.docker.list_networks(Some(opts)).await?;
        Ok(nets.into_iter().filter_map(|n| n.name).collect())
    }

    async fn remove_network(&self, name: &str) -> EResult<()> {
        absent_ok(self.docker.remove_network(name).await, ())
    }

    async fn ensure_volume(
        &self,
        def: &VolumeDef,
        labels: HashMap<String, String>,
    ) -> EResult<bool> {
        match self.docker.inspect_volume(&def.name).await {
            Ok(v) => return drift_error("volume", &def.name, volume_drift(def, &labels, &v)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        self.docker
            .create_volume(VolumeCreateRequest {
                name: Some(def.name.clone()),
                driver: def.driver.clone(),
                driver_opts: hash_map(&def.driver_opts),
                labels: Some(with_labels(labels, &def.labels)),
                ..Default::default()
            })
            .await?;
        Ok(true)
    }

    async fn volume_exists(&self, name: &str) -> EResult<bool> {
        absent_ok(self.docker.inspect_volume(name).await.map(|_| true), false)
    }

    async fn remove_volume(&self, name: &str) -> EResult<()> {
        let opts = None::<bollard::query_parameters::RemoveVolumeOptions>;
        absent_ok(self.docker.remove_volume(name, opts).await, ())
    }

    async fn write_file(&self, id: &str, dir: &str, name: &str, body: &[u8]) -> EResult<()> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        h.set_cksum();
        tar.append_data(&mut h, name, body)
            .map_err(|e| EngineError::Other(format!("cannot pack {name}: {e}")))?;
        let bytes = tar
            .into_inner()
            .map_err(|e| EngineError::Other(format!("cannot pack {name}: {e}")))?;
        let opts = bollard::query_parameters::UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
        };
        Ok(self
            .docker
            .upload_to_container(id, Some(opts), bollard::body_full(bytes.into()))
            .await?)
    }

    async fn signal(&self, id: &str, signal: &str) -> EResult<()> {
        let opts = bollard::query_parameters::KillContainerOptionsBuilder::default()
            .signal(signal)
            .build();
        Ok(self.docker.kill_container(id, Some(opts)).await?)
    }

    async fn create(&self, spec: &ContainerSpec) -> EResult<Created> {
        let v = self.docker.client_version();
        check_api(spec, (v.major_version as u16, v.minor_version as u16))?;
        let mut opts = CreateContainerOptionsBuilder::default().name(&spec.name);
        if let Some(p) = &spec.settings.platform {
            opts = opts.platform(p);
        }
        let opts = opts.build();
        let resp = self
            .docker
            .create_container(Some(opts), create_body(spec))
            .await?;
        // Further networks are connected after creation, as Compose does; with a
        // network_mode there are none.
        let further = if spec.settings.network_mode.is_some() {
            &[][..]
        } else {
            spec.networks.get(1..).unwrap_or(&[])
        };
        for a in further {
            let mut ep = endpoint(a);
            ep.mac_address = a.mac_address.clone();
            self.docker
                .connect_network(
                    &a.network,
                    bollard::models::NetworkConnectRequest {
                        container: resp.id.clone(),
                        endpoint_config: Some(ep),
                    },
                )
                .await?;
        }
        if !spec.files.is_empty() {
            // Secrets and configs land before the first start, as `docker compose` copies
            // them: the process never sees the container without them.
            let tar = files_tar(&spec.name, &spec.files)?;
            let opts = bollard::query_parameters::UploadToContainerOptions {
                path: "/".to_string(),
                ..Default::default()
            };
            self.docker
                .upload_to_container(&resp.id, Some(opts), bollard::body_full(tar.into()))
                .await?;
        }
        Ok(Created {
            id: resp.id,
            warnings: resp.warnings,
        })
    }

    async fn start(&self, id: &str) -> EResult<()> {
        Ok(self.docker.start_container(id, None).await?)
    }

    async fn stop(&self, id: &str, grace_s: i64) -> EResult<()> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace_s as i32)
            .build();
        // The engine answers only once the container stopped: wait past the grace period.
        let wait =
            std::time::Duration::from_secs(grace_s.max(0) as u64 + 30).max(self.docker.timeout());
        let docker = self.docker.clone().with_timeout(wait);
        match docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => {
                let e = EngineError::from(e);
                if matches!(e, EngineError::NotFound(_)) {
                    return Ok(());
                }
                // The stop timed out on the client side: kill, as the grace period is over.
                let kill = KillContainerOptionsBuilder::default()
                    .signal("SIGKILL")
                    .build();
                self.docker.kill_container(id, Some(kill)).await.ok();
                Err(e)
            }
        }
    }

    async fn remove(&self, id: &str) -> EResult<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(false)
            .build();
        absent_ok(self.docker.remove_container(id, Some(opts)).await, ())
    }

    async fn set_restart(&self, id: &str, restart: &Restart) -> EResult<()> {
        Ok(self
            .docker
            .update_container(
                id,
                ContainerUpdateBody {
                    restart_policy: Some(restart_policy(restart)),
                    ..Default::default()
                },
            )
            .await?)
    }

    fn logs(&self, id: &str, follow: bool, tail: Option<u64>) -> BoxStream<EResult<LogChunk>> {
        let tail = tail.map(|t| t.to_string()).unwrap_or_else(|| "all".into());
        let opts = LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        Box::pin(
            self.docker
                .logs(id, Some(opts))
                .map(|r| r.map_err(EngineError::from).map(log_chunk)),
        )
    }

    fn pull(&self, image: &ImageRef, creds: Option<Credentials>) -> BoxStream<EResult<LayerEvent>> {
        use bollard::auth::DockerCredentials;
        use bollard::query_parameters::CreateImageOptionsBuilder;
        let opts = CreateImageOptionsBuilder::default()
            .from_image(&image.repository)
            .tag(&image.tag)
            .build();
        let creds = creds.map(|c| DockerCredentials {
            username: Some(c.username),
            password: Some(c.password),
            serveraddress: Some(c.server),
            ..Default::default()
        });
        Box::pin(
            self.docker
                .create_image(Some(opts), None, creds)
                .map(|r| match r {
                    Err(e) => Err(image_error(e)),
                    Ok(info) => {
                        if let Some(err) = info.error_detail.and_then(|d| d.message) {
                            return Err(EngineError::Image(err));
                        }
                        let pd = info.progress_detail.unwrap_or_default();
                        Ok(LayerEvent {
                            layer: info.id.unwrap_or_default(),
                            status: info.status.unwrap_or_default(),
                            current: pd.current.map(|c| c.max(0) as u64),
                            total: pd.total.filter(|t| *t > 0).map(|t| t as u64),
                        })
                    }
                }),
        )
    }

    fn build(&self, req: BuildRequest, context: Vec<u8>) -> BoxStream<EResult<BuildEvent>> {
        use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
        let mut b = BuildImageOptionsBuilder::default()
            .t(&req.tag)
            .dockerfile(&req.dockerfile)
            .buildargs(&req.args)
            .labels(&req.labels)
            .rm(true)
            .forcerm(true)
            .version(BuilderVersion::BuilderV1);
        if let Some(t) = &req.target {
            b = b.target(t);
        }
        let opts = b.build();
        let body = bollard::body_full(context.into());
        // The engine's build stream borrows the client: drive it in a task that owns a
        // clone and hand the events over a channel.
        let docker = self.docker.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut stream = docker.build_image(opts, None, Some(body));
            while let Some(r) = stream.next().await {
                let ev = match r {
                    Err(e) => Err(image_error(e)),
                    Ok(info) => {
                        if let Some(err) = info.error_detail.and_then(|d| d.message) {
                            Err(EngineError::Image(err))
                        } else if let Some(id) = info.aux.and_then(|a| a.id) {
                            Ok(BuildEvent::Built(id))
                        } else {
                            Ok(BuildEvent::Output(
                                info.stream.or(info.status).unwrap_or_default(),
                            ))
                        }
                    }
                };
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        });
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|ev| (ev, rx))
        }))
    }

    async fn stats_once(&self, id: &str) -> EResult<RawStats> {
        use bollard::query_parameters::StatsOptionsBuilder;
        let opts = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        let s = stream
            .next()
            .await
            .ok_or_else(|| EngineError::Other(format!("no stats for {id}")))??;
        let cpu = s.cpu_stats.unwrap_or_default();
        let mem = s.memory_stats.unwrap_or_default();
        // A container that is not running answers with an empty sample (no memory usage,
        // no CPUs online): that is "not running", not a container using 0 B.
        if mem.usage.is_none() && cpu.online_cpus.unwrap_or(0) == 0 {
            return Err(EngineError::NotRunning(id.to_string()));
        }
        let mstats = mem.stats.unwrap_or_default();
        let (mut rx, mut tx) = (0, 0);
        for n in s.networks.unwrap_or_default().values() {
            rx += n.rx_bytes.unwrap_or(0);
            tx += n.tx_bytes.unwrap_or(0);
        }
        let (mut rd, mut wr) = (0, 0);
        for e in s
            .blkio_stats
            .and_then(|b| b.io_service_bytes_recursive)
            .unwrap_or_default()
        {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => rd += e.value.unwrap_or(0),
                Some("write") => wr += e.value.unwrap_or(0),
                _ => {}
            }
        }
        Ok(RawStats {
            cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(0),
            mem_usage: mem.usage.unwrap_or(0),
            mem_inactive_file: mstats
                .get("total_inactive_file")
                .or_else(|| mstats.get("inactive_file"))
                .copied(),
            mem_limit: mem.limit.unwrap_or(0),
            net_rx: rx,
            net_tx: tx,
            blk_read: rd,
            blk_write: wr,
            pids: s.pids_stats.and_then(|p| p.current).unwrap_or(0),
        })
    }

    fn events(&self, project: &str) -> BoxStream<EResult<EngineEvent>> {
        let mut filters = project_filter(project);
        filters.insert("type".into(), vec!["container".into()]);
        // Only lifecycle actions: without this the engine sends every health check's
        // exec_create/exec_start/exec_die (three a check, one check a second per service),
        // which every subscriber must read and drop. `health_status` matches its
        // `health_status: healthy|unhealthy` forms (the engine's fuzzy match).
        filters.insert(
            "event".into(),
            LIFECYCLE_EVENTS.iter().map(|e| e.to_string()).collect(),
        );
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        Box::pin(self.docker.events(Some(opts)).filter_map(|r| async move {
            match r {
                Err(e) => Some(Err(EngineError::from(e))),
                Ok(ev) => {
                    let action = ev.action.unwrap_or_default();
                    // Health checks run as execs: they are noise to an operator.
                    if action.starts_with("exec_") {
                        return None;
                    }
                    let actor = ev.actor.unwrap_or_default();
                    let attrs = actor.attributes.unwrap_or_default();
                    Some(Ok(EngineEvent {
                        container_id: actor.id.unwrap_or_default(),
                        service: attrs.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                        action,
                    }))
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};
    use crate::stack::plan::container_spec;

    #[test]
    fn create_body_carries_limits_health_ports_and_gpus() {
        let src = "name: t\nservices:\n  o:\n    image: ollama/ollama\n    \
                   ports: ['127.0.0.1:11434:11434']\n    restart: on-failure:3\n    \
                   healthcheck: {test: [CMD, ollama, list], interval: 15s, retries: 5}\n    \
                   volumes: ['models:/root/.ollama:ro']\n    deploy:\n      resources:\n        \
                   limits: {cpus: '4', memory: 8G}\n        reservations:\n          devices:\n\
                   \x20           - {driver: nvidia, count: all, capabilities: [gpu]}\n\
                   volumes:\n  models:\n";
        let p = load_str(
            src,
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let body = create_body(&container_spec(&p, &p.services["o"], 1));
        let hc = body.host_config.as_ref().unwrap();
        assert_eq!(hc.nano_cpus, Some(4_000_000_000));
        assert_eq!(hc.memory, Some(8 << 30));
        let gpu = &hc.device_requests.as_ref().unwrap()[0];
        assert_eq!(gpu.driver.as_deref(), Some("nvidia"));
        assert_eq!(gpu.count, Some(-1), "count: all is -1 for the engine");
        assert_eq!(gpu.capabilities, Some(vec![vec!["gpu".to_string()]]));
        let rp = hc.restart_policy.as_ref().unwrap();
        assert_eq!(rp.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(rp.maximum_retry_count, Some(3));
        let b = &hc.port_bindings.as_ref().unwrap()["11434/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b.host_port.as_deref(), Some("11434"));
        let m = &hc.mounts.as_ref().unwrap()[0];
        assert_eq!(m.source.as_deref(), Some("t_models"));
        assert_eq!(m.read_only, Some(true));
        let h = body.healthcheck.as_ref().unwrap();
        assert_eq!(h.test.as_ref().unwrap(), &["CMD", "ollama", "list"]);
        assert_eq!(h.interval, Some(15_000_000_000));
        assert_eq!(hc.network_mode.as_deref(), Some("t_default"));
    }

    fn body_of(src: &str, svc: &str) -> ContainerCreateBody {
        let p = load_str(
            src,
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        create_body(&container_spec(&p, &p.services[svc], 1))
    }

    #[test]
    fn create_body_carries_privileges_limits_and_names_as_compose_does() {
        let body = body_of(
            "name: t\nservices:\n  a:\n    image: i\n    cap_add: [NET_ADMIN]\n    \
             cap_drop: [ALL]\n    privileged: true\n    read_only: true\n    \
             security_opt: ['no-new-privileges:true']\n    tmpfs: ['/run:size=64m', /tmp]\n    \
             shm_size: 1m\n    ulimits: {nofile: {soft: 100, hard: 200}}\n    \
             sysctls: {net.core.somaxconn: 1024}\n    devices: [/dev/null]\n    \
             extra_hosts: {db: 10.0.0.9}\n    dns: [1.1.1.1]\n    dns_search: [x.y]\n    \
             dns_opt: ['ndots:1']\n    hostname: h\n    domainname: d\n    tty: true\n    \
             stdin_open: true\n    ipc: shareable\n    pid: host\n    uts: host\n    \
             cgroup: private\n    expose: ['81']\n    ports: ['8080:80']\n    \
             group_add: [audio]\n    oom_score_adj: 10\n    oom_kill_disable: true\n    \
             cgroup_parent: p\n    userns_mode: host\n    runtime: runc\n    cpu_count: 1\n    \
             cpu_shares: 2\n    cpu_period: 100000\n    cpu_quota: 5000\n    \
             cpu_rt_runtime: 1ms\n    cpu_rt_period: 2ms\n    cpuset: '0-1'\n    \
             mem_swappiness: 0\n    memswap_limit: -1\n    pids_limit: 7\n    \
             storage_opt: {size: 1G}\n    external_links: ['other:o']\n    \
             annotations: {a.b: c}\n    device_cgroup_rules: ['c 1:3 mr']\n    \
             blkio_config: {weight: 300, weight_device: [{path: /dev/sda, weight: 400}], \
             device_read_bps: [{path: /dev/sda, rate: 12mb}], \
             device_write_iops: [{path: /dev/sda, rate: 30}]}\n",
            "a",
        );
        let hc = body.host_config.clone().unwrap();
        assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".into()]));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".into()]));
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges:true".into()]));
        let tmpfs = hc.tmpfs.unwrap();
        assert_eq!(tmpfs["/run"], "size=64m");
        assert_eq!(tmpfs["/tmp"], "");
        assert_eq!(hc.shm_size, Some(1 << 20));
        let u = &hc.ulimits.unwrap()[0];
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(100), Some(200))
        );
        assert_eq!(hc.sysctls.unwrap()["net.core.somaxconn"], "1024");
        let d = &hc.devices.unwrap()[0];
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/null"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(hc.extra_hosts, Some(vec!["db:10.0.0.9".into()]));
        assert_eq!(hc.dns, Some(vec!["1.1.1.1".into()]));
        assert_eq!(hc.dns_search, Some(vec!["x.y".into()]));
        assert_eq!(hc.dns_options, Some(vec!["ndots:1".into()]));
        assert_eq!(hc.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.uts_mode.as_deref(), Some("host"));
        assert_eq!(hc.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::PRIVATE));
        assert_eq!(hc.group_add, Some(vec!["audio".into()]));
        assert_eq!(
            (hc.oom_score_adj, hc.oom_kill_disable),
            (Some(10), Some(true))
        );
        assert_eq!(hc.cgroup_parent.as_deref(), Some("p"));
        assert_eq!(hc.userns_mode.as_deref(), Some("host"));
        assert_eq!(hc.runtime.as_deref(), Some("runc"));
        assert_eq!((hc.cpu_count, hc.cpu_shares), (Some(1), Some(2)));
        assert_eq!((hc.cpu_period, hc.cpu_quota), (Some(100_000), Some(5000)));
        assert_eq!(
            (hc.cpu_realtime_runtime, hc.cpu_realtime_period),
            (Some(1000), Some(2000))
        );
        assert_eq!(hc.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!((hc.memory_swappiness, hc.memory_swap), (Some(0), Some(-1)));
        assert_eq!(hc.pids_limit, Some(7));
        assert_eq!(hc.storage_opt.unwrap()["size"], "1G");
        assert_eq!(hc.links, None, "links go to the network endpoint");
        let ep = &body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap()["t_default"];
        assert_eq!(ep.links, Some(vec!["other:o".into()]));
        assert_eq!(hc.annotations.unwrap()["a.b"], "c");
        assert_eq!(hc.device_cgroup_rules, Some(vec!["c 1:3 mr".into()]));
        assert_eq!(hc.blkio_weight, Some(300));
        assert_eq!(hc.blkio_weight_device.unwrap()[0].weight, Some(400));
        let bps = &hc.blkio_device_read_bps.unwrap()[0];
        assert_eq!(
            (bps.path.as_deref(), bps.rate),
            (Some("/dev/sda"), Some(12 << 20))
        );
        assert_eq!(hc.blkio_device_write_iops.unwrap()[0].rate, Some(30));
        assert_eq!(body.hostname.as_deref(), Some("h"));
        assert_eq!(body.domainname.as_deref(), Some("d"));
        assert_eq!((body.tty, body.open_stdin), (Some(true), Some(true)));
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, ["80/tcp", "81/tcp"]);
    }

    #[test]
    fn network_mode_replaces_the_project_networks() {
        let body = body_of(
            "name: t\nservices:\n  a:\n    image: i\n    network_mode: host\n",
            "a",
        );
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("host")
        );
        assert!(body.networking_config.is_none());
        let body = body_of("name: t\nservices:\n  a:\n    image: i\n", "a");
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("t_default")
        );
    }

    #[test]
    fn settings_an_old_engine_would_drop_are_refused_by_version() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    annotations: {k: v}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(e.contains("`annotations` needs Engine API 1.43"), "{e}");
        assert!(check_api(&spec, (1, 43)).is_ok());
    }

    fn project_in(dir: &std::path::Path, src: &str) -> crate::stack::compose::Project {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pw.txt"), "s3cret").unwrap();
        std::fs::write(dir.join("app.conf"), "listen 80;").unwrap();
        let opts = LoadOptions {
            env: [("TOKEN".to_string(), "tok-123".to_string())].into(),
            ..LoadOptions::default()
        };
        load_str(src, &dir.join("c.yml"), &opts).unwrap()
    }

    #[test]
    fn secrets_and_configs_are_bind_mounted_or_injected_as_compose_does() {
        let dir = std::env::temp_dir().join(format!("osmen-eng-sec-{}", std::process::id()));
        let p = project_in(
            &dir,
            "name: t\nservices:\n  a:\n    image: i\n    secrets:\n      - pw\n      \
             - {source: pw, target: owned, uid: '7', gid: '8', mode: 0400}\n      - token\n    \
             configs:\n      - app\n      - {source: inline, target: etc/inline.conf}\n\
             secrets:\n  pw: {file: pw.txt}\n  token: {environment: TOKEN}\n\
             configs:\n  app: {file: app.conf}\n  inline: {content: 'a = 1'}\n",
        );
        let spec = container_spec(&p, &p.services["a"], 1);
        let body = create_body(&spec);
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let binds: Vec<(String, String, bool)> = mounts
            .iter()
            .map(|m| {
                assert_eq!(m.typ, Some(MountType::BIND));
                (
                    m.source.clone().unwrap(),
                    m.target.clone().unwrap(),
                    m.read_only.unwrap(),
                )
            })
            .collect();
        let abs = |f: &str| {
            std::path::absolute(dir.join(f))
                .unwrap()
                .display()
                .to_string()
        };
        assert_eq!(
            binds,
            vec![
                (abs("pw.txt"), "/run/secrets/pw".into(), true),
                (abs("app.conf"), "/app".into(), true),
            ]
        );
        let files: Vec<(&str, u32, u32, u32)> = spec
            .files
            .iter()
            .map(|f| (f.target.as_str(), f.uid, f.gid, f.mode))
            .collect();
        assert_eq!(
            files,
            vec![
                ("/run/secrets/owned", 7, 8, 0o400),
                ("/run/secrets/token", 0, 0, 0o444),
                ("/etc/inline.conf", 0, 0, 0o444),
            ]
        );
        // The spec is logged: a secret's value never shows in its Debug form.
        assert!(!format!("{spec:?}").contains("tok-123"));
        // The archive holds each file at its path with its owner, mode and bytes.
        let tar = files_tar("t-a-1", &spec.files).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut e, &mut body).unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                body,
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("run/secrets/owned".into(), 7, 8, 0o400, "s3cret".into()),
                ("run/secrets/token".into(), 0, 0, 0o444, "tok-123".into()),
                ("etc/inline.conf".into(), 0, 0, 0o444, "a = 1".into()),
            ]
        );
        std::fs::remove_file(dir.join("pw.txt")).unwrap();
        let e = files_tar("t-a-1", &spec.files).unwrap_err().to_string();
        assert!(
            e.contains("pw.txt") && e.contains("/run/secrets/owned"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn endpoints_carry_static_addresses_in_priority_order() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    networks:\n      \
             back: {ipv4_address: 10.9.0.5}\n      front:\n        priority: 100\n        \
             ipv4_address: 172.28.5.10\n        ipv6_address: 2001:db8::10\n        \
             link_local_ips: [169.254.1.1]\n        aliases: [web]\n\
             networks:\n  front: {}\n  back: {}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let order: Vec<&str> = spec.networks.iter().map(|a| a.network.as_str()).collect();
        assert_eq!(order, ["t_front", "t_back"], "priority 100 first");
        let body = create_body(&spec);
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("t_front")
        );
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        let ep = &eps["t_front"];
        assert_eq!(ep.aliases, Some(vec!["a".to_string(), "web".to_string()]));
        let ipam = ep.ipam_config.as_ref().unwrap();
        assert_eq!(ipam.ipv4_address.as_deref(), Some("172.28.5.10"));
        assert_eq!(ipam.ipv6_address.as_deref(), Some("2001:db8::10"));
        assert_eq!(ipam.link_local_ips, Some(vec!["169.254.1.1".to_string()]));
        // The second network is connected after create with its own address.
        let back = endpoint(&spec.networks[1]);
        assert_eq!(
            back.ipam_config.unwrap().ipv4_address.as_deref(),
            Some("10.9.0.5")
        );
    }

    #[test]
    fn networks_are_created_with_every_option_and_a_diverged_one_is_named() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    networks: [n]\n\
             networks:\n  n:\n    driver_opts: {com.docker.network.bridge.enable_icc: 'false'}\n    \
             labels: {tier: front}\n    internal: true\n    attachable: true\n    \
             enable_ipv6: true\n    ipam:\n      config:\n        - subnet: 172.28.0.0/16\n          \
             ip_range: 172.28.5.0/24\n          gateway: 172.28.5.254\n          \
             aux_addresses: {host1: 172.28.1.5}\n      options: {o: v}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let def = &p.networks["n"];
        let labels: HashMap<String, String> = [
            (LABEL_PROJECT.to_string(), "t".to_string()),
            (LABEL_NETWORK.to_string(), "n".to_string()),
        ]
        .into();
        let req = network_request(def, labels.clone());
        assert_eq!(req.name, "t_n");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        assert_eq!(
            (req.internal, req.attachable, req.enable_ipv6),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(
            req.options.as_ref().unwrap()["com.docker.network.bridge.enable_icc"],
            "false"
        );
        let req_labels = req.labels.clone().unwrap();
        assert_eq!(req_labels["tier"], "front");
        assert_eq!(req_labels[LABEL_NETWORK], "n");
        let ipam = req.ipam.clone().unwrap();
        assert_eq!(ipam.driver.as_deref(), Some("default"));
        let pool = &ipam.config.as_ref().unwrap()[0];
        assert_eq!(pool.subnet.as_deref(), Some("172.28.0.0/16"));
        assert_eq!(pool.ip_range.as_deref(), Some("172.28.5.0/24"));
        assert_eq!(pool.gateway.as_deref(), Some("172.28.5.254"));
        assert_eq!(
            pool.auxiliary_addresses.as_ref().unwrap()["host1"],
            "172.28.1.5"
        );
        assert_eq!(ipam.options.as_ref().unwrap()["o"], "v");
        // What the engine answers for the network it made matches: nothing to say.
        let made = bollard::models::NetworkInspect {
            driver: req.driver.clone(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6: req.enable_ipv6,
            ipam: req.ipam.clone(),
            options: req.options.clone(),
            labels: req.labels.clone(),
            ..Default::default()
        };
        assert_eq!(network_drift(def, &labels, &made), Vec::<String>::new());
        // A network made by hand with another subnet and no Compose labels.
        let other = bollard::models::NetworkInspect {
            driver: Some("bridge".into()),
            ipam: Some(bollard::models::Ipam {
                driver: Some("default".into()),
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some("10.1.0.0/16".into()),
                    ..Default::default()
                }]),
                options: None,
            }),
            ..Default::default()
        };
        // docker-compose 1.29's networks are attachable: not a difference the file asks
        // about when it does not set `attachable`.
        let plain = &p.networks["default"];
        let default_labels: HashMap<String, String> =
            [(LABEL_NETWORK.to_string(), "default".to_string())].into();
        let compose129 = bollard::models::NetworkInspect {
            driver: Some("bridge".into()),
            attachable: Some(true),
            labels: Some(default_labels.clone()),
            ..Default::default()
        };
        assert!(network_drift(plain, &default_labels, &compose129).is_empty());
        let drift = network_drift(def, &labels, &other).join("; ");
        for w in [
            "label com.docker.compose.network is \"\" (expected \"n\"",
            "internal is false (file: true)",
            "attachable is false (file: true)",
            "no ipam pool with subnet 172.28.0.0/16 (the network has 10.1.0.0/16)",
            "driver_opts com.docker.network.bridge.enable_icc is unset",
            "label tier is unset (file: \"front\")",
        ] {
            assert!(drift.contains(w), "{w:?} in {drift}");
        }
        let e = drift_error("network", "t_n", vec!["x".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network t_n exists but differs") && e.contains("docker network rm t_n")
        );
    }

    #[test]
    fn a_diverged_volume_is_named_and_never_removed() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    volumes: [v:/v]\n\
             volumes:\n  v:\n    driver_opts: {type: tmpfs, device: tmpfs}\n    labels: {team: data}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let labels: HashMap<String, String> = [(LABEL_VOLUME.to_string(), "v".to_string())].into();
        let mut v = bollard::models::Volume {
            name: "t_v".into(),
            driver: "local".into(),
            labels: [
                (LABEL_VOLUME.to_string(), "v".to_string()),
                ("team".to_string(), "data".to_string()),
            ]
            .into(),
            options: [
                ("type".to_string(), "tmpfs".to_string()),
                ("device".to_string(), "tmpfs".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        assert!(volume_drift(&p.volumes["v"], &labels, &v).is_empty());
        v.options.insert("type".into(), "nfs".into());
        let d = volume_drift(&p.volumes["v"], &labels, &v).join("; ");
        assert!(
            d.contains("driver_opts type is \"nfs\" (file: \"tmpfs\")"),
            "{d}"
        );
        let e = drift_error("volume", "t_v", vec![d])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("docker volume rm t_v") && e.contains("data is lost"),
            "{e}"
        );
    }

    #[test]
    fn start_interval_and_endpoint_mac_are_refused_below_api_1_44() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    healthcheck:\n      \
             test: [CMD, true]\n      start_interval: 2s\n  b:\n    image: i\n    \
             networks:\n      default: {mac_address: '02:42:ac:11:00:02'}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(
            e.contains("`healthcheck.start_interval` needs Engine API 1.44"),
            "{e}"
        );
        assert!(check_api(&spec, (1, 44)).is_ok());
        assert_eq!(
            create_body(&spec).healthcheck.unwrap().start_interval,
            Some(2_000_000_000)
        );
        let spec = container_spec(&p, &p.services["b"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(e.contains("`mac_address` needs Engine API 1.44"), "{e}");
        let eps = create_body(&spec)
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(
            eps["t_default"].mac_address.as_deref(),
            Some("02:42:ac:11:00:02")
        );
    }
}
