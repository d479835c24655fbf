//! The compose file: loading, interpolation, validation, and the resolved stack model
//! that the supervisor acts on. Everything is checked before the engine is touched.

pub mod deploy;
pub mod dotenv;
pub mod envfile;
pub mod error;
mod extends;
pub mod hooks;
mod include;
pub mod interpolate;
pub mod load;
pub mod merge;
pub mod models;
pub mod mounts;
pub mod objects;
mod parse;
pub mod ports;
pub mod settings;
mod unique;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::{ComposeError, ComposeErrors};
pub use parse::{dependency_closure, load_str};
pub use ports::HostPorts;
pub use settings::ContainerSettings;

#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub name: String,
    /// The first compose file (the project directory is its directory).
    #[serde(skip)]
    pub file: PathBuf,
    /// Every compose file given (`-f`, COMPOSE_FILE or discovered), in merge order.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Every file the project was read from: the files above, then each included file
    /// and `extends` base file (what a watcher follows).
    #[serde(skip)]
    pub sources: Vec<PathBuf>,
    #[serde(skip)]
    pub dir: PathBuf,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, NetworkDef>,
    pub volumes: BTreeMap<String, VolumeDef>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Secret-named variables the file refers to, with their values: what an export must
    /// turn into references wherever the value landed (`--requirepass ${REDIS_PASSWORD}`).
    /// Never serialized.
    #[serde(skip)]
    pub secret_vars: BTreeMap<String, String>,
    /// The top-level `models:`, served by the stack's Ollama service.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, models::ModelDef>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Service {
    pub name: String,
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    pub environment: BTreeMap<String, String>,
    /// `environment:` names given bare that nothing sets: passed to the engine bare, which
    /// unsets them in the container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_unset: Vec<String>,
    pub ports: Vec<Port>,
    pub volumes: Vec<Mount>,
    pub networks: BTreeMap<String, ServiceNetwork>,
    /// `secrets:` granted to the service, targets resolved (`/run/secrets/NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileGrant>,
    /// `configs:` granted to the service, targets resolved (`/NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileGrant>,
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub restart: Restart,
    pub resources: Resources,
    pub replicas: u32,
    pub profiles: Vec<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub stop_grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// `pull_policy`: always, missing (if_not_present), never or build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// `x-osmen-probe`: what kind of service osmen probes it as (else from the image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::model::probe::ProbeSpec>,
    /// `x-osmen-balance`: this service is an nginx in front of another service's
    /// replicas; osmen writes its upstream list and reloads it when they change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Balance>,
    /// `deploy.placement.constraints` (Swarm): `node.role == manager`, `node.labels.gpu == true`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<String>,
    /// `deploy.mode`, `update_config`, `rollback_config`, `endpoint_mode`, `labels`:
    /// Swarm's; printed by `config` under `deploy`.
    #[serde(skip_serializing_if = "deploy::SwarmDeploy::is_empty")]
    pub deploy: deploy::SwarmDeploy,
    /// `post_start` hooks: run in the container after it starts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<hooks::Hook>,
    /// `pre_stop` hooks: run in the container before it stops.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<hooks::Hook>,
    /// Privileges, kernel limits, name resolution, namespaces, CPU tuning: printed by
    /// `config` under their compose names.
    #[serde(flatten)]
    pub settings: ContainerSettings,
    /// The models this service uses (`models:`), with the Ollama service serving them;
    /// their variables are already in `environment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<models::ModelBinding>,
}

/// What a balancer service balances: `x-osmen-balance: gateway:8080` or
/// `{service: gateway, port: 8080, listen: 80}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Balance {
    pub service: String,
    /// The replicas' port.
    pub port: u16,
    /// Where nginx listens inside its container.
    pub listen: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Build {
    pub context: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Port {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// None: the engine picks a free host port; a range over one target: the engine
    /// picks a free port of the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<HostPorts>,
    pub target: u16,
    pub protocol: String,
    /// Long form `mode`: `ingress` or `host` (Swarm's publish mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Long form `name` (a Kubernetes port name in `export k8s`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Long form `app_protocol` (Kubernetes `appProtocol`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

impl Port {
    /// The host port when one is fixed (not left to the engine, not a range).
    pub fn host_port(&self) -> Option<u16> {
        self.published.and_then(HostPorts::single)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountKind,
    /// Volume name (project-local, before prefixing) or absolute host path; None for an
    /// anonymous volume or tmpfs.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<mounts::BindOpts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<mounts::VolumeOpts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<mounts::TmpfsOpts>,
    /// `cached`, `delegated`, `consistent`: macOS file sharing; the Linux engine has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
}

impl Mount {
    pub fn new(kind: MountKind, source: Option<String>, target: String, read_only: bool) -> Mount {
        Mount {
            kind,
            source,
            target,
            read_only,
            bind: None,
            volume: None,
            tmpfs: None,
            consistency: None,
        }
    }

    /// A bind whose missing host directory the engine creates (the short syntax, or
    /// `create_host_path: true`).
    pub fn creates_host_path(&self) -> bool {
        self.bind.as_ref().is_some_and(|b| b.create_host_path)
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dependency {
    pub condition: Condition,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthTest {
    /// `["CMD", ...]`: run directly in the container.
    Exec(Vec<String>),
    /// `CMD-SHELL` or a plain string: run through `/bin/sh -c`.
    Shell(String),
    /// `NONE` or `disable: true`: turn off the image's check.
    Disabled,
}

/// Written back in Compose's own list form: `["CMD", ...]`, `["CMD-SHELL", ...]`, `["NONE"]`.
impl Serialize for HealthTest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let words: Vec<&str> = match self {
            HealthTest::Exec(w) => std::iter::once("CMD")
                .chain(w.iter().map(String::as_str))
                .collect(),
            HealthTest::Shell(c) => vec!["CMD-SHELL", c],
            HealthTest::Disabled => vec!["NONE"],
        };
        words.serialize(s)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Healthcheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub start_period: Option<Duration>,
    /// Engine API 1.44: refused at create by older engines, as `docker compose` does.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_duration")]
    pub start_interval: Option<Duration>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    No,
    Always,
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl Restart {
    pub fn as_compose(&self) -> String {
        match self {
            Restart::No => "no".into(),
            Restart::Always => "always".into(),
            Restart::UnlessStopped => "unless-stopped".into(),
            Restart::OnFailure(None) => "on-failure".into(),
            Restart::OnFailure(Some(n)) => format!("on-failure:{n}"),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GpuRequest {
    pub driver: String,
    /// None means all devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// `cpus` came from the service-level `cpus:` (else `deploy.resources.limits`).
    #[serde(skip)]
    pub cpus_service_level: bool,
    /// `memory` came from the service-level `mem_limit:`.
    #[serde(skip)]
    pub memory_service_level: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_reservation: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
    pub gpus: Vec<GpuRequest>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NetworkDef {
    /// The engine-side name (`<project>_<key>` unless `name:` or `external`).
    pub name: String,
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_ipv6: bool,
}

/// A network's `ipam:` as the engine's IPAM takes it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Ipam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IpamPool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VolumeDef {
    pub name: String,
    pub external: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How a service joins one network: `networks: {front: {aliases: [...], ipv4_address: ..}}`.
/// Written as its alias list when that is all it sets (the form the config hash of
/// existing containers was computed on), else as a mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceNetwork {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub link_local_ips: Vec<String>,
    pub mac_address: Option<String>,
    /// Higher first: the order in which the container is attached (Compose's `priority`).
    pub priority: Option<i64>,
    /// The endpoint's driver options.
    pub driver_opts: BTreeMap<String, String>,
}

impl Serialize for ServiceNetwork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Full<'a> {
            #[serde(skip_serializing_if = "Vec::is_empty")]
            aliases: &'a Vec<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ipv4_address: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ipv6_address: &'a Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            link_local_ips: &'a Vec<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            mac_address: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            priority: &'a Option<i64>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            driver_opts: &'a BTreeMap<String, String>,
        }
        let only_aliases = ServiceNetwork {
            aliases: self.aliases.clone(),
            ..Default::default()
        };
        if *self == only_aliases {
            return self.aliases.serialize(s);
        }
        Full {
            aliases: &self.aliases,
            ipv4_address: &self.ipv4_address,
            ipv6_address: &self.ipv6_address,
            link_local_ips: &self.link_local_ips,
            mac_address: &self.mac_address,
            priority: &self.priority,
            driver_opts: &self.driver_opts,
        }
        .serialize(s)
    }
}

/// A top-level `secrets:` or `configs:` entry: where its content comes from (one of
/// `file`, `environment`, `content`). `config` prints this definition, never the content
/// of a secret.
#[derive(Clone, Default, Serialize, PartialEq)]
pub struct FileObject {
    pub name: String,
    /// Absolute path on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The variable whose value is the content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs only in the specification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The environment variable's value, read at load. Never serialized.
    #[serde(skip)]
    pub value: Option<String>,
}

/// The value stays out of Debug prints (a project may be logged).
impl std::fmt::Debug for FileObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileObject")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("environment", &self.environment)
            .field("content", &self.content)
            .field("value", &self.value.as_ref().map(|_| "********"))
            .finish()
    }
}

/// A service's grant of one secret or config: what lands where in its containers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileGrant {
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Permission bits (`0440`); printed in octal.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "octal_mode")]
    pub mode: Option<u32>,
}

fn octal_mode<S: serde::Serializer>(m: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&format!("0{m:o}")),
        None => s.serialize_none(),
    }
}

mod opt_duration {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&crate::model::units::format_duration(*d)),
            None => s.serialize_none(),
        }
    }
}

/// What a load needs besides the file text.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-p`: overrides `name:` and the directory name.
    pub project_name: Option<String>,
    /// The process environment; it overrides the `.env` file.
    pub env: BTreeMap<String, String>,
}

/// Reads and validates a compose file, its `.env` and `env_file`s.
pub fn load(file: &Path, opts: &LoadOptions) -> Result<Project, ComposeErrors> {
    load::load_files(&[file.to_path_buf()], opts)
}

pub use load::{DiscoverError, ReadError, discover, load_files};

impl Project {
    /// Services that are active under the enabled profiles, plus those named explicitly.
    pub fn active_services(&self, profiles: &[String], named: &[String]) -> BTreeSet<String> {
        self.services
            .values()
            .filter(|s| {
                s.profiles.is_empty()
                    || s.profiles.iter().any(|p| profiles.contains(p) || p == "*")
                    || named.contains(&s.name)
            })
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Project {
    /// How the file writes each service's limits and command, for the advisor's patches.
    pub fn compose_forms(&self) -> BTreeMap<String, crate::model::advice::ComposeForm> {
        // Longest values first, so a secret inside another is not half replaced.
        let mut secrets: Vec<(&String, &String)> = self
            .secret_vars
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let as_written = |arg: &String| {
            let mut a = arg.replace('$', "$$");
            for (name, value) in &secrets {
                a = a.replace(&value.replace('$', "$$"), &format!("${{{name}}}"));
            }
            a
        };
        self.services
            .iter()
            .map(|(name, s)| {
                let form = crate::model::advice::ComposeForm {
                    cpus_service_level: s.resources.cpus_service_level,
                    memory_service_level: s.resources.memory_service_level,
                    command: s
                        .command
                        .as_ref()
                        .map(|c| c.iter().map(as_written).collect()),
                };
                (name.clone(), form)
            })
            .collect()
    }
}

/// A project name as Compose normalises it: lower case, `[a-z0-9_-]`, starting with a
/// letter or digit.
pub fn normalize_project_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_string()
}
