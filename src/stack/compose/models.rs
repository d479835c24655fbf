//! Compose `models:` (Compose 2.38), served by the stack's own Ollama service instead of
//! Docker Model Runner. The top-level `models:` names each model (`model`, the Ollama name
//! to pull; `context_size`, served as a derived model with that `num_ctx`; `name`, the
//! served name); a service's `models:` (a list of keys, or a map with `endpoint_var` and
//! `model_var`) binds them. Each bound service gets the variables the specification names
//! (by default `<KEY>_URL`, the OpenAI-compatible endpoint of the Ollama service on the
//! stack's network, and `<KEY>_MODEL`, the served name) and waits for the Ollama service,
//! as for a `depends_on`. `runtime_flags` are refused: Ollama takes no raw engine flags.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::parse::Ctx;
use super::yaml::{Kind, Node, Pos};
use super::{Condition, Dependency, HealthTest, Service};

/// The port Ollama listens on unless its `OLLAMA_HOST` says otherwise.
pub const OLLAMA_PORT: u16 = 11434;

/// One entry of the top-level `models:` (printed by `config` as Compose writes it, the
/// served name as `name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDef {
    /// The model Ollama pulls (`llama3.2:1b`).
    pub model: String,
    pub context_size: Option<u32>,
    /// The name the model is served as: `name:`, else the derived model's name when
    /// `context_size` is set, else `model`.
    pub served: String,
}

impl Serialize for ModelDef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", &self.model)?;
        if let Some(c) = self.context_size {
            m.serialize_entry("context_size", &c)?;
        }
        if self.served != self.model {
            m.serialize_entry("name", &self.served)?;
        }
        m.end()
    }
}

/// One model bound to a service, with the variables it sets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUse {
    pub key: String,
    pub endpoint_var: String,
    pub model_var: String,
}

/// The models bound to a service and the Ollama service that serves them (printed by
/// `config` in Compose's long syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelBinding {
    /// The stack's Ollama service.
    pub ollama: String,
    pub uses: Vec<ModelUse>,
}

impl Serialize for ModelBinding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.uses.len()))?;
        for u in &self.uses {
            m.serialize_entry(
                &u.key,
                &BTreeMap::from([
                    ("endpoint_var", u.endpoint_var.as_str()),
                    ("model_var", u.model_var.as_str()),
                ]),
            )?;
        }
        m.end()
    }
}

/// `KEY` as an environment variable prefix: upper case, `-` and `.` as `_`.
fn var_prefix(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// The derived model's name for a context size: `llama3.2:1b` with 8192 is
/// `llama3.2-ctx8192:1b`. A digest (`smollm@sha256:...`) names the pulled model, not the
/// derived one: the name comes from the repository and tag before it (`smollm-ctx2048`).
pub fn derived_name(model: &str, ctx: u32) -> String {
    let model = model.split_once('@').map_or(model, |(repo, _)| repo);
    match model.rsplit_once(':') {
        Some((base, tag)) if !tag.contains('/') => format!("{base}-ctx{ctx}:{tag}"),
        _ => format!("{model}-ctx{ctx}"),
    }
}

/// `llama3.2` is `llama3.2:latest`, as Ollama names it.
pub fn full_name(n: &str) -> String {
    if n.rsplit('/').next().is_some_and(|last| last.contains(':')) {
        n.to_string()
    } else {
        format!("{n}:latest")
    }
}

/// `VAR` is a name a shell and Compose take as an environment variable.
fn is_var_name(var: &str) -> bool {
    let mut c = var.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// An Ollama model name as written (`[host/][namespace/]model[:tag][@digest]`): none
/// empty, none with spaces (Ollama refuses them, and a derived name would keep them).
fn check_model_name(ctx: &mut Ctx, node: &Node, path: &str, what: &str) -> Option<String> {
    let s = ctx.scalar(node, path, what)?;
    if s.chars().any(char::is_whitespace) {
        ctx.err(
            node.pos,
            path,
            format!(
                "{s:?} has spaces: Ollama names are [host/][namespace/]model[:tag] without \
                 them; write {:?}",
                s.split_whitespace().collect::<Vec<_>>().join("")
            ),
        );
        return None;
    }
    Some(s)
}

/// `context_size`: a whole number Ollama takes as `num_ctx`, from 1 to `u32::MAX`.
fn context_size(ctx: &mut Ctx, node: &Node, path: &str) -> Option<u32> {
    let s = ctx.scalar(node, path, "a whole number")?;
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let why = match t.parse::<u32>() {
        Ok(0) => "context_size must be at least 1".to_string(),
        Ok(n) => return Some(n),
        Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            if t.starts_with('-') {
                format!("context_size must be at least 1, found {s:?}")
            } else {
                format!("context_size must be at most {}, found {s:?}", u32::MAX)
            }
        }
        Err(_) => format!("expected a whole number of tokens (such as 8192), found {s:?}"),
    };
    ctx.err(node.pos, path, why);
    None
}

/// The top-level `models:`: each entry's keys checked, `runtime_flags` refused. Also
/// returns the keys that are defined but refused, so that their users are not told
/// again that the key is missing.
pub(super) fn parse_defs(
    ctx: &mut Ctx,
    node: Option<&Node>,
) -> (BTreeMap<String, ModelDef>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut refused = BTreeSet::new();
    let mut at = BTreeMap::new();
    let Some(node) = node else {
        return (out, refused);
    };
    let Some(m) = ctx.map(node, "models") else {
        return (out, refused);
    };
    for (k, v) in m {
        let Some(key) = ctx.scalar(k, "models", "a model key") else {
            continue;
        };
        let base = format!("models.{key}");
        let Some(fields) = ctx.map(v, &base) else {
            refused.insert(key);
            continue;
        };
        let (mut model, mut context, mut name) = (None, None, None);
        let mut name_pos = v.pos;
        for (fk, fv) in fields {
            let f = fk.as_str().unwrap_or("");
            let p = format!("{base}.{f}");
            match f {
                "model" => {
                    model = check_model_name(ctx, fv, &p, "an Ollama model name");
                    if model.is_none() {
                        refused.insert(key.clone());
                    }
                }
                "name" => {
                    name = check_model_name(ctx, fv, &p, "a model name");
                    name_pos = fv.pos;
                }
                "context_size" => context = context_size(ctx, fv, &p),
                "runtime_flags" => {
                    let flags = ctx.string_list(fv, &p);
                    if !flags.is_empty() {
                        ctx.err(
                            fk.pos,
                            &p,
                            format!(
                                "runtime_flags {flags:?} are refused: the stack's Ollama serves \
                                 the model and takes no raw engine flags; set parameters with \
                                 context_size, or in the request (`options`)"
                            ),
                        );
                    }
                }
                x if x.starts_with("x-") => {}
                other => ctx.err(
                    fk.pos,
                    &p,
                    format!(
                        "unknown key `{other}` of a model: use model, context_size, name \
                         (runtime_flags are refused)"
                    ),
                ),
            }
        }
        let Some(model) = model.filter(|m| !m.is_empty()) else {
            if refused.insert(key.clone()) {
                ctx.err(
                    v.pos,
                    &base,
                    "a model needs `model:`, the Ollama model to pull (for example \
                     llama3.2:1b)",
                );
            }
            continue;
        };
        let served = name.unwrap_or_else(|| match context {
            Some(n) => derived_name(&model, n),
            None => model.clone(),
        });
        at.insert(key.clone(), name_pos);
        out.insert(
            key,
            ModelDef {
                model,
                context_size: context,
                served,
            },
        );
    }
    check_served_names(ctx, &out, &at);
    (out, refused)
}

/// Two models served under one name would be one model on Ollama (the second `up` finds
/// the first present and serves it): refused, unless both are the same model.
fn check_served_names(
    ctx: &mut Ctx,
    defs: &BTreeMap<String, ModelDef>,
    at: &BTreeMap<String, Pos>,
) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (key, def) in defs {
        let name = full_name(&def.served);
        let Some(first) = seen.get(&name).copied() else {
            seen.insert(name, key);
            continue;
        };
        let other = &defs[first];
        if full_name(&other.model) == full_name(&def.model)
            && other.context_size == def.context_size
        {
            continue;
        }
        let pos = at.get(key.as_str()).copied().unwrap_or_default();
        let first_pos = at.get(first).copied().unwrap_or_default();
        let how = |d: &ModelDef| match d.context_size {
            Some(n) => format!("{} with context_size {n}", d.model),
            None => d.model.clone(),
        };
        ctx.err(
            pos,
            &format!("models.{key}"),
            format!(
                "models {first:?} ({}, line {}) and {key:?} ({}) are both served as {:?}: \
                 Ollama keeps one model per name, so one of them would serve the other; \
                 give one of them another `name:`",
                how(other),
                first_pos.line,
                how(def),
                def.served
            ),
        );
    }
    // A served name that is another model's pulled name would overwrite it on Ollama.
    for (key, def) in defs {
        for (okey, other) in defs {
            if okey != key
                && def.served != def.model
                && full_name(&def.served) == full_name(&other.model)
                && full_name(&def.model) != full_name(&other.model)
            {
                let pos = at.get(key.as_str()).copied().unwrap_or_default();
                ctx.err(
                    pos,
                    &format!("models.{key}"),
                    format!(
                        "model {key:?} ({}) is served as {:?}, the model that {okey:?} pulls: \
                         Ollama keeps one model per name; give {key:?} another `name:`",
                        def.model, def.served
                    ),
                );
            }
        }
    }
}

/// `endpoint_var` or `model_var`: an environment variable's name.
fn var_name(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let s = ctx.scalar(node, path, "a variable name")?;
    if is_var_name(&s) {
        return Some(s);
    }
    ctx.err(
        node.pos,
        path,
        format!(
            "{s:?} is not an environment variable name: use letters, digits and `_`, not \
             starting with a digit (such as LLM_URL)"
        ),
    );
    None
}

/// A service's `models:`: `[llm]` or `{llm: {endpoint_var: X, model_var: Y}}`.
pub(super) fn parse_uses(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<ModelUse> {
    let list = parse_use_list(ctx, node, path);
    // An explicit variable is checked where it is read; what is left is a key's default.
    for u in &list {
        for var in [&u.endpoint_var, &u.model_var] {
            if !is_var_name(var) {
                ctx.err(
                    node.pos,
                    path,
                    format!(
                        "model {:?} gives the variable {var:?}, which is not an environment \
                         variable name: name its variables with the long syntax \
                         (`{}: {{endpoint_var: LLM_URL, model_var: LLM_MODEL}}`)",
                        u.key, u.key
                    ),
                );
            }
        }
    }
    list
}

fn parse_use_list(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<ModelUse> {
    let default = |key: &str| ModelUse {
        key: key.to_string(),
        endpoint_var: format!("{}_URL", var_prefix(key)),
        model_var: format!("{}_MODEL", var_prefix(key)),
    };
    match &node.kind {
        Kind::Seq(_) | Kind::Scalar { .. } => ctx
            .string_list(node, path)
            .iter()
            .map(|k| default(k))
            .collect(),
        Kind::Null => Vec::new(),
        Kind::Map(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                let Some(key) = ctx.scalar(k, path, "a model key") else {
                    continue;
                };
                let mut u = default(&key);
                let p = format!("{path}.{key}");
                if let Kind::Map(fields) = &v.kind {
                    for (fk, fv) in fields {
                        let f = fk.as_str().unwrap_or("");
                        let fp = format!("{p}.{f}");
                        match f {
                            "endpoint_var" => {
                                if let Some(s) = var_name(ctx, fv, &fp) {
                                    u.endpoint_var = s;
                                }
                            }
                            "model_var" => {
                                if let Some(s) = var_name(ctx, fv, &fp) {
                                    u.model_var = s;
                                }
                            }
                            x if x.starts_with("x-") => {}
                            other => ctx.err(
                                fk.pos,
                                &fp,
                                format!("unknown key `{other}`: use endpoint_var, model_var"),
                            ),
                        }
                    }
                } else if !matches!(v.kind, Kind::Null) {
                    ctx.err(
                        v.pos,
                        &p,
                        "expected null or a mapping with endpoint_var and model_var",
                    );
                }
                out.push(u);
            }
            out
        }
    }
}

/// The stack's Ollama service: the one named `ollama`, else the one service whose image
/// is Ollama's.
pub fn ollama_service(services: &BTreeMap<String, Service>) -> Result<String, NoOllama> {
    if services.contains_key("ollama") {
        return Ok("ollama".into());
    }
    let found: Vec<&String> = services
        .iter()
        .filter(|(_, s)| {
            s.image
                .as_deref()
                .and_then(crate::model::probe::ProbeKind::from_image)
                == Some(crate::model::probe::ProbeKind::Ollama)
        })
        .map(|(n, _)| n)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(NoOllama::None),
        many => Err(NoOllama::Several(
            many.iter().map(|s| s.to_string()).collect(),
        )),
    }
}

/// Why no one service of the stack serves its `models:`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoOllama {
    #[error(
        "the stack has no Ollama service to serve them (a service named `ollama` or running \
         an ollama image): add one, or remove `models:`"
    )]
    None,
    #[error("several Ollama services ({}): name the one that serves models `ollama`", .0.join(", "))]
    Several(Vec<String>),
}

/// The port the Ollama service listens on inside its container.
pub fn ollama_port(svc: &Service) -> u16 {
    svc.environment
        .get("OLLAMA_HOST")
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.trim_end_matches('/').parse().ok())
        .unwrap_or(OLLAMA_PORT)
}

/// Binds each service's models: its variables set, its wait on the Ollama service added.
/// `uses` holds each service's parsed `models:` with the position for errors.
pub(super) fn bind(
    ctx: &mut Ctx,
    services: &mut BTreeMap<String, Service>,
    defs: &BTreeMap<String, ModelDef>,
    refused: &BTreeSet<String>,
    uses: BTreeMap<String, (Pos, Vec<ModelUse>)>,
    top: Option<Pos>,
) {
    if uses.is_empty() && top.is_none() {
        return;
    }
    let ollama = match ollama_service(services) {
        Ok(o) => o,
        Err(why) => {
            let at = top
                .or_else(|| uses.values().next().map(|u| u.0))
                .unwrap_or_default();
            ctx.err(at, "models", format!("models are refused: {why}"));
            return;
        }
    };
    let (port, healthy) = {
        let o = &services[&ollama];
        let checked = o
            .healthcheck
            .as_ref()
            .is_some_and(|h| !matches!(h.test, Some(HealthTest::Disabled)));
        (ollama_port(o), checked)
    };
    let url = format!("http://{ollama}:{port}/v1");
    for (name, (pos, list)) in uses {
        let path = format!("services.{name}.models");
        if name == ollama {
            ctx.err(
                pos,
                &path,
                "the Ollama service cannot use the models it serves",
            );
            continue;
        }
        let Some(svc) = services.get_mut(&name) else {
            continue;
        };
        let mut by_model: BTreeMap<&str, &str> = BTreeMap::new();
        for u in &list {
            if refused.contains(&u.key) {
                continue;
            }
            let Some(def) = defs.get(&u.key) else {
                let known: Vec<&str> = defs.keys().map(String::as_str).collect();
                ctx.err(
                    pos,
                    &path,
                    format!(
                        "model {:?} is not under the top-level `models:` (defined: {})",
                        u.key,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                continue;
            };
            if u.endpoint_var == u.model_var {
                ctx.err(
                    pos,
                    &path,
                    format!(
                        "model {:?} sets {} as both its endpoint_var and its model_var: \
                         name two variables",
                        u.key, u.endpoint_var
                    ),
                );
                continue;
            }
            for (var, value) in [(&u.endpoint_var, &url), (&u.model_var, &def.served)] {
                if let Some(first) = by_model.insert(var, &u.key) {
                    ctx.err(
                        pos,
                        &path,
                        format!(
                            "{var} is set by both model {first:?} and model {:?}: give one \
                             of them another `endpoint_var`/`model_var`",
                            u.key
                        ),
                    );
                    continue;
                }
                match svc.environment.get(var) {
                    Some(v) if v != value => ctx.err(
                        pos,
                        &path,
                        format!(
                            "{var} is set in the environment and by model {:?}: remove one",
                            u.key
                        ),
                    ),
                    _ => {
                        svc.environment.insert(var.clone(), value.clone());
                    }
                }
            }
        }
        svc.depends_on.entry(ollama.clone()).or_insert(Dependency {
            condition: if healthy {
                Condition::ServiceHealthy
            } else {
                Condition::ServiceStarted
            },
            required: true,
        });
        svc.models = Some(ModelBinding {
            ollama: ollama.clone(),
            uses: list,
        });
    }
}
