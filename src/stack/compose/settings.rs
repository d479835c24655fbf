//! The service keys that shape one container beyond image, command and mounts: privileges,
//! kernel limits, name resolution, namespaces and CPU tuning. Each is parsed here with the
//! file's position for errors and kept as Compose writes it, so `config` prints it back;
//! the engine adapter maps it onto HostConfig and Config as `docker compose` does.
//!
//! Every key of the Compose Specification's service is either applied ([`APPLIED_KEYS`])
//! or refused at load with its reason ([`REFUSED_KEYS`]): nothing is accepted and ignored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::parse::{Ctx, seq_or_err};
use super::yaml::{Kind, Node, Pos};
use crate::model::units::{parse_bytes, parse_duration};

mod values;
use values::*;

/// Service keys osmen applies at `up` (see `engine::create_body` for the Engine API field
/// each becomes).
pub const APPLIED_KEYS: &[&str] = &[
    // Resolved by the loader before a service is read (compose/extends.rs).
    "extends",
    "annotations",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "depends_on",
    "deploy",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    // Served by the stack's Ollama service (compose/models.rs).
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// Service keys of the specification osmen refuses at load, with the reason the operator
/// reads: either the key cannot mean anything on one Linux engine, or osmen does not
/// apply it yet and says so rather than start a container other than the file asks.
pub const REFUSED_KEYS: &[(&str, &str)] = &[
    (
        "attach",
        "osmen does not attach to service output at `up`; follow it with `osmen logs`",
    ),
    (
        "cpu_percent",
        "the engine applies CPU percent to Windows containers only; use `cpus:` on Linux",
    ),
    (
        "credential_spec",
        "credential specs are for Windows containers (gMSA) only",
    ),
    (
        "develop",
        "`develop` drives `docker compose watch`, which osmen does not run",
    ),
    (
        "pre_start",
        "pre_start init containers are not run by osmen yet; make the step a one-shot \
         service and depend on it with `condition: service_completed_successfully`",
    ),
    (
        "provider",
        "provider services are run by Compose plugins, which osmen does not have",
    ),
    (
        "pull_refresh_after",
        "osmen refreshes by `pull_policy` alone: write the interval there (`daily`, \
         `weekly` or `every_12h`)",
    ),
    (
        "use_api_socket",
        "osmen does not hand the engine's socket and credentials to a container; bind \
         /var/run/docker.sock under `volumes:` if you mean it",
    ),
];

/// The reason a refused key is refused, if it is.
pub fn refusal(key: &str) -> Option<&'static str> {
    REFUSED_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, why)| *why)
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

/// `blkio_config`: a weight (10-1000) and per-device weights and throttles.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Blkio {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<DeviceWeight>,
    /// Bytes per second.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<DeviceRate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<DeviceRate>,
    /// Operations per second.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<DeviceRate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<DeviceRate>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceWeight {
    pub path: String,
    pub weight: u16,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceRate {
    pub path: String,
    pub rate: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceMap {
    pub source: String,
    pub target: String,
    pub permissions: String,
}

/// The container settings of a service, under their compose names.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ContainerSettings {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// `PATH` or `PATH:OPTIONS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMap>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// `HOST:IP`, as the engine takes them, in the file's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// `host`, `none`, `bridge`, `service:NAME`, `container:NAME` or a network name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// `PORT[/PROTO]` or `START-END[/PROTO]`, as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Microseconds, as the engine takes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    /// Bytes; -1 for unlimited swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// `SERVICE` or `SERVICE:ALIAS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// `CONTAINER` or `CONTAINER:ALIAS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `SERVICE[:ro|rw]` or `container:NAME[:ro|rw]`; resolved to `ID:MODE` (a service) or
    /// `NAME:MODE` (a container) for the engine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Blkio>,
}

impl ContainerSettings {
    /// Services of the project whose containers this one's settings name
    /// (`network_mode: service:x`, `ipc`/`pid: service:x`, `links`): they must exist
    /// before this container is created, and are started first as Compose does.
    pub fn service_refs(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.network_mode, &self.ipc, &self.pid]
            .into_iter()
            .flatten()
            .filter_map(|m| m.strip_prefix("service:").map(str::to_string))
            .collect();
        for l in &self.links {
            out.push(link_parts(l).0.to_string());
        }
        for v in &self.volumes_from {
            if let VolumesFrom::Service(svc, _) = volumes_from_parts(v) {
                out.push(svc.to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The compose names of the keys that are set, for engines that must say what they
    /// cannot carry.
    pub fn set_keys(&self) -> Vec<&'static str> {
        let v = serde_json::to_value(self).unwrap_or_default();
        let set: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        APPLIED_KEYS
            .iter()
            .copied()
            .filter(|k| set.iter().any(|s| s == k))
            .collect()
    }

    /// `EXPOSE`d ports as the engine keys them (`80/tcp`), ranges expanded.
    pub fn exposed_ports(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.expose {
            let (range, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            if let Some((a, b)) = port_range(range) {
                out.extend((a..=b).map(|p| format!("{p}/{proto}")));
            }
        }
        out
    }
}

/// One `volumes_from` entry: a service of the project or a container, and the mode.
#[derive(Debug, PartialEq, Eq)]
pub enum VolumesFrom<'a> {
    Service(&'a str, &'a str),
    Container(&'a str, &'a str),
}

/// `db`, `db:ro`, `container:c`, `container:c:rw` (the mode defaults to rw, as in Compose).
pub fn volumes_from_parts(v: &str) -> VolumesFrom<'_> {
    match v.split(':').collect::<Vec<_>>().as_slice() {
        ["container", c] => VolumesFrom::Container(c, "rw"),
        ["container", c, m] => VolumesFrom::Container(c, m),
        [s, m] => VolumesFrom::Service(s, m),
        _ => VolumesFrom::Service(v, "rw"),
    }
}

/// `db` or `db:database`: the service (or container) and the alias.
pub fn link_parts(l: &str) -> (&str, &str) {
    l.split_once(':').unwrap_or((l, l))
}

fn port_range(s: &str) -> Option<(u16, u16)> {
    let one = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    match s.split_once('-') {
        Some((a, b)) => Some((one(a)?, one(b)?)).filter(|(a, b)| a <= b),
        None => one(s).map(|p| (p, p)),
    }
}

/// Parses one service key into `st` when it is one of this file's; false otherwise.
pub(super) fn parse_key(
    ctx: &mut Ctx,
    key: &str,
    v: &Node,
    p: &str,
    st: &mut ContainerSettings,
) -> bool {
    match key {
        "cap_add" => st.cap_add = capabilities(ctx, v, p),
        "cap_drop" => st.cap_drop = capabilities(ctx, v, p),
        "privileged" => st.privileged = ctx.boolean(v, p),
        "read_only" => st.read_only = ctx.boolean(v, p),
        "security_opt" => st.security_opt = list(ctx, v, p),
        "tmpfs" => st.tmpfs = tmpfs(ctx, v, p),
        "shm_size" => st.shm_size = ctx.bytes(v, p),
        "ulimits" => st.ulimits = ulimits(ctx, v, p),
        "sysctls" => st.sysctls = ctx.kv(v, p, false),
        "devices" => st.devices = devices(ctx, v, p),
        "device_cgroup_rules" => st.device_cgroup_rules = list(ctx, v, p),
        "extra_hosts" => st.extra_hosts = extra_hosts(ctx, v, p),
        "dns" => st.dns = ctx.string_list(v, p),
        "dns_search" => st.dns_search = ctx.string_list(v, p),
        "dns_opt" => st.dns_opt = list(ctx, v, p),
        "hostname" => st.hostname = ctx.scalar(v, p, "a host name"),
        "domainname" => st.domainname = ctx.scalar(v, p, "a domain name"),
        "tty" => st.tty = ctx.boolean(v, p),
        "stdin_open" => st.stdin_open = ctx.boolean(v, p),
        "network_mode" => st.network_mode = mode(ctx, v, p, NETWORK_MODES, true),
        "ipc" => st.ipc = mode(ctx, v, p, IPC_MODES, false),
        "pid" => st.pid = mode(ctx, v, p, PID_MODES, false),
        "uts" => st.uts = mode(ctx, v, p, &["host"], false),
        "cgroup" => st.cgroup = mode(ctx, v, p, &["host", "private"], false),
        "expose" => st.expose = expose(ctx, v, p),
        "group_add" => st.group_add = list(ctx, v, p),
        "oom_score_adj" => st.oom_score_adj = int(ctx, v, p, -1000, 1000),
        "oom_kill_disable" => st.oom_kill_disable = ctx.boolean(v, p),
        "mac_address" => st.mac_address = mac(ctx, v, p),
        "cgroup_parent" => st.cgroup_parent = ctx.scalar(v, p, "a cgroup path"),
        "userns_mode" => st.userns_mode = ctx.scalar(v, p, "a user namespace mode"),
        "runtime" => st.runtime = ctx.scalar(v, p, "a runtime name such as runc"),
        "platform" => st.platform = ctx.scalar(v, p, "a platform such as linux/amd64"),
        "cpu_count" => st.cpu_count = int(ctx, v, p, 0, i64::MAX),
        "cpu_shares" => st.cpu_shares = int(ctx, v, p, 0, i64::MAX),
        "cpu_period" => st.cpu_period = micros(ctx, v, p),
        "cpu_quota" => st.cpu_quota = micros(ctx, v, p),
        "cpu_rt_runtime" => st.cpu_rt_runtime = micros(ctx, v, p),
        "cpu_rt_period" => st.cpu_rt_period = micros(ctx, v, p),
        "cpuset" => st.cpuset = cpuset(ctx, v, p),
        "mem_swappiness" => st.mem_swappiness = int(ctx, v, p, 0, 100),
        "memswap_limit" => st.memswap_limit = swap(ctx, v, p),
        "pids_limit" => st.pids_limit = int(ctx, v, p, -1, i64::MAX),
        "storage_opt" => st.storage_opt = ctx.kv(v, p, false),
        "links" => st.links = list(ctx, v, p),
        "external_links" => st.external_links = list(ctx, v, p),
        "annotations" => st.annotations = ctx.kv(v, p, false),
        "volumes_from" => st.volumes_from = volumes_from(ctx, v, p),
        "blkio_config" => st.blkio_config = blkio(ctx, v, p),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests;
