//! `deploy:` (restart policy, placement, resources), devices, gpus and logging.

use super::*;

pub(super) fn parse_deploy(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    svc: &mut Service,
    restart_set: bool,
) {
    let Some(m) = ctx.map(node, path) else { return };
    for (k, v) in m {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            "replicas" => {
                if let Some(n) = ctx.uint(v, &p) {
                    svc.replicas = n;
                }
            }
            "resources" => {
                check_resource_keys(ctx, v, &p, svc);
                if let Some(limits) = v.get("limits") {
                    let lp = format!("{p}.limits");
                    if let Some(c) = limits.get("cpus") {
                        svc.resources.cpus = ctx.cpus(c, &format!("{lp}.cpus"));
                        svc.resources.cpus_service_level = false;
                    }
                    if let Some(mm) = limits.get("memory") {
                        svc.resources.memory = ctx.bytes(mm, &format!("{lp}.memory"));
                        svc.resources.memory_service_level = false;
                    }
                }
                if let Some(res) = v.get("reservations") {
                    let rp = format!("{p}.reservations");
                    if let Some(c) = res.get("cpus") {
                        svc.resources.cpus_reservation = ctx.cpus(c, &format!("{rp}.cpus"));
                    }
                    if let Some(mm) = res.get("memory") {
                        svc.resources.memory_reservation = ctx.bytes(mm, &format!("{rp}.memory"));
                    }
                    if let Some(devs) = res.get("devices") {
                        let dp = format!("{rp}.devices");
                        for (i, d) in seq_or_err(ctx, devs, &dp).unwrap_or(&[]).iter().enumerate() {
                            if let Some(g) = parse_device(ctx, d, &format!("{dp}[{i}]")) {
                                svc.resources.gpus.push(g);
                            }
                        }
                    }
                }
            }
            "restart_policy" => restart_policy(ctx, v, &p, svc, restart_set),
            "placement" => placement(ctx, v, &p, svc),
            other if crate::stack::compose::deploy::parse_key(ctx, other, v, &p, svc) => {}
            other => ctx.err(k.pos, &p, format!("unknown deploy key `{other}`")),
        }
    }
    crate::stack::compose::deploy::check(ctx, node, path, svc);
}

/// `deploy.restart_policy`: condition and max_attempts are the container's restart policy
/// unless `restart:` is set (it wins, as in docker compose); delay and window are Swarm's.
pub(super) fn restart_policy(
    ctx: &mut Ctx,
    v: &Node,
    p: &str,
    svc: &mut Service,
    restart_set: bool,
) {
    for (k, sub) in ctx.map(v, p).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        match key {
            "condition" | "max_attempts" => {}
            other if crate::stack::compose::deploy::restart_timing(ctx, other, sub, &kp, svc) => {}
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown restart_policy key `{other}`; allowed: condition, delay, \
                     max_attempts, window"
                ),
            ),
        }
    }
    if restart_set {
        return;
    }
    let cond = v.get("condition").and_then(|c| c.as_str()).unwrap_or("any");
    let max = v
        .get("max_attempts")
        .and_then(|m| ctx.uint(m, &format!("{p}.max_attempts")));
    svc.restart = match cond {
        "none" => Restart::No,
        "on-failure" => Restart::OnFailure(max),
        "any" => Restart::Always,
        other => {
            ctx.err(
                v.pos,
                &format!("{p}.condition"),
                format!("unknown condition {other:?}: use none, on-failure or any"),
            );
            svc.restart.clone()
        }
    };
}

/// `deploy.placement`: constraints (`node.role == manager`), preferences and
/// max_replicas_per_node; Swarm's, named at a local up.
pub(super) fn placement(ctx: &mut Ctx, v: &Node, p: &str, svc: &mut Service) {
    for (k, sub) in ctx.map(v, p).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        match key {
            "constraints" => constraints(ctx, sub, &kp, svc),
            other if crate::stack::compose::deploy::spread(ctx, other, sub, &kp, svc) => {}
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown placement key `{other}`; allowed: constraints, preferences, \
                     max_replicas_per_node"
                ),
            ),
        }
    }
}

pub(super) fn constraints(ctx: &mut Ctx, cs: &Node, cp: &str, svc: &mut Service) {
    for (i, c) in seq_or_err(ctx, cs, cp).unwrap_or(&[]).iter().enumerate() {
        let ip = format!("{cp}[{i}]");
        let Some(text) = ctx.scalar(c, &ip, "a constraint") else {
            continue;
        };
        if text.contains("==") || text.contains("!=") {
            svc.placement.push(text);
        } else {
            ctx.err(
                c.pos,
                &ip,
                format!(
                    "{text:?} is not a constraint: write `node.role == manager` or \
                     `node.labels.gpu != false` (== or !=)"
                ),
            );
        }
    }
}

/// `deploy.resources` keys beyond cpus, memory and devices: `limits.pids` is applied (as
/// `docker compose` sets PidsLimit); the rest is refused by name, never dropped.
pub(super) fn check_resource_keys(ctx: &mut Ctx, v: &Node, p: &str, svc: &mut Service) {
    for (k, sub) in v.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        let known: &[&str] = match key {
            "limits" => &["cpus", "memory", "pids"],
            "reservations" => &["cpus", "memory", "devices"],
            other if other.starts_with("x-") => continue,
            other => {
                ctx.err(
                    k.pos,
                    &kp,
                    format!("unknown key `{other}`; allowed: limits, reservations"),
                );
                continue;
            }
        };
        for (sk, sv) in sub.as_map().unwrap_or(&[]) {
            let skey = sk.as_str().unwrap_or("");
            let sp = format!("{kp}.{skey}");
            if key == "limits" && skey == "pids" {
                let n = ctx.uint(sv, &sp).map(i64::from);
                match (svc.settings.pids_limit, n) {
                    (Some(a), Some(b)) if a != b => ctx.err(
                        sv.pos,
                        &sp,
                        format!("pids_limit is {a} but {sp} is {b}: set one of them"),
                    ),
                    _ => svc.settings.pids_limit = svc.settings.pids_limit.or(n),
                }
            } else if skey == "generic_resources" {
                ctx.err(
                    sk.pos,
                    &sp,
                    "generic_resources are Swarm node resources; one engine has none to \
                     reserve: remove them",
                );
            } else if !known.contains(&skey) && !skey.starts_with("x-") {
                ctx.err(
                    sk.pos,
                    &sp,
                    format!("unknown key `{skey}`; allowed: {}", known.join(", ")),
                );
            }
        }
    }
}

pub(super) fn parse_device(ctx: &mut Ctx, node: &Node, path: &str) -> Option<GpuRequest> {
    ctx.map(node, path)?;
    let capabilities = node
        .get("capabilities")
        .map(|c| ctx.string_list(c, &format!("{path}.capabilities")))
        .unwrap_or_default();
    let count = match node.get("count").and_then(|c| c.as_str()) {
        None | Some("all") => None,
        Some(n) => match n.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                ctx.err(
                    node.get("count").map(|c| c.pos).unwrap_or(node.pos),
                    &format!("{path}.count"),
                    format!("invalid count {n:?}: use a number or \"all\""),
                );
                return None;
            }
        },
    };
    let device_ids = node
        .get("device_ids")
        .map(|d| ctx.string_list(d, &format!("{path}.device_ids")))
        .unwrap_or_default();
    Some(GpuRequest {
        driver: node
            .get("driver")
            .and_then(|d| d.as_str())
            .unwrap_or("nvidia")
            .to_string(),
        count: if device_ids.is_empty() { count } else { None },
        device_ids,
        capabilities: if capabilities.is_empty() {
            vec!["gpu".into()]
        } else {
            capabilities
        },
    })
}

pub(super) fn parse_gpus_short(ctx: &mut Ctx, node: &Node, path: &str) -> Option<GpuRequest> {
    let s = ctx.scalar(node, path, "\"all\" or a number of GPUs")?;
    let count = if s == "all" {
        None
    } else {
        match s.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                ctx.err(
                    node.pos,
                    path,
                    format!("invalid gpus {s:?}: use \"all\" or a number"),
                );
                return None;
            }
        }
    };
    Some(GpuRequest {
        driver: "nvidia".into(),
        count,
        device_ids: Vec::new(),
        capabilities: vec!["gpu".into()],
    })
}

pub(super) fn parse_logging(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Logging> {
    ctx.map(node, path)?;
    Some(Logging {
        driver: node
            .get("driver")
            .and_then(|d| ctx.scalar(d, &format!("{path}.driver"), "a log driver")),
        options: node
            .get("options")
            .map(|o| ctx.kv(o, &format!("{path}.options"), false))
            .unwrap_or_default(),
    })
}
