//! Cross-service checks once every service is read.

use super::*;

/// Cross-service checks: references, cycles, names.
pub(super) fn validate(ctx: &mut Ctx, project: &Project, root: &Node) {
    let nodes = root.get("services").map(Node::keyed).unwrap_or_default();
    let svc_node = |name: &str| nodes.get(name).copied();
    let names: Vec<&str> = project.services.keys().map(String::as_str).collect();
    for (name, svc) in &project.services {
        let base = format!("services.{name}");
        let pos = svc_node(name).map(|n| n.pos).unwrap_or_default();
        if svc.image.is_none() && svc.build.is_none() {
            ctx.err(
                pos,
                &base,
                "neither `image:` nor `build:` is set: add one of them",
            );
        }
        if svc.container_name.is_some() && svc.replicas > 1 {
            // Name the key the user wrote: `scale:` or `deploy.replicas`.
            let wrote = match svc_node(name).and_then(|n| n.get("scale")) {
                Some(_) => "scale",
                None => "deploy.replicas",
            };
            ctx.err(
                pos,
                &format!("{base}.container_name"),
                format!(
                    "container_name is set but {wrote} is {}: one name cannot serve \
                     several containers; remove container_name or set {wrote} to 1",
                    svc.replicas
                ),
            );
        }
        if let Some(b) = &svc.balance
            && (b.service == *name || !project.services.contains_key(&b.service))
        {
            let bpos = svc_node(name)
                .and_then(|n| n.get("x-osmen-balance"))
                .map(|n| n.pos)
                .unwrap_or(pos);
            ctx.err(
                bpos,
                &format!("{base}.x-osmen-balance"),
                if b.service == *name {
                    "a balancer cannot balance itself: name the service whose replicas it fronts"
                        .to_string()
                } else {
                    format!(
                        "unknown service `{}`{}; services in this file: {}",
                        b.service,
                        did_you_mean(&b.service, &names),
                        names.join(", ")
                    )
                },
            );
        }
        for dep in svc.depends_on.keys() {
            if !project.services.contains_key(dep) {
                let dpos = svc_node(name)
                    .and_then(|n| n.get("depends_on"))
                    .map(|d| find_key_or_item(d, dep))
                    .unwrap_or(pos);
                ctx.err(
                    dpos,
                    &format!("{base}.depends_on"),
                    format!(
                        "unknown service `{dep}`{}; services in this file: {}",
                        did_you_mean(dep, &names),
                        names.join(", ")
                    ),
                );
            }
        }
        for m in &svc.volumes {
            if m.kind == MountKind::Volume
                && let Some(src) = &m.source
                && !project.volumes.contains_key(src)
            {
                let vpos = svc_node(name)
                    .and_then(|n| n.get("volumes"))
                    .map(|v| v.pos)
                    .unwrap_or(pos);
                ctx.err(
                    vpos,
                    &format!("{base}.volumes"),
                    format!(
                        "named volume `{src}` is not declared: add it under the top-level \
                         `volumes:` key"
                    ),
                );
            }
        }
        for net in svc.networks.keys() {
            if !project.networks.contains_key(net) {
                let npos = svc_node(name)
                    .and_then(|n| n.get("networks"))
                    .map(|v| v.pos)
                    .unwrap_or(pos);
                ctx.err(
                    npos,
                    &format!("{base}.networks"),
                    format!(
                        "network `{net}` is not declared: add it under the top-level \
                         `networks:` key"
                    ),
                );
            }
        }
    }
    check_cycle(ctx, project, &svc_node);
}

/// A dependency cycle, named at its first service's `depends_on`.
fn check_cycle<'n>(ctx: &mut Ctx, project: &Project, svc_node: &dyn Fn(&str) -> Option<&'n Node>) {
    if let Some(cycle) = find_cycle(project) {
        let first = &cycle[0];
        let pos = svc_node(first)
            .and_then(|n| n.get("depends_on"))
            .map(|d| d.pos)
            .unwrap_or_default();
        ctx.err(
            pos,
            &format!("services.{first}.depends_on"),
            format!(
                "dependency cycle: {}; remove one of these depends_on entries",
                cycle.join(" -> ")
            ),
        );
    }
}

pub(super) fn find_key_or_item(node: &Node, name: &str) -> Pos {
    match &node.kind {
        Kind::Map(m) => m
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(k, _)| k.pos),
        Kind::Seq(s) => s.iter().find(|i| i.as_str() == Some(name)).map(|i| i.pos),
        _ => None,
    }
    .unwrap_or(node.pos)
}
