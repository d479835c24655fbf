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
        "models",
        "models need Docker Model Runner, which osmen does not drive",
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

const NETWORK_MODES: &[&str] = &["host", "none", "bridge", "service:", "container:"];
const IPC_MODES: &[&str] = &[
    "host",
    "none",
    "private",
    "shareable",
    "service:",
    "container:",
];
const PID_MODES: &[&str] = &["host", "service:", "container:"];

/// A namespace mode: one of `known` (a `prefix:` entry takes a name after it). With
/// `any_name`, a plain word is accepted too (network_mode may name a network).
fn mode(ctx: &mut Ctx, v: &Node, p: &str, known: &[&str], any_name: bool) -> Option<String> {
    let s = ctx.scalar(v, p, "a mode")?;
    let ok = known.iter().any(|k| match k.strip_suffix(':') {
        Some(prefix) => s
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| !r.is_empty()),
        None => s == *k,
    }) || (any_name && !s.is_empty() && !s.contains(':'));
    if !ok {
        let forms: Vec<String> = known
            .iter()
            .map(|k| {
                if k.ends_with(':') {
                    format!("{k}NAME")
                } else {
                    k.to_string()
                }
            })
            .collect();
        ctx.err(
            v.pos,
            p,
            format!("invalid mode {s:?}: use {}", forms.join(", ")),
        );
        return None;
    }
    Some(s)
}

/// A list of strings; a single string is refused where the spec asks for a list.
fn list(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    if let Kind::Scalar { value, .. } = &v.kind {
        ctx.err(
            v.pos,
            p,
            format!("expected a list, found the string {value:?}: write [{value:?}]"),
        );
        return Vec::new();
    }
    ctx.string_list(v, p)
}

fn capabilities(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let caps = list(ctx, v, p);
    for c in &caps {
        let name = c.strip_prefix("CAP_").unwrap_or(c);
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            ctx.err(
                v.pos,
                p,
                format!("invalid capability {c:?}: use names such as NET_ADMIN or ALL"),
            );
        }
    }
    caps
}

fn int(ctx: &mut Ctx, v: &Node, p: &str, min: i64, max: i64) -> Option<i64> {
    let s = ctx.scalar(v, p, "a whole number")?;
    match s.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        Ok(n) => {
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            ctx.err(
                v.pos,
                p,
                format!("{n} is out of range: use a number {range}"),
            );
            None
        }
        Err(_) => {
            ctx.err(v.pos, p, format!("expected a whole number, found {s:?}"));
            None
        }
    }
}

/// Microseconds, written as a number or as a duration (`400ms`), as compose-go reads
/// the CPU period and real-time keys.
fn micros(ctx: &mut Ctx, v: &Node, p: &str) -> Option<i64> {
    let s = ctx.scalar(v, p, "a number of microseconds or a duration")?;
    if let Ok(n) = s.trim().parse::<i64>() {
        if n >= -1 {
            return Some(n);
        }
    } else if let Ok(d) = parse_duration(&s) {
        return Some(d.as_micros() as i64);
    }
    ctx.err(
        v.pos,
        p,
        format!("invalid value {s:?}: write microseconds (100000) or a duration (\"100ms\")"),
    );
    None
}

fn swap(ctx: &mut Ctx, v: &Node, p: &str) -> Option<i64> {
    let s = ctx.scalar(v, p, "a size such as \"1g\", or -1")?;
    if s.trim() == "-1" {
        return Some(-1);
    }
    match parse_bytes(&s) {
        Ok(b) => Some(b as i64),
        Err(m) => {
            ctx.err(v.pos, p, format!("{m}, or -1 for unlimited swap"));
            None
        }
    }
}

fn cpuset(ctx: &mut Ctx, v: &Node, p: &str) -> Option<String> {
    let s = ctx.scalar(v, p, "CPUs such as \"0-3\" or \"0,1\"")?;
    let ok = !s.is_empty()
        && s.split(',').all(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
        });
    if !ok {
        ctx.err(
            v.pos,
            p,
            format!("invalid cpuset {s:?}: list CPUs and ranges such as \"0-3\" or \"0,2\""),
        );
        return None;
    }
    Some(s)
}

fn mac(ctx: &mut Ctx, v: &Node, p: &str) -> Option<String> {
    let s = ctx.scalar(v, p, "a MAC address")?;
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|x| x.len() == 2 && x.chars().all(|c| c.is_ascii_hexdigit()))
    {
        ctx.err(
            v.pos,
            p,
            format!("invalid MAC address {s:?}: write six hex pairs such as 02:42:ac:11:00:02"),
        );
        return None;
    }
    Some(s)
}

fn tmpfs(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = ctx.string_list(v, p);
    for t in &items {
        let path = t.split_once(':').map_or(t.as_str(), |(a, _)| a);
        if !path.starts_with('/') {
            ctx.err(
                v.pos,
                p,
                format!("invalid tmpfs {t:?}: the container path must be absolute (\"/run\")"),
            );
        }
    }
    items
}

fn ulimits(ctx: &mut Ctx, v: &Node, p: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Some(m) = ctx.map(v, p) else { return out };
    for (k, val) in m {
        let Some(name) = ctx.scalar(k, p, "a limit name such as nofile") else {
            continue;
        };
        let lp = format!("{p}.{name}");
        let limit = match &val.kind {
            Kind::Map(_) => {
                let mut get = |field: &str| match val.get(field) {
                    Some(n) => int(ctx, n, &format!("{lp}.{field}"), -1, i64::MAX),
                    None => {
                        ctx.err(
                            val.pos,
                            &lp,
                            format!(
                                "a ulimit mapping needs `soft` and `hard`; `{field}` is missing"
                            ),
                        );
                        None
                    }
                };
                let (soft, hard) = (get("soft"), get("hard"));
                for (fk, _) in val.as_map().unwrap_or(&[]) {
                    let f = fk.as_str().unwrap_or("");
                    if f != "soft" && f != "hard" {
                        ctx.err(
                            fk.pos,
                            &format!("{lp}.{f}"),
                            "a ulimit has only soft and hard",
                        );
                    }
                }
                match (soft, hard) {
                    (Some(s), Some(h)) if h != -1 && (s > h || s == -1) => {
                        ctx.err(
                            val.pos,
                            &lp,
                            format!("soft limit {s} is above the hard limit {h}"),
                        );
                        None
                    }
                    (Some(soft), Some(hard)) => Some(Ulimit { soft, hard }),
                    _ => None,
                }
            }
            _ => int(ctx, val, &lp, -1, i64::MAX).map(|n| Ulimit { soft: n, hard: n }),
        };
        if let Some(l) = limit {
            out.insert(name, l);
        }
    }
    out
}

fn devices(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<DeviceMap> {
    let mut out = Vec::new();
    for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let dev = if let Kind::Map(_) = it.kind {
            let field = |ctx: &mut Ctx, f: &str| {
                it.get(f)
                    .and_then(|n| ctx.scalar(n, &format!("{ip}.{f}"), "a string"))
            };
            let Some(source) = field(ctx, "source") else {
                ctx.err(
                    it.pos,
                    &ip,
                    "a device mapping needs `source` (the host device)",
                );
                continue;
            };
            DeviceMap {
                target: field(ctx, "target").unwrap_or_else(|| source.clone()),
                permissions: field(ctx, "permissions").unwrap_or_else(|| "rwm".into()),
                source,
            }
        } else {
            let Some(s) = ctx.scalar(it, &ip, "a device such as \"/dev/fuse:/dev/fuse:rwm\"")
            else {
                continue;
            };
            if !s.starts_with('/') && s.contains('=') {
                ctx.err(
                    it.pos,
                    &ip,
                    format!(
                        "{s:?} is a CDI device name, which osmen does not resolve; map the \
                         device node (\"/dev/xyz:/dev/xyz\")"
                    ),
                );
                continue;
            }
            let parts: Vec<&str> = s.split(':').collect();
            let (src, dst, perm) = match parts.as_slice() {
                [a] => (*a, *a, "rwm"),
                [a, b] if is_perm(b) => (*a, *a, *b),
                [a, b] => (*a, *b, "rwm"),
                [a, b, c] => (*a, *b, *c),
                _ => ("", "", ""),
            };
            DeviceMap {
                source: src.into(),
                target: dst.into(),
                permissions: perm.into(),
            }
        };
        if !dev.source.starts_with('/')
            || !dev.target.starts_with('/')
            || !is_perm(&dev.permissions)
        {
            ctx.err(
                it.pos,
                &ip,
                format!(
                    "invalid device {}:{}:{}: write \"/dev/HOST[:/dev/CONTAINER[:rwm]]\" with \
                     absolute paths and permissions from r, w, m",
                    dev.source, dev.target, dev.permissions
                ),
            );
            continue;
        }
        out.push(dev);
    }
    out
}

fn is_perm(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| "rwm".contains(c))
}

/// `HOST:IP`, `HOST=IP` or a `HOST: IP` mapping (a list of IPs too), as `HOST:IP`.
fn extra_hosts(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let mut pairs: Vec<(String, String, Pos)> = Vec::new();
    match &v.kind {
        Kind::Map(m) => {
            for (k, val) in m {
                let Some(host) = ctx.scalar(k, p, "a host name") else {
                    continue;
                };
                let hp = format!("{p}.{host}");
                let ips = match &val.kind {
                    Kind::Seq(_) => ctx.string_list(val, &hp),
                    _ => ctx.scalar(val, &hp, "an IP address").into_iter().collect(),
                };
                for ip in ips {
                    pairs.push((host.clone(), ip, val.pos));
                }
            }
        }
        _ => {
            for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
                let ip_path = format!("{p}[{i}]");
                let Some(s) = ctx.scalar(it, &ip_path, "\"HOST:IP\"") else {
                    continue;
                };
                match s.split_once('=').or_else(|| s.split_once(':')) {
                    Some((h, ip)) => pairs.push((h.to_string(), ip.to_string(), it.pos)),
                    None => ctx.err(
                        it.pos,
                        &ip_path,
                        format!("invalid extra host {s:?}: write \"HOST:IP\" or \"HOST=IP\""),
                    ),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (host, ip, pos) in pairs {
        let ip = ip
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
            ctx.err(
                pos,
                p,
                format!(
                    "invalid extra host {host}={ip:?}: the address must be an IP or host-gateway"
                ),
            );
            continue;
        }
        out.push(format!("{host}:{ip}"));
    }
    out
}

fn blkio(ctx: &mut Ctx, v: &Node, p: &str) -> Option<Blkio> {
    let m = ctx.map(v, p)?;
    let mut b = Blkio::default();
    for (k, val) in m {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        match key {
            "weight" => b.weight = int(ctx, val, &kp, 10, 1000).map(|w| w as u16),
            "weight_device" => {
                b.weight_device = per_device(ctx, val, &kp, "weight", |ctx, n, ip| {
                    int(ctx, n, ip, 10, 1000)
                })
                .into_iter()
                .map(|(path, w)| DeviceWeight {
                    path,
                    weight: w as u16,
                })
                .collect()
            }
            "device_read_bps" | "device_write_bps" => {
                let l = rates(per_device(ctx, val, &kp, "rate", |ctx, n, ip| {
                    ctx.bytes(n, ip).map(|r| r as i64)
                }));
                if key == "device_read_bps" {
                    b.device_read_bps = l;
                } else {
                    b.device_write_bps = l;
                }
            }
            "device_read_iops" | "device_write_iops" => {
                let l = rates(per_device(ctx, val, &kp, "rate", |ctx, n, ip| {
                    int(ctx, n, ip, 0, i64::MAX)
                }));
                if key == "device_read_iops" {
                    b.device_read_iops = l;
                } else {
                    b.device_write_iops = l;
                }
            }
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown blkio_config key `{other}`: use weight, weight_device, \
                     device_read_bps, device_write_bps, device_read_iops, device_write_iops"
                ),
            ),
        }
    }
    Some(b)
}

fn rates(l: Vec<(String, i64)>) -> Vec<DeviceRate> {
    l.into_iter()
        .map(|(path, rate)| DeviceRate { path, rate })
        .collect()
}

/// A list of `{path: /dev/sda, FIELD: value}`.
fn per_device(
    ctx: &mut Ctx,
    v: &Node,
    p: &str,
    field: &str,
    value: impl Fn(&mut Ctx, &Node, &str) -> Option<i64>,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let (Some(path), Some(val)) = (it.get("path"), it.get(field)) else {
            ctx.err(
                it.pos,
                &ip,
                format!("write {{path: /dev/sda, {field}: ...}}"),
            );
            continue;
        };
        let Some(path) = ctx.scalar(path, &format!("{ip}.path"), "a device path") else {
            continue;
        };
        if !path.starts_with('/') {
            ctx.err(
                it.pos,
                &ip,
                format!("device path {path:?} must be absolute"),
            );
            continue;
        }
        if let Some(n) = value(ctx, val, &format!("{ip}.{field}")) {
            out.push((path, n));
        }
    }
    out
}

fn volumes_from(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = list(ctx, v, p);
    for e in &items {
        let parts: Vec<&str> = e.split(':').collect();
        let mode = match parts.as_slice() {
            [s] => Some((*s, "rw")),
            ["container", c] => Some((*c, "rw")),
            ["container", c, m] => Some((*c, *m)),
            [s, m] if *s != "container" => Some((*s, *m)),
            _ => None,
        };
        if !mode.is_some_and(|(name, m)| !name.is_empty() && (m == "ro" || m == "rw")) {
            ctx.err(
                v.pos,
                p,
                format!(
                    "invalid volumes_from {e:?}: write \"SERVICE[:ro|rw]\" or \
                     \"container:NAME[:ro|rw]\""
                ),
            );
        }
    }
    items
}

fn expose(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = list(ctx, v, p);
    for e in &items {
        let (range, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        if port_range(range).is_none() || !["tcp", "udp", "sctp"].contains(&proto) {
            ctx.err(
                v.pos,
                p,
                format!(
                    "invalid exposed port {e:?}: write a port or range 1-65535 with an optional \
                     /tcp, /udp or /sctp (\"8080\", \"9000-9010/udp\")"
                ),
            );
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, Project, load_str};
    use std::collections::BTreeSet;
    use std::path::Path;

    fn load(src: &str) -> Result<Project, String> {
        let opts = LoadOptions {
            project_name: Some("t".into()),
            ..LoadOptions::default()
        };
        load_str(src, Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
    }

    fn spec_keys() -> BTreeSet<String> {
        let f = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/compose/spec-service-keys.txt"
        );
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_spec_service_key_is_applied_or_refused_once() {
        let keys = spec_keys();
        assert_eq!(keys.len(), 93);
        let applied: BTreeSet<String> = APPLIED_KEYS.iter().map(|k| k.to_string()).collect();
        let refused: BTreeSet<String> = REFUSED_KEYS.iter().map(|(k, _)| k.to_string()).collect();
        assert!(
            applied.is_disjoint(&refused),
            "{:?}",
            applied.intersection(&refused)
        );
        let handled: BTreeSet<String> = applied.union(&refused).cloned().collect();
        assert_eq!(
            keys.difference(&handled).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "spec keys neither applied nor refused"
        );
        assert_eq!(
            handled.difference(&keys).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "keys osmen lists that the spec does not have"
        );
    }

    /// The fixture is the schema's list: regenerate it with
    /// `jq -r '."$defs".service.properties|keys[]' compose-spec.json` when the schema moves.
    #[test]
    fn spec_key_fixture_matches_the_schema_beside_the_project() {
        let schema = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/reference/compose-spec.json"
        );
        let Ok(text) = std::fs::read_to_string(schema) else {
            eprintln!("skipped: no {schema}");
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let from_schema: BTreeSet<String> = v["$defs"]["service"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(from_schema, spec_keys());
    }

    #[test]
    fn every_refused_key_is_refused_at_load_with_line_and_reason() {
        for (key, why) in REFUSED_KEYS {
            let src = format!("services:\n  a:\n    image: i\n    {key}: x\n");
            let err = load(&src).unwrap_err();
            assert!(
                err.contains(&format!(
                    "/x/compose.yml:4:5: services.a.{key}: service key `{key}` is refused: {why}"
                )),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn every_applied_key_is_known_to_the_parser() {
        // A key the parser did not know would be reported as unknown.
        for key in APPLIED_KEYS {
            let src = format!("services:\n  a:\n    image: i\n    {key}: 7\n");
            if let Err(e) = load(&src) {
                assert!(!e.contains("unknown service key"), "{key}: {e}");
            }
        }
    }

    const ALL: &str = "name: t\nservices:\n  db: {image: i}\n  a:\n    image: i\n    \
        cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    privileged: false\n    read_only: true\n    \
        security_opt: ['no-new-privileges:true']\n    tmpfs: /run\n    shm_size: 128m\n    \
        ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}\n    \
        sysctls: ['net.core.somaxconn=1024']\n    devices: ['/dev/null:/dev/xnull:rw']\n    \
        extra_hosts: ['one:10.0.0.1', 'two=10.0.0.2', 'six=[::1]']\n    dns: 8.8.8.8\n    \
        dns_search: [example.com]\n    dns_opt: [ndots:2]\n    hostname: h\n    domainname: d.x\n    \
        tty: true\n    stdin_open: true\n    ipc: shareable\n    pid: host\n    expose: ['80', '9000-9001/udp']\n    \
        group_add: ['100']\n    oom_score_adj: -500\n    oom_kill_disable: true\n    cpu_shares: 512\n    \
        cpu_period: 100ms\n    cpu_quota: 50000\n    cpuset: '0'\n    mem_swappiness: 10\n    \
        memswap_limit: 1g\n    pids_limit: 100\n    links: ['db:database']\n    scale: 1\n";

    #[test]
    fn settings_are_read_as_compose_writes_them() {
        let p = load(ALL).unwrap();
        let a = &p.services["a"];
        let st = &a.settings;
        assert_eq!(st.cap_drop, ["ALL"]);
        assert_eq!(st.read_only, Some(true));
        assert_eq!(st.tmpfs, ["/run"]);
        assert_eq!(st.shm_size, Some(128 << 20));
        assert_eq!(
            st.ulimits["nproc"],
            Ulimit {
                soft: 65535,
                hard: 65535
            }
        );
        assert_eq!(
            st.ulimits["nofile"],
            Ulimit {
                soft: 1024,
                hard: 2048
            }
        );
        assert_eq!(st.sysctls["net.core.somaxconn"], "1024");
        assert_eq!(st.devices[0].target, "/dev/xnull");
        assert_eq!(st.devices[0].permissions, "rw");
        assert_eq!(st.extra_hosts, ["one:10.0.0.1", "two:10.0.0.2", "six:::1"]);
        assert_eq!(st.dns, ["8.8.8.8"]);
        assert_eq!(st.cpu_period, Some(100_000));
        assert_eq!(st.memswap_limit, Some(1 << 30));
        assert_eq!(st.exposed_ports(), ["80/tcp", "9000/udp", "9001/udp"]);
        // links make the linked service a dependency, started first.
        assert!(a.depends_on.contains_key("db"));
    }

    #[test]
    fn map_forms_of_extra_hosts_and_sysctls() {
        let p = load(
            "services:\n  a:\n    image: i\n    extra_hosts: {one: 10.0.0.1, gw: host-gateway}\n    \
             sysctls: {net.ipv4.ip_forward: 1}\n",
        )
        .unwrap();
        let st = &p.services["a"].settings;
        assert_eq!(st.extra_hosts, ["one:10.0.0.1", "gw:host-gateway"]);
        assert_eq!(st.sysctls["net.ipv4.ip_forward"], "1");
    }

    #[test]
    fn bad_values_name_file_line_key_and_value() {
        let cases = [
            (
                "ulimits: {nofile: {soft: 10, hard: 5}}",
                "4:23: services.a.ulimits.nofile: soft limit 10 is above the hard limit 5",
            ),
            (
                "ulimits: {nofile: {soft: 10}}",
                "services.a.ulimits.nofile: a ulimit mapping needs `soft` and `hard`",
            ),
            (
                "extra_hosts: ['nohost']",
                "4:19: services.a.extra_hosts[0]: invalid extra host \"nohost\"",
            ),
            (
                "extra_hosts: ['db:not-an-ip']",
                "the address must be an IP or host-gateway",
            ),
            (
                "oom_score_adj: 5000",
                "services.a.oom_score_adj: 5000 is out of range: use a number between -1000 and 1000",
            ),
            (
                "mem_swappiness: x",
                "services.a.mem_swappiness: expected a whole number, found \"x\"",
            ),
            (
                "network_mode: 'service:'",
                "services.a.network_mode: invalid mode \"service:\"",
            ),
            (
                "pid: private",
                "services.a.pid: invalid mode \"private\": use host, service:NAME, container:NAME",
            ),
            (
                "cap_drop: ALL",
                "services.a.cap_drop: expected a list, found the string \"ALL\"",
            ),
            (
                "tmpfs: run",
                "invalid tmpfs \"run\": the container path must be absolute",
            ),
            (
                "devices: ['/dev/x:/dev/y:rwz']",
                "invalid device /dev/x:/dev/y:rwz",
            ),
            ("devices: ['nvidia.com/gpu=all']", "is a CDI device name"),
            ("expose: ['http']", "invalid exposed port \"http\""),
            ("cpuset: 'a-b'", "invalid cpuset \"a-b\""),
            (
                "cpu_period: soon",
                "invalid value \"soon\": write microseconds",
            ),
            (
                "memswap_limit: lots",
                "services.a.memswap_limit: invalid size \"lots\"",
            ),
            ("mac_address: 02:42", "invalid MAC address \"02:42\""),
            (
                "network_mode: 'service:nope'",
                "services.a.network_mode: unknown service `nope`",
            ),
            ("links: [nope]", "services.a.links: unknown service `nope`"),
            (
                "volumes_from: ['nope:ro']",
                "services.a.volumes_from: unknown service `nope`",
            ),
            ("volumes_from: ['db:rx']", "invalid volumes_from \"db:rx\""),
            (
                "blkio_config: {weight: 5}",
                "services.a.blkio_config.weight: 5 is out of range: use a number between 10 and 1000",
            ),
            (
                "blkio_config: {device_read_bps: [{path: /dev/sda}]}",
                "services.a.blkio_config.device_read_bps[0]: write {path: /dev/sda, rate: ...}",
            ),
            (
                "blkio_config: {wieght: 5}",
                "unknown blkio_config key `wieght`",
            ),
            (
                "network_mode: host\n    networks: [default]",
                "network_mode \"host\" and networks cannot be combined",
            ),
            (
                "network_mode: host\n    ports: ['80:80']",
                "5:12: services.a.ports: ports cannot be published with network_mode \"host\"",
            ),
            (
                "scale: 2\n    deploy: {replicas: 3}",
                "services.a.scale: can't set distinct values on 'scale' and 'deploy.replicas' (scale is 2, deploy.replicas is 3)",
            ),
        ];
        for (body, want) in cases {
            let src = format!("services:\n  a:\n    image: i\n    {body}\n");
            let err = load(&src).unwrap_err();
            assert!(err.contains(want), "{body}\n  want: {want}\n  got: {err}");
            assert!(err.starts_with("/x/compose.yml:"), "{err}");
        }
    }

    #[test]
    fn scale_sets_the_replicas() {
        let p = load("services:\n  a:\n    image: i\n    scale: 3\n").unwrap();
        assert_eq!(p.services["a"].replicas, 3);
    }

    #[test]
    fn set_keys_names_what_is_set() {
        let p = load(ALL).unwrap();
        let keys = p.services["a"].settings.set_keys();
        assert!(
            keys.contains(&"cap_drop") && keys.contains(&"links"),
            "{keys:?}"
        );
        assert!(!keys.contains(&"runtime"));
        assert!(p.services["db"].settings.set_keys().is_empty());
    }
}
