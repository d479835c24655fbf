//! One service: `parse_service` and the `x-osmen-*` extensions it reads.

use super::*;

/// `x-osmen-probe: redis`, `x-osmen-probe: none`, or `{kind: postgres, port: 5433, every: 10s}`.
pub(super) fn parse_probe(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ProbeSpec> {
    use crate::model::probe::{ProbeKind, kinds_list};
    let kind_of = |ctx: &mut Ctx, n: &Node, p: &str| -> Option<Option<ProbeKind>> {
        let s = ctx.scalar(n, p, "a probe kind")?;
        if s == "none" || s == "off" || s == "false" {
            return Some(None);
        }
        match ProbeKind::parse(&s) {
            Some(k) => Some(Some(k)),
            None => {
                ctx.err(
                    n.pos,
                    p,
                    format!(
                        "unknown probe kind {s:?}: use one of {}, or none",
                        kinds_list()
                    ),
                );
                None
            }
        }
    };
    if let Kind::Map(_) = &node.kind {
        let m = ctx.map(node, path)?;
        let mut spec = ProbeSpec {
            kind: None,
            port: None,
            every: None,
        };
        let mut has_kind = false;
        for (k, v) in m {
            let key = k.as_str().unwrap_or("");
            let p = format!("{path}.{key}");
            match key {
                "kind" => {
                    spec.kind = kind_of(ctx, v, &p)?;
                    has_kind = true;
                }
                "port" => match ctx.uint(v, &p) {
                    Some(n) if (1..=65535).contains(&n) => spec.port = Some(n as u16),
                    Some(n) => ctx.err(v.pos, &p, format!("port {n} is not in 1-65535")),
                    None => {}
                },
                "every" => {
                    spec.every = ctx.duration(v, &p);
                    if spec
                        .every
                        .is_some_and(|d| d < std::time::Duration::from_millis(500))
                    {
                        ctx.err(v.pos, &p, "probe at most twice a second (every >= 500ms)");
                    }
                }
                other => ctx.err(
                    k.pos,
                    &p,
                    format!("unknown key `{other}` of x-osmen-probe: use kind, port, every"),
                ),
            }
        }
        if !has_kind {
            ctx.err(
                node.pos,
                path,
                format!("x-osmen-probe needs `kind` ({})", kinds_list()),
            );
            return None;
        }
        return Some(spec);
    }
    Some(ProbeSpec {
        kind: kind_of(ctx, node, path)?,
        port: None,
        every: None,
    })
}

/// `x-osmen-balance: gateway:8080` or `{service: gateway, port: 8080, listen: 80}`.
pub(super) fn parse_balance(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> Option<crate::stack::compose::Balance> {
    const HINT: &str = "write `x-osmen-balance: gateway:8080` or `{service: gateway, port: \
                        8080, listen: 80}`";
    let port_of = |ctx: &mut Ctx, n: &Node, p: &str| match ctx.uint(n, p) {
        Some(v) if (1..=65535).contains(&v) => Some(v as u16),
        Some(v) => {
            ctx.err(n.pos, p, format!("port {v} is not in 1-65535"));
            None
        }
        None => None,
    };
    if let Kind::Map(_) = &node.kind {
        let m = ctx.map(node, path)?;
        let (mut service, mut port, mut listen) = (None, None, 80u16);
        for (k, v) in m {
            let key = k.as_str().unwrap_or("");
            let p = format!("{path}.{key}");
            match key {
                "service" => service = ctx.scalar(v, &p, "a service name"),
                "port" => port = port_of(ctx, v, &p),
                "listen" => listen = port_of(ctx, v, &p)?,
                other => ctx.err(
                    k.pos,
                    &p,
                    format!("unknown key `{other}` of x-osmen-balance: use service, port, listen"),
                ),
            }
        }
        return match (service, port) {
            (Some(service), Some(port)) => Some(crate::stack::compose::Balance {
                service,
                port,
                listen,
            }),
            _ => {
                ctx.err(
                    node.pos,
                    path,
                    format!("x-osmen-balance needs service and port: {HINT}"),
                );
                None
            }
        };
    }
    let s = ctx.scalar(node, path, "service:port")?;
    match s.rsplit_once(':').map(|(svc, p)| (svc, p.parse::<u16>())) {
        Some((svc, Ok(port))) if !svc.is_empty() && port > 0 => {
            Some(crate::stack::compose::Balance {
                service: svc.to_string(),
                port,
                listen: 80,
            })
        }
        _ => {
            ctx.err(node.pos, path, format!("{s:?} is not service:port; {HINT}"));
            None
        }
    }
}

pub(super) fn parse_service(ctx: &mut Ctx, name: &str, node: &Node) -> Option<Service> {
    let base = format!("services.{name}");
    let m = match &node.kind {
        Kind::Map(m) => m.clone(),
        _ => {
            ctx.err(
                node.pos,
                &base,
                format!(
                    "a service is a mapping of settings, found {}",
                    node.type_name()
                ),
            );
            return None;
        }
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        || name.is_empty()
    {
        ctx.err(
            node.pos,
            &base,
            format!("invalid service name {name:?}: use letters, digits, `_`, `-` and `.`"),
        );
    }
    let mut svc = new_service(name);
    let mut pend = Pending::default();
    for (k, v) in &m {
        let Some(key) = k.as_str().map(str::to_string) else {
            ctx.err(k.pos, &base, "service keys are strings");
            continue;
        };
        let p = format!("{base}.{key}");
        if process_key(ctx, &key, v, &p, &mut svc, &mut pend)
            || resources_key(ctx, &key, v, &p, &mut svc, &mut pend)
            || networking_key(ctx, &key, v, &p, &mut svc)
            || storage_key(ctx, &key, v, &p, &mut svc)
            || lifecycle_key(ctx, &key, v, &p, &mut svc, &mut pend)
        {
            continue;
        }
        match key.as_str() {
            other if other.starts_with("x-") => {}
            // Read with the top-level `models:` it refers to (compose/models.rs).
            "models" => {}
            other
                if crate::stack::compose::settings::parse_key(
                    ctx,
                    other,
                    v,
                    &p,
                    &mut svc.settings,
                ) => {}
            other if crate::stack::compose::settings::refusal(other).is_some() => {
                let why = crate::stack::compose::settings::refusal(other).unwrap_or_default();
                ctx.err(
                    k.pos,
                    &p,
                    format!("service key `{other}` is refused: {why}"),
                );
            }
            other => {
                let hint = did_you_mean(other, crate::stack::compose::settings::APPLIED_KEYS);
                ctx.err(
                    k.pos,
                    &p,
                    format!("unknown service key `{other}`{hint}; see `osmen config --help`"),
                );
            }
        }
    }
    finish(ctx, &mut svc, pend, node, &base);
    Some(svc)
}

/// What a service's keys set besides the service itself, folded in once all are read.
#[derive(Default)]
struct Pending {
    scale: Option<(u32, Pos)>,
    env_files: BTreeMap<String, String>,
    explicit_env: BTreeMap<String, String>,
    label_files: BTreeMap<String, String>,
    explicit_labels: BTreeMap<String, String>,
    restart_set: bool,
}

/// A service with every key at its default, before its keys are read.
fn new_service(name: &str) -> Service {
    Service {
        name: name.to_string(),
        image: None,
        build: None,
        command: None,
        entrypoint: None,
        environment: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        networks: BTreeMap::new(),
        secrets: Vec::new(),
        configs: Vec::new(),
        depends_on: BTreeMap::new(),
        healthcheck: None,
        post_start: Vec::new(),
        pre_stop: Vec::new(),
        env_unset: Vec::new(),
        restart: Restart::No,
        resources: Resources::default(),
        replicas: 1,
        profiles: Vec::new(),
        labels: BTreeMap::new(),
        container_name: None,
        logging: None,
        stop_grace_period: None,
        stop_signal: None,
        working_dir: None,
        user: None,
        init: None,
        pull_policy: None,
        probe: None,
        balance: None,
        placement: Vec::new(),
        deploy: Default::default(),
        settings: ContainerSettings::default(),
        models: None,
    }
}

/// The process: image, build, command, environment and labels, user, pull policy. False when `key` is not one of them.
fn process_key(
    ctx: &mut Ctx,
    key: &str,
    v: &Node,
    p: &str,
    svc: &mut Service,
    pend: &mut Pending,
) -> bool {
    match key {
        "image" => svc.image = ctx.scalar(v, p, "an image reference"),
        "build" => svc.build = parse_build(ctx, v, p),
        "command" => svc.command = ctx.words(v, p),
        "entrypoint" => svc.entrypoint = ctx.words(v, p),
        "environment" => {
            pend.explicit_env = ctx.kv(v, p, true);
            svc.env_unset = unset_names(ctx, v);
        }
        "env_file" => pend.env_files = parse_env_files(ctx, v, p),
        "profiles" => svc.profiles = ctx.string_list(v, p),
        "labels" => pend.explicit_labels = ctx.kv(v, p, false),
        "label_file" => pend.label_files = parse_env_files(ctx, v, p),
        "container_name" => svc.container_name = ctx.scalar(v, p, "a container name"),
        "working_dir" => svc.working_dir = ctx.scalar(v, p, "a path"),
        "user" => svc.user = ctx.scalar(v, p, "a user"),
        "init" => svc.init = ctx.boolean(v, p),
        "pull_policy" => {
            if let Some(pp) = ctx.scalar(v, p, "a pull policy") {
                match crate::stack::image::PullPolicy::parse(&pp) {
                    Ok(_) => svc.pull_policy = Some(pp),
                    Err(m) => ctx.err(v.pos, p, m.to_string()),
                }
            }
        }
        _ => return false,
    }
    true
}

/// Resources and replicas: deploy, cpus, memory, gpus, scale. False when `key` is not one of them.
fn resources_key(
    ctx: &mut Ctx,
    key: &str,
    v: &Node,
    p: &str,
    svc: &mut Service,
    pend: &mut Pending,
) -> bool {
    match key {
        "deploy" => parse_deploy(ctx, v, p, svc, pend.restart_set),
        "cpus" => {
            svc.resources.cpus = ctx.cpus(v, p);
            svc.resources.cpus_service_level = true;
        }
        "mem_limit" => {
            svc.resources.memory = ctx.bytes(v, p);
            svc.resources.memory_service_level = true;
        }
        "mem_reservation" => svc.resources.memory_reservation = ctx.bytes(v, p),
        "gpus" => {
            if let Some(g) = parse_gpus_short(ctx, v, p) {
                svc.resources.gpus.push(g);
            }
        }
        "scale" => pend.scale = ctx.uint(v, p).map(|n| (n, v.pos)),
        _ => return false,
    }
    true
}

/// Networking: ports, networks, and the probe and balancer extensions. False when `key` is not one of them.
fn networking_key(ctx: &mut Ctx, key: &str, v: &Node, p: &str, svc: &mut Service) -> bool {
    match key {
        "ports" if v.as_str().is_some() => {
            let at = v.pos;
            let v = v.as_str().unwrap_or_default();
            let fix = if v.contains(':') {
                format!("`ports: [{v:?}]`")
            } else {
                format!(
                    "`ports: [\"{v}:80\"]` to publish host port {v} on the container's \
                     port 80 (HOST:CONTAINER), or `ports: [\"{v}\"]` for container port {v}"
                )
            };
            ctx.err(
                at,
                p,
                format!("ports takes a list, found {v:?}: write {fix}"),
            );
        }
        "ports" => {
            if let Some(items) = seq_or_err(ctx, v, p) {
                for (i, it) in items.iter().enumerate() {
                    svc.ports.extend(
                        crate::stack::compose::ports::parse_port(ctx, it, &format!("{p}[{i}]"))
                            .unwrap_or_default(),
                    );
                }
            }
        }
        "networks" => svc.networks = objects::parse_service_networks(ctx, v, p),
        "x-osmen-probe" => svc.probe = parse_probe(ctx, v, p),
        "x-osmen-balance" => svc.balance = parse_balance(ctx, v, p),
        _ => return false,
    }
    true
}

/// Storage: volumes, secrets, configs. False when `key` is not one of them.
fn storage_key(ctx: &mut Ctx, key: &str, v: &Node, p: &str, svc: &mut Service) -> bool {
    match key {
        "volumes" => {
            if let Some(items) = seq_or_err(ctx, v, p) {
                for (i, it) in items.iter().enumerate() {
                    if let Some(mnt) = parse_mount(ctx, it, &format!("{p}[{i}]")) {
                        svc.volumes.push(mnt);
                    }
                }
            }
        }
        "secrets" => svc.secrets = objects::parse_grants(ctx, v, p, FileKind::Secret),
        "configs" => svc.configs = objects::parse_grants(ctx, v, p, FileKind::Config),
        _ => return false,
    }
    true
}

/// Lifecycle: dependencies, health, restart, hooks, stopping, logging, isolation. False when `key` is not one of them.
fn lifecycle_key(
    ctx: &mut Ctx,
    key: &str,
    v: &Node,
    p: &str,
    svc: &mut Service,
    pend: &mut Pending,
) -> bool {
    match key {
        "depends_on" => svc.depends_on = parse_depends(ctx, v, p),
        "healthcheck" => svc.healthcheck = parse_healthcheck(ctx, v, p),
        "restart" => {
            pend.restart_set = true;
            if let Some(r) = parse_restart(ctx, v, p) {
                svc.restart = r;
            }
        }
        "post_start" => svc.post_start = crate::stack::compose::hooks::parse(ctx, v, p),
        "pre_stop" => svc.pre_stop = crate::stack::compose::hooks::parse(ctx, v, p),
        "stop_grace_period" => svc.stop_grace_period = ctx.duration(v, p),
        "stop_signal" => svc.stop_signal = ctx.scalar(v, p, "a signal name"),
        "logging" => svc.logging = parse_logging(ctx, v, p),
        // A Linux engine has one isolation, `default`; the others are Windows'.
        "isolation" => match ctx.scalar(v, p, "an isolation") {
            Some(i) if i == "default" => {}
            Some(i) => ctx.err(
                v.pos,
                p,
                format!(
                    "isolation {i:?} exists for Windows containers only (process, hyperv); \
                     a Linux engine has `default`: remove the key"
                ),
            ),
            None => {}
        },
        _ => return false,
    }
    true
}

/// Folds what the keys left pending into the service: env files under the explicit
/// environment, label files under labels, and `scale` against `deploy.replicas`.
fn finish(ctx: &mut Ctx, svc: &mut Service, pend: Pending, node: &Node, base: &str) {
    svc.environment = pend.env_files;
    svc.environment.extend(pend.explicit_env);
    // A bare name the environment does not set reaches the engine bare, which unsets it
    // in the container (docker-compose 1.29 passes it so): the image's value is gone.
    let env = &svc.environment;
    svc.env_unset.retain(|n| !env.contains_key(n));
    svc.labels = pend.label_files;
    svc.labels.extend(pend.explicit_labels);
    if let Some((n, pos)) = pend.scale {
        let replicas_set = node.get("deploy").and_then(|d| d.get("replicas")).is_some();
        if replicas_set && svc.replicas != n {
            ctx.err(
                pos,
                &format!("{base}.scale"),
                format!(
                    "can't set distinct values on 'scale' and 'deploy.replicas' (scale is \
                     {n}, deploy.replicas is {}): set one of them",
                    svc.replicas
                ),
            );
        }
        svc.replicas = n;
    }
}
