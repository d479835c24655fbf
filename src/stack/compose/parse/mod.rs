//! From the positioned YAML tree to a validated [`Project`]. Every problem is collected
//! with its position so that one run shows the operator everything to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::envfile::{self, Format};
use super::interpolate::{Vars, interpolate_shown};
use super::objects::{self, FileKind};
use super::yaml::{Kind, Node, Pos};
use super::*;
use crate::model::probe::ProbeSpec;
use crate::model::secret;
use crate::model::units::{parse_bytes, parse_duration};

mod ctx;
mod fields;
mod resources;
mod scalars;
mod service;
#[cfg(test)]
mod tests;
mod validate;

pub(super) use ctx::Ctx;
use fields::*;
use resources::*;
pub use scalars::shell_split;
use scalars::*;
use service::*;
use validate::*;

const TOP_KEYS: &[&str] = &[
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

/// Interpolates every scalar value (not keys) in place, skipping `x-` extension blocks.
pub(super) fn interpolate_tree(node: &mut Node, path: &str, ctx: &mut Ctx) {
    interpolate_node(node, path, None, ctx)
}

/// `prev` is the list item before this one (`--password` before its value): an error
/// quotes a value only as the views would show it.
fn interpolate_node(node: &mut Node, path: &str, prev: Option<&str>, ctx: &mut Ctx) {
    match &mut node.kind {
        Kind::Scalar { value, .. } => {
            let lookup = |name: &str| ctx.vars.get(name).cloned();
            let shown = if path.ends_with(']') {
                let words: Vec<String> = prev
                    .into_iter()
                    .chain([value.as_str()])
                    .map(str::to_string)
                    .collect();
                secret::mask_command(&words).pop().unwrap_or_default()
            } else {
                secret::shown(path.rsplit('.').next().unwrap_or(path), value)
            };
            match interpolate_shown(value, &lookup, &shown) {
                Ok(v) => *value = v,
                Err(m) => ctx.err(node.pos, path, m.to_string()),
            }
        }
        Kind::Seq(items) => {
            let mut before: Option<String> = None;
            for (i, it) in items.iter_mut().enumerate() {
                interpolate_node(it, &format!("{path}[{i}]"), before.as_deref(), ctx);
                before = it.as_str().map(str::to_string);
            }
        }
        Kind::Map(entries) => {
            for (k, v) in entries.iter_mut() {
                let key = k.as_str().unwrap_or("?").to_string();
                if key.starts_with("x-") {
                    continue;
                }
                let p = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                interpolate_node(v, &p, None, ctx);
            }
        }
        Kind::Null => {}
    }
}

/// Loads one compose file's text (as if it were the only `-f`).
pub fn load_str(text: &str, file: &Path, opts: &LoadOptions) -> Result<Project, ComposeErrors> {
    super::load::load_texts(vec![(file.to_path_buf(), text.to_string())], opts)
}

/// The merged, interpolated tree of a project's files into a validated [`Project`].
/// `text` is every file's text, for finding the secret variables they name.
pub(super) fn build_project(
    mut ctx: Ctx,
    root: Node,
    name: String,
    name_pos: Pos,
    raw_name: &str,
    text: &str,
) -> Result<Project, ComposeErrors> {
    let dir = ctx.dir.clone();
    let file = ctx
        .sources
        .first()
        .map(|s| s.path.clone())
        .unwrap_or_default();
    let files = ctx
        .sources
        .iter()
        .filter(|s| s.top)
        .map(|s| s.path.clone())
        .collect();
    let mut sources: Vec<PathBuf> = Vec::new();
    for s in &ctx.sources {
        if !sources.contains(&s.path) {
            sources.push(s.path.clone());
        }
    }
    check_top_keys(&mut ctx, &root);

    if name.is_empty() {
        ctx.err(
            name_pos,
            "name",
            format!(
                "project name {raw_name:?} has no letters or digits: set `name:` or pass -p NAME"
            ),
        );
    }

    let mut networks = objects::parse_networks(&mut ctx, root.get("networks"), &name);
    networks.entry("default".into()).or_insert(NetworkDef {
        name: format!("{name}_default"),
        ..Default::default()
    });
    let volumes = objects::parse_volumes(&mut ctx, root.get("volumes"), &name);
    let secrets =
        objects::parse_file_objects(&mut ctx, root.get("secrets"), FileKind::Secret, &name);
    let configs =
        objects::parse_file_objects(&mut ctx, root.get("configs"), FileKind::Config, &name);

    let mut services = parse_services(&mut ctx, &root);
    let models = bind_models(&mut ctx, &mut services, &root);

    link_service_refs(&mut ctx, &mut services, &root);
    let secret_vars = ctx
        .vars
        .iter()
        .filter(|(k, v)| {
            !v.is_empty() && crate::model::secret::is_secret_name(k) && text.contains(k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let project = Project {
        name,
        file,
        files,
        sources,
        dir,
        services,
        networks,
        volumes,
        secrets,
        configs,
        secret_vars,
        models,
    };
    validate(&mut ctx, &project, &root);
    objects::validate_grants(&mut ctx, &project, &root);
    if ctx.errors.is_empty() {
        Ok(project)
    } else {
        Err(ComposeErrors(ctx.errors))
    }
}

/// Names a top-level key compose does not know (or one osmen does not drive, `models:`).
fn check_top_keys(ctx: &mut Ctx, root: &Node) {
    let entries = root.as_map().unwrap_or(&[]).to_vec();
    for (k, _) in &entries {
        let key = k.as_str().unwrap_or("");
        if !TOP_KEYS.contains(&key) && !key.starts_with("x-") {
            let hint = did_you_mean(key, TOP_KEYS);
            ctx.err(
                k.pos,
                key,
                format!(
                    "unknown top-level key{hint}; allowed: {}",
                    TOP_KEYS.join(", ")
                ),
            );
        }
    }
}

/// The top-level `models:` and each service's `models:` bound to the Ollama service.
fn bind_models(
    ctx: &mut Ctx,
    services: &mut BTreeMap<String, Service>,
    root: &Node,
) -> BTreeMap<String, super::models::ModelDef> {
    let top = root.get("models");
    let (defs, refused) = super::models::parse_defs(ctx, top);
    let mut uses = BTreeMap::new();
    let nodes = root.get("services").map(Node::keyed).unwrap_or_default();
    for (name, node) in nodes {
        if let Some(m) = node.get("models")
            && services.contains_key(name)
        {
            let path = format!("services.{name}.models");
            let list = super::models::parse_uses(ctx, m, &path);
            uses.insert(name.to_string(), (m.pos, list));
        }
    }
    let top_pos = root
        .as_map()
        .unwrap_or(&[])
        .iter()
        .find(|(k, _)| k.as_str() == Some("models"))
        .map(|(k, _)| k.pos);
    super::models::bind(ctx, services, &defs, &refused, uses, top_pos);
    defs
}

/// Every service under `services:`, each read on its own; a missing `services:` is an error.
fn parse_services(ctx: &mut Ctx, root: &Node) -> BTreeMap<String, Service> {
    let mut services = BTreeMap::new();
    match root.get("services") {
        None => ctx.err(
            root.pos,
            "services",
            "no `services:` key: a compose file defines at least one service",
        ),
        Some(node) => {
            if let Some(m) = ctx.map(node, "services") {
                for (k, v) in m {
                    let Some(sname) = ctx.scalar(k, "services", "a service name") else {
                        continue;
                    };
                    if let Some(svc) = parse_service(ctx, &sname, v) {
                        services.insert(sname, svc);
                    }
                }
            }
        }
    }
    services
}

/// A service whose containers another joins (`network_mode: service:x`, `ipc`, `pid`) or
/// links to must exist, and starts first, as in Compose.
fn link_service_refs(ctx: &mut Ctx, services: &mut BTreeMap<String, Service>, root: &Node) {
    let names: Vec<String> = services.keys().cloned().collect();
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let nodes = root.get("services").map(Node::keyed).unwrap_or_default();
    for (name, svc) in services.iter_mut() {
        let node = nodes.get(name.as_str()).copied();
        let st = &svc.settings;
        let base = format!("services.{name}");
        let at = |key: &str| {
            node.and_then(|n| n.get(key))
                .map(|n| n.pos)
                .or(node.map(|n| n.pos))
                .unwrap_or_default()
        };
        if st.network_mode.is_some() {
            let mode = st.network_mode.clone().unwrap_or_default();
            if node.and_then(|n| n.get("networks")).is_some() {
                ctx.err(
                    at("network_mode"),
                    &format!("{base}.network_mode"),
                    format!(
                        "network_mode {mode:?} and networks cannot be combined: the container \
                         joins one or the other; remove one of them"
                    ),
                );
            }
            if !svc.ports.is_empty() && mode != "bridge" && !is_network_name(&mode) {
                ctx.err(
                    at("ports"),
                    &format!("{base}.ports"),
                    format!(
                        "ports cannot be published with network_mode {mode:?}: {}; remove ports",
                        if mode == "host" {
                            "the container listens on the host's ports directly"
                        } else {
                            "the container has no network of its own to publish from"
                        }
                    ),
                );
            }
        }
        for dep in st.service_refs() {
            if dep == *name || !nodes.contains_key(dep.as_str()) {
                let linked = st
                    .links
                    .iter()
                    .any(|l| super::settings::link_parts(l).0 == dep);
                let key = [
                    ("network_mode", &st.network_mode),
                    ("ipc", &st.ipc),
                    ("pid", &st.pid),
                ]
                .into_iter()
                .find(|(_, m)| m.as_deref() == Some(&format!("service:{dep}")))
                .map_or(if linked { "links" } else { "volumes_from" }, |(k, _)| k);
                let why = if dep == *name {
                    "a service cannot refer to itself".to_string()
                } else {
                    format!(
                        "unknown service `{dep}`{}; services in this file: {}",
                        did_you_mean(&dep, &known),
                        known.join(", ")
                    )
                };
                ctx.err(at(key), &format!("{base}.{key}"), why);
                continue;
            }
            svc.depends_on.entry(dep).or_insert(Dependency {
                condition: Condition::ServiceStarted,
                required: true,
            });
        }
    }
}

/// `network_mode` naming a network rather than a mode (host, none, service:, container:).
fn is_network_name(mode: &str) -> bool {
    !matches!(mode, "host" | "none" | "bridge") && !mode.contains(':')
}

pub(super) fn seq_or_err<'n>(ctx: &mut Ctx, node: &'n Node, path: &str) -> Option<&'n [Node]> {
    match &node.kind {
        Kind::Seq(s) => Some(s),
        Kind::Null => Some(&[]),
        Kind::Scalar { value, .. } => {
            let key = path.rsplit('.').next().unwrap_or(path);
            let v = secret::shown(key, value);
            ctx.err(
                node.pos,
                path,
                format!("expected a list, found {v:?}: write `{key}: [{v:?}]`"),
            );
            None
        }
        _ => {
            ctx.err(
                node.pos,
                path,
                format!("expected a list, found {}", node.type_name()),
            );
            None
        }
    }
}

/// Returns the first dependency cycle found, as a closed path (`a -> b -> a`).
pub fn find_cycle(project: &Project) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        p: &Project,
        n: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(n).copied().unwrap_or(Mark::New) {
            Mark::Done => return None,
            Mark::Active => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cyc = stack[start..].to_vec();
                cyc.push(n.to_string());
                return Some(cyc);
            }
            Mark::New => {}
        }
        marks.insert(n.to_string(), Mark::Active);
        stack.push(n.to_string());
        if let Some(svc) = p.services.get(n) {
            for d in svc.depends_on.keys() {
                if p.services.contains_key(d)
                    && let Some(c) = visit(p, d, marks, stack)
                {
                    return Some(c);
                }
            }
        }
        stack.pop();
        marks.insert(n.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in project.services.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(project, name, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

/// The names in `set` that `name` needs, directly or through others (not itself).
pub fn dependency_closure(project: &Project, roots: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(n) = todo.pop() {
        if out.insert(n.clone())
            && let Some(s) = project.services.get(&n)
        {
            todo.extend(s.depends_on.keys().cloned());
        }
    }
    out
}
