//! The project's objects beside its services: top-level `networks:`, `volumes:`,
//! `secrets:` and `configs:`, and how a service joins or is granted them (`networks:` long
//! form, `secrets:`, `configs:`). Each key is read with its position; what cannot work on
//! one engine without Swarm (external secrets, secret drivers) is refused with the reason.

use std::collections::BTreeMap;

use super::parse::{Ctx, seq_or_err};
use super::yaml::{Kind, Node};
use super::{
    FileGrant, FileObject, Ipam, IpamPool, NetworkDef, Project, ServiceNetwork, VolumeDef,
};

/// Which kind of top-level file object a section holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Secret,
    Config,
}

impl FileKind {
    fn section(self) -> &'static str {
        match self {
            FileKind::Secret => "secrets",
            FileKind::Config => "configs",
        }
    }

    fn word(self) -> &'static str {
        match self {
            FileKind::Secret => "secret",
            FileKind::Config => "config",
        }
    }

    /// Where a grant lands when its target is empty or relative, as Compose resolves it.
    pub fn target(self, source: &str, target: Option<&str>) -> String {
        let base = match self {
            FileKind::Secret => "/run/secrets/",
            FileKind::Config => "/",
        };
        match target {
            Some(t) if t.starts_with('/') => t.to_string(),
            Some(t) if !t.is_empty() => format!("{base}{t}"),
            _ => format!("{base}{source}"),
        }
    }
}

/// A top-level object's `name:` and `external:` (both forms), shared by every section.
struct Identity {
    name: String,
    named: bool,
    external: bool,
}

impl Identity {
    /// True when `bkey` was one of the identity keys.
    fn read(&mut self, ctx: &mut Ctx, bkey: &str, bv: &Node, p: &str) -> bool {
        match bkey {
            "name" => {
                if let Some(n) = ctx.scalar(bv, p, "a name") {
                    self.name = n;
                    self.named = true;
                }
            }
            // `external: true`, or the legacy `external: {name: x}` (Compose still reads
            // it: the engine object is `x`).
            "external" => match &bv.kind {
                Kind::Map(_) => {
                    self.external = true;
                    match bv.get("name").and_then(|n| n.as_str()) {
                        Some(n) if !n.is_empty() => {
                            self.name = n.to_string();
                            self.named = true;
                        }
                        _ => ctx.err(
                            bv.pos,
                            p,
                            "the legacy form is `external: {name: NAME}`; or write \
                             `external: true` with `name: NAME` beside it",
                        ),
                    }
                }
                _ => self.external = ctx.boolean(bv, p).unwrap_or(false),
            },
            _ => return false,
        }
        true
    }

    fn finish(mut self, key: &str) -> (String, bool) {
        if self.external && !self.named {
            // `external: true` without `name:` names the engine object by the key itself.
            self.name = key.to_string();
        }
        (self.name, self.external)
    }
}

/// The body of each entry of a top-level section, with its key and path.
fn entries<'n>(
    ctx: &mut Ctx,
    node: Option<&'n Node>,
    section: &str,
) -> Vec<(String, String, &'n Node, super::yaml::Pos)> {
    let Some(node) = node else { return Vec::new() };
    let Some(m) = ctx.map(node, section) else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(k, v)| {
            let key = ctx.scalar(k, section, "a name")?;
            let path = format!("{section}.{key}");
            Some((key, path, v, k.pos))
        })
        .collect()
}

/// Top-level `networks:`, every option applied at creation by `engine::ensure_network`.
pub(super) fn parse_networks(
    ctx: &mut Ctx,
    node: Option<&Node>,
    project: &str,
) -> BTreeMap<String, NetworkDef> {
    let mut out = BTreeMap::new();
    for (key, path, v, _) in entries(ctx, node, "networks") {
        let mut id = Identity {
            name: format!("{project}_{key}"),
            named: false,
            external: false,
        };
        let mut def = NetworkDef::default();
        for (bk, bv) in ctx.map(v, &path).unwrap_or(&[]) {
            let bkey = bk.as_str().unwrap_or("");
            let p = format!("{path}.{bkey}");
            if id.read(ctx, bkey, bv, &p) {
                continue;
            }
            match bkey {
                "driver" => def.driver = ctx.scalar(bv, &p, "a driver name"),
                "driver_opts" => def.driver_opts = ctx.kv(bv, &p, false),
                "labels" => def.labels = ctx.kv(bv, &p, false),
                "internal" => def.internal = ctx.boolean(bv, &p).unwrap_or(false),
                "attachable" => def.attachable = ctx.boolean(bv, &p).unwrap_or(false),
                "enable_ipv6" => def.enable_ipv6 = ctx.boolean(bv, &p).unwrap_or(false),
                "ipam" => def.ipam = parse_ipam(ctx, bv, &p),
                "enable_ipv4" => ctx.err(
                    bk.pos,
                    &p,
                    "`enable_ipv4` needs Engine API 1.47 (Docker 28); osmen speaks to older \
                     engines too and would create an IPv4 network anyway: remove it, or create \
                     the network yourself and mark it `external: true`",
                ),
                other if other.starts_with("x-") => {}
                other => ctx.err(bk.pos, &p, format!("unknown key `{other}` in networks")),
            }
        }
        let (name, external) = id.finish(&key);
        let set = [
            ("driver", def.driver.is_some()),
            ("driver_opts", !def.driver_opts.is_empty()),
            ("ipam", def.ipam.is_some()),
            ("labels", !def.labels.is_empty()),
            ("internal", def.internal),
            ("attachable", def.attachable),
            ("enable_ipv6", def.enable_ipv6),
        ];
        conflicts_with_external(ctx, v, &path, external, &set);
        def.name = name;
        def.external = external;
        out.insert(key, def);
    }
    out
}

/// An external object is used as it is: options beside `external: true` would be
/// silently unused, and compose-go refuses them ("conflicting parameters").
fn conflicts_with_external(
    ctx: &mut Ctx,
    v: &Node,
    path: &str,
    external: bool,
    set: &[(&str, bool)],
) {
    if !external {
        return;
    }
    for (key, on) in set {
        if *on {
            let pos = v.get(key).map_or(v.pos, |n| n.pos);
            ctx.err(
                pos,
                &format!("{path}.{key}"),
                format!(
                    "conflicting parameters `external` and `{key}`: an external object is                      used as it exists, so `{key}` would not apply; remove one of them"
                ),
            );
        }
    }
}

fn parse_ipam(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Ipam> {
    let mut ipam = Ipam::default();
    for (k, v) in ctx.map(node, path)? {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            "driver" => ipam.driver = ctx.scalar(v, &p, "an IPAM driver name"),
            "options" => ipam.options = ctx.kv(v, &p, false),
            "config" => {
                for (i, it) in seq_or_err(ctx, v, &p).unwrap_or(&[]).iter().enumerate() {
                    if let Some(pool) = parse_pool(ctx, it, &format!("{p}[{i}]")) {
                        ipam.config.push(pool);
                    }
                }
            }
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &p,
                format!("unknown ipam key `{other}`; allowed: driver, config, options"),
            ),
        }
    }
    Some(ipam)
}

fn parse_pool(ctx: &mut Ctx, node: &Node, path: &str) -> Option<IpamPool> {
    let mut pool = IpamPool::default();
    for (k, v) in ctx.map(node, path)? {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        let cidr = |ctx: &mut Ctx, what: &str| {
            let s = ctx.scalar(v, &p, what)?;
            let ok = match s.split_once('/') {
                Some((ip, bits)) => {
                    ip.parse::<std::net::IpAddr>().is_ok() && bits.parse::<u8>().is_ok()
                }
                None => false,
            };
            if !ok {
                ctx.err(
                    v.pos,
                    &p,
                    format!("{s:?} is not a CIDR block: write it as 172.28.0.0/16"),
                );
            }
            Some(s)
        };
        match key {
            "subnet" => pool.subnet = cidr(ctx, "a subnet such as 172.28.0.0/16"),
            "ip_range" => pool.ip_range = cidr(ctx, "a range such as 172.28.5.0/24"),
            "gateway" => pool.gateway = ip(ctx, v, &p),
            "aux_addresses" => {
                pool.aux_addresses = ctx.kv(v, &p, false);
                for (name, addr) in &pool.aux_addresses {
                    if addr.parse::<std::net::IpAddr>().is_err() {
                        ctx.err(
                            v.pos,
                            &format!("{p}.{name}"),
                            format!("{addr:?} is not an IP address"),
                        );
                    }
                }
            }
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &p,
                format!(
                    "unknown ipam config key `{other}`; allowed: subnet, ip_range, gateway, \
                     aux_addresses"
                ),
            ),
        }
    }
    Some(pool)
}

fn ip(ctx: &mut Ctx, v: &Node, p: &str) -> Option<String> {
    let s = ctx.scalar(v, p, "an IP address")?;
    if s.parse::<std::net::IpAddr>().is_err() {
        ctx.err(v.pos, p, format!("{s:?} is not an IP address"));
        return None;
    }
    Some(s)
}

/// Top-level `volumes:`, every option applied at creation by `engine::ensure_volume`.
pub(super) fn parse_volumes(
    ctx: &mut Ctx,
    node: Option<&Node>,
    project: &str,
) -> BTreeMap<String, VolumeDef> {
    let mut out = BTreeMap::new();
    for (key, path, v, _) in entries(ctx, node, "volumes") {
        let mut id = Identity {
            name: format!("{project}_{key}"),
            named: false,
            external: false,
        };
        let mut def = VolumeDef::default();
        for (bk, bv) in ctx.map(v, &path).unwrap_or(&[]) {
            let bkey = bk.as_str().unwrap_or("");
            let p = format!("{path}.{bkey}");
            if id.read(ctx, bkey, bv, &p) {
                continue;
            }
            match bkey {
                "driver" => def.driver = ctx.scalar(bv, &p, "a driver name"),
                "driver_opts" => def.driver_opts = ctx.kv(bv, &p, false),
                "labels" => def.labels = ctx.kv(bv, &p, false),
                other if other.starts_with("x-") => {}
                other => ctx.err(bk.pos, &p, format!("unknown key `{other}` in volumes")),
            }
        }
        let (name, external) = id.finish(&key);
        let set = [
            ("driver", def.driver.is_some()),
            ("driver_opts", !def.driver_opts.is_empty()),
            ("labels", !def.labels.is_empty()),
        ];
        conflicts_with_external(ctx, v, &path, external, &set);
        def.name = name;
        def.external = external;
        out.insert(key, def);
    }
    out
}

/// Top-level `secrets:` or `configs:`: exactly one source each, a file that exists, a
/// variable that is set.
pub(super) fn parse_file_objects(
    ctx: &mut Ctx,
    node: Option<&Node>,
    kind: FileKind,
    project: &str,
) -> BTreeMap<String, FileObject> {
    let mut out = BTreeMap::new();
    let section = kind.section();
    for (key, path, v, kpos) in entries(ctx, node, section) {
        let mut id = Identity {
            name: format!("{project}_{key}"),
            named: false,
            external: false,
        };
        let mut obj = FileObject::default();
        let mut sources = Vec::new();
        for (bk, bv) in ctx.map(v, &path).unwrap_or(&[]) {
            let bkey = bk.as_str().unwrap_or("");
            let p = format!("{path}.{bkey}");
            if id.read(ctx, bkey, bv, &p) {
                if bkey == "external" && id.external {
                    ctx.err(
                        bk.pos,
                        &p,
                        format!(
                            "an external {w} lives in a Swarm's store, and osmen runs on one \
                             engine without Swarm: there is nothing to mount (docker compose \
                             fails at `up` with \"unsupported external secret\"). Give the \
                             {w} a `file:` or `environment:` instead",
                            w = kind.word()
                        ),
                    );
                }
                continue;
            }
            read_source(ctx, kind, bkey, bv, &p, &mut obj, &mut sources);
        }
        let (name, _) = id.finish(&key);
        obj.name = name;
        if sources.len() != 1 && !id_external(v) {
            let allowed = match kind {
                FileKind::Secret => "`file:` or `environment:`",
                FileKind::Config => "`file:`, `environment:` or `content:`",
            };
            ctx.err(
                kpos,
                &path,
                format!(
                    "a {} takes exactly one source, {allowed}; found {}",
                    kind.word(),
                    if sources.is_empty() {
                        "none".to_string()
                    } else {
                        sources.join(" and ")
                    }
                ),
            );
        }
        out.insert(key, obj);
    }
    out
}

fn id_external(v: &Node) -> bool {
    v.get("external").is_some()
}

/// One key of a secret's or config's body other than `name`/`external`.
fn read_source(
    ctx: &mut Ctx,
    kind: FileKind,
    bkey: &str,
    bv: &Node,
    p: &str,
    obj: &mut FileObject,
    sources: &mut Vec<String>,
) {
    match bkey {
        "file" => {
            sources.push("file".into());
            let Some(f) = ctx.scalar(bv, p, "a file path") else {
                return;
            };
            let path = ctx.dir_of(bv.pos).join(&f);
            let abs = std::path::absolute(&path).unwrap_or(path);
            if !abs.is_file() {
                ctx.err(
                    bv.pos,
                    p,
                    format!(
                        "{} file {f:?} does not exist (looked at {}): create it, or fix the \
                         path (relative to the compose file's directory)",
                        kind.word(),
                        abs.display()
                    ),
                );
            }
            obj.file = Some(abs);
        }
        "environment" => {
            sources.push("environment".into());
            let Some(var) = ctx.scalar(bv, p, "a variable name") else {
                return;
            };
            match ctx.vars.get(&var) {
                Some(val) => obj.value = Some(val.clone()),
                None => ctx.err(
                    bv.pos,
                    p,
                    format!(
                        "environment variable {var:?} is not set: set it in the environment \
                         or in the project's .env file"
                    ),
                ),
            }
            obj.environment = Some(var);
        }
        "content" if kind == FileKind::Config => {
            sources.push("content".into());
            obj.content = ctx.scalar(bv, p, "the config's text");
        }
        "labels" | "driver" | "driver_opts" | "template_driver" => ctx.err(
            bv.pos,
            p,
            format!(
                "`{bkey}` of a {} is a Swarm setting (the store's object); without Swarm it \
                 means nothing and docker compose refuses it too: remove it",
                kind.word()
            ),
        ),
        other if other.starts_with("x-") => {}
        other => ctx.err(
            bv.pos,
            p,
            format!("unknown key `{other}` in {}", kind.section()),
        ),
    }
}

/// A service's `secrets:` or `configs:`: names, or `{source, target, uid, gid, mode}`.
pub(super) fn parse_grants(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    kind: FileKind,
) -> Vec<FileGrant> {
    let mut out = Vec::new();
    for (i, it) in seq_or_err(ctx, node, path)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let ip = format!("{path}[{i}]");
        if let Kind::Scalar { value, .. } = &it.kind {
            out.push(FileGrant {
                source: value.clone(),
                target: kind.target(value, None),
                uid: None,
                gid: None,
                mode: None,
            });
            continue;
        }
        if let Some(g) = parse_long_grant(ctx, it, &ip, kind) {
            out.push(g);
        }
    }
    out
}

fn parse_long_grant(ctx: &mut Ctx, node: &Node, path: &str, kind: FileKind) -> Option<FileGrant> {
    let (mut source, mut target) = (None, None);
    let (mut uid, mut gid, mut mode) = (None, None, None);
    for (k, v) in ctx.map(node, path)? {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            "source" => source = ctx.scalar(v, &p, "a name"),
            "target" => target = ctx.scalar(v, &p, "a path"),
            "uid" => uid = ctx.uint(v, &p),
            "gid" => gid = ctx.uint(v, &p),
            "mode" => mode = file_mode(ctx, v, &p),
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &p,
                format!("unknown key `{other}`; allowed: source, target, uid, gid, mode"),
            ),
        }
    }
    let Some(source) = source else {
        ctx.err(
            node.pos,
            path,
            format!("`source:` is required: the {} to grant", kind.word()),
        );
        return None;
    };
    Some(FileGrant {
        target: kind.target(&source, target.as_deref()),
        source,
        uid,
        gid,
        mode,
    })
}

/// `0440` and `0o440` are octal (as YAML 1.1 and compose-go read them); `288` is decimal.
fn file_mode(ctx: &mut Ctx, v: &Node, p: &str) -> Option<u32> {
    let s = ctx.scalar(v, p, "a file mode such as 0440")?;
    let parsed = match s.strip_prefix("0o").or_else(|| s.strip_prefix('0')) {
        Some(oct) if !oct.is_empty() => u32::from_str_radix(oct, 8),
        _ => s.parse::<u32>(),
    };
    match parsed {
        Ok(m) if m <= 0o7777 => Some(m),
        _ => {
            ctx.err(
                v.pos,
                p,
                format!("invalid file mode {s:?}: write permission bits in octal, such as 0440"),
            );
            None
        }
    }
}

/// Service `networks:`: a list of names, or a mapping with each attachment's settings.
pub(super) fn parse_service_networks(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> BTreeMap<String, ServiceNetwork> {
    let mut out = BTreeMap::new();
    match &node.kind {
        Kind::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                if let Some(n) = ctx.scalar(it, &format!("{path}[{i}]"), "a network name") {
                    out.insert(n, ServiceNetwork::default());
                }
            }
        }
        Kind::Map(m) => {
            for (k, v) in m {
                let Some(n) = ctx.scalar(k, path, "a network name") else {
                    continue;
                };
                let np = format!("{path}.{n}");
                let att = parse_attachment(ctx, v, &np);
                out.insert(n, att);
            }
        }
        _ => ctx.err(node.pos, path, "expected a list or mapping of networks"),
    }
    out
}

fn parse_attachment(ctx: &mut Ctx, node: &Node, path: &str) -> ServiceNetwork {
    let mut att = ServiceNetwork::default();
    for (k, v) in ctx.map(node, path).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            // A plain string is refused, as docker-compose 1.29 refuses it.
            "aliases" => match v.as_str() {
                Some(a) => ctx.err(
                    v.pos,
                    &p,
                    format!("aliases must be a list, found {a:?}: write `aliases: [{a:?}]`"),
                ),
                None => att.aliases = ctx.string_list(v, &p),
            },
            "ipv4_address" => att.ipv4_address = ip(ctx, v, &p),
            "ipv6_address" => att.ipv6_address = ip(ctx, v, &p),
            "link_local_ips" => {
                att.link_local_ips = ctx.string_list(v, &p);
                for a in &att.link_local_ips {
                    if a.parse::<std::net::IpAddr>().is_err() {
                        ctx.err(v.pos, &p, format!("{a:?} is not an IP address"));
                    }
                }
            }
            "mac_address" => att.mac_address = ctx.scalar(v, &p, "a MAC address"),
            "priority" => {
                let s = ctx.scalar(v, &p, "a whole number").unwrap_or_default();
                match s.parse::<i64>() {
                    Ok(n) => att.priority = Some(n),
                    Err(_) => ctx.err(v.pos, &p, format!("expected a whole number, found {s:?}")),
                }
            }
            "driver_opts" => att.driver_opts = ctx.kv(v, &p, false),
            "interface_name" | "gw_priority" => ctx.err(
                k.pos,
                &p,
                format!(
                    "`{key}` of a network attachment is not applied by osmen yet (newer \
                     engines take it); the container would join without it: remove it"
                ),
            ),
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &p,
                format!(
                    "unknown key `{other}`; allowed: aliases, ipv4_address, ipv6_address, \
                     link_local_ips, mac_address, priority, driver_opts"
                ),
            ),
        }
    }
    att
}

/// Every grant names a declared secret or config, and lands where nothing else does.
pub(super) fn validate_grants(ctx: &mut Ctx, project: &Project, root: &Node) {
    let nodes = root.get("services").map(Node::keyed).unwrap_or_default();
    for (name, svc) in &project.services {
        let mut taken: BTreeMap<&str, String> = svc
            .volumes
            .iter()
            .map(|m| (m.target.as_str(), "volumes".to_string()))
            .collect();
        for (section, g) in svc
            .secrets
            .iter()
            .map(|g| ("secrets", g))
            .chain(svc.configs.iter().map(|g| ("configs", g)))
        {
            if let Some(other) = taken.insert(g.target.as_str(), section.to_string()) {
                let pos = nodes
                    .get(name.as_str())
                    .and_then(|s| s.get(section))
                    .map(|n| n.pos)
                    .unwrap_or_default();
                ctx.err(
                    pos,
                    &format!("services.{name}.{section}"),
                    format!(
                        "`{}` would land on {}, where {other} already puts a file: give it                          another `target:`",
                        g.source, g.target
                    ),
                );
            }
        }
        for (kind, grants, defs) in [
            (FileKind::Secret, &svc.secrets, &project.secrets),
            (FileKind::Config, &svc.configs, &project.configs),
        ] {
            let section = kind.section();
            let node = nodes.get(name.as_str()).and_then(|s| s.get(section));
            for (i, g) in grants.iter().enumerate() {
                if defs.contains_key(&g.source) {
                    continue;
                }
                let pos = match node.map(|n| &n.kind) {
                    Some(Kind::Seq(items)) => items.get(i).map(|n| n.pos),
                    _ => None,
                }
                .or(node.map(|n| n.pos))
                .unwrap_or_default();
                let known: Vec<&str> = defs.keys().map(String::as_str).collect();
                ctx.err(
                    pos,
                    &format!("services.{name}.{section}[{i}]"),
                    format!(
                        "{} `{}` is not declared: add it under the top-level `{section}:` key{}",
                        kind.word(),
                        g.source,
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (declared: {})", known.join(", "))
                        }
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
