//! `osmen config`: the resolved stack as osmen will run it, with secrets masked.

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter};

use super::{Ctx, OK, out};
use crate::cli::ConfigArgs;
use crate::model::secret::{is_secret_name, shown};

/// Every string in the tree: secret-named keys' values masked as `shown` masks them, and
/// secrets inside other strings (URL passwords, `--password=x`) masked.
fn mask_tree(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match val {
                    Value::String(s) if is_secret_name(k) => *s = shown(k, s),
                    other => mask_tree(other),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_tree),
        Value::String(s) => *s = crate::model::secret::mask_text(s),
        _ => {}
    }
}

/// Masks secrets everywhere (build args, health checks, logging options included), and
/// the argument after a secret-looking flag (`--requirepass x`).
pub fn mask(v: &mut Value) {
    mask_tree(v);
    let Some(services) = v.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for svc in services.values_mut() {
        for key in ["environment", "labels"] {
            if let Some(env) = svc.get_mut(key).and_then(Value::as_object_mut) {
                for (k, val) in env.iter_mut() {
                    if let Some(s) = val.as_str() {
                        *val = Value::String(shown(k, s));
                    }
                }
            }
        }
        for key in ["command", "entrypoint", "healthcheck"] {
            let list = match svc.get_mut(key) {
                // A health check's test is a command too (`["CMD", "mysqladmin", "-pX"]`).
                Some(h) if key == "healthcheck" => h.get_mut("test"),
                other => other,
            };
            if let Some(words) = list.and_then(Value::as_array_mut) {
                let plain: Vec<String> = words
                    .iter()
                    .map(|w| w.as_str().unwrap_or("").to_string())
                    .collect();
                let masked = crate::model::secret::mask_command(&plain);
                for (w, m) in words.iter_mut().zip(masked) {
                    *w = Value::String(m);
                }
            }
        }
    }
}

pub fn to_yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
        Value::Object(o) => Yaml::Hash(
            o.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

/// The resolved stack: the services of the enabled profiles (`--profile`,
/// COMPOSE_PROFILES), or every service with `all_profiles`.
pub fn render(ctx: &Ctx, json: bool, all_profiles: bool) -> anyhow::Result<String> {
    let mut v = serde_json::to_value(&*ctx.project)?;
    if !all_profiles {
        let active = ctx.project.active_services(&ctx.global.profiles, &[]);
        if let Some(services) = v.get_mut("services").and_then(Value::as_object_mut) {
            services.retain(|name, _| active.contains(name));
        }
    }
    mask(&mut v);
    if json {
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    // One tree at a time: a file of 200k services makes each of them large.
    let y = to_yaml(&v);
    drop(v);
    let mut s = String::new();
    YamlEmitter::new(&mut s).dump(&y)?;
    drop(y);
    Ok(s.trim_start_matches("---\n").to_string() + "\n")
}

pub fn run(ctx: &Ctx, args: &ConfigArgs) -> anyhow::Result<u8> {
    out(&render(ctx, args.json, args.all_profiles)?)?;
    Ok(OK)
}
