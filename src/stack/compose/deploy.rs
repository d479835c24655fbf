//! The `deploy` keys only Swarm acts on: `mode`, `update_config`, `rollback_config`,
//! `endpoint_mode` and `labels`. `--engine swarm` carries them into the ServiceSpec; a
//! local `up` does what `docker compose up` does with them (one container for `mode:
//! global`, nothing for the others) and says so on standard error, so none is accepted
//! and ignored without a word.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Service;
use super::parse::Ctx;
use super::yaml::Node;

/// `update_config` or `rollback_config`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UpdateConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub monitor: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SwarmDeploy {
    /// `replicated` (the default) or `global`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `vip` or `dnsrr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// Labels of the Swarm service (not of its containers).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// `restart_policy.delay` and `window`: Swarm's restart timing.
    #[serde(skip_serializing_if = "RestartTiming::is_empty")]
    pub restart_policy: RestartTiming,
    /// `placement.preferences` and `max_replicas_per_node` (the constraints are
    /// `Service::placement`).
    #[serde(skip_serializing_if = "Spread::is_empty")]
    pub placement: Spread,
}

/// `deploy.restart_policy.delay` and `window`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RestartTiming {
    #[serde(skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub delay: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none", with = "super::opt_duration")]
    pub window: Option<Duration>,
}

impl RestartTiming {
    pub fn is_empty(&self) -> bool {
        *self == RestartTiming::default()
    }
}

/// `deploy.placement.preferences` (`spread: node.labels.zone`) and `max_replicas_per_node`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Spread {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u32>,
}

impl Spread {
    pub fn is_empty(&self) -> bool {
        *self == Spread::default()
    }
}

/// `deploy.restart_policy.delay`/`window`; false for another key.
pub(super) fn restart_timing(
    ctx: &mut Ctx,
    key: &str,
    v: &Node,
    p: &str,
    svc: &mut Service,
) -> bool {
    let t = &mut svc.deploy.restart_policy;
    match key {
        "delay" => t.delay = ctx.duration(v, p),
        "window" => t.window = ctx.duration(v, p),
        _ => return false,
    }
    true
}

/// `deploy.placement.preferences`/`max_replicas_per_node`; false for another key.
pub(super) fn spread(ctx: &mut Ctx, key: &str, v: &Node, p: &str, svc: &mut Service) -> bool {
    match key {
        "preferences" => {
            for (i, pref) in super::parse::seq_or_err(ctx, v, p)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                let ip = format!("{p}[{i}]");
                match pref.get("spread").and_then(|s| s.as_str()) {
                    Some(s) if pref.as_map().is_some_and(|m| m.len() == 1) => {
                        svc.deploy.placement.preferences.push(s.to_string())
                    }
                    _ => ctx.err(
                        pref.pos,
                        &ip,
                        "a placement preference is `{spread: node.labels.zone}` (spread is \
                         the only kind)",
                    ),
                }
            }
        }
        "max_replicas_per_node" => svc.deploy.placement.max_replicas_per_node = ctx.uint(v, p),
        _ => return false,
    }
    true
}

impl SwarmDeploy {
    pub fn is_empty(&self) -> bool {
        *self == SwarmDeploy::default()
    }

    pub fn is_global(&self) -> bool {
        self.mode.as_deref() == Some("global")
    }
}

fn one_of(ctx: &mut Ctx, v: &Node, p: &str, allowed: &[&str], what: &str) -> Option<String> {
    let s = ctx.scalar(v, p, what)?;
    if allowed.contains(&s.as_str()) {
        return Some(s);
    }
    ctx.err(
        v.pos,
        p,
        format!("invalid {what} {s:?}: use {}", allowed.join(" or ")),
    );
    None
}

fn update_config(ctx: &mut Ctx, node: &Node, path: &str, rollback: bool) -> UpdateConfig {
    let mut u = UpdateConfig::default();
    let Some(m) = ctx.map(node, path) else {
        return u;
    };
    // A rollback that fails cannot roll back again.
    let actions: &[&str] = if rollback {
        &["continue", "pause"]
    } else {
        &["continue", "rollback", "pause"]
    };
    for (k, v) in m {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            "parallelism" => u.parallelism = ctx.uint(v, &p),
            "delay" => u.delay = ctx.duration(v, &p),
            "monitor" => u.monitor = ctx.duration(v, &p),
            "failure_action" => u.failure_action = one_of(ctx, v, &p, actions, "failure_action"),
            "order" => u.order = one_of(ctx, v, &p, &["start-first", "stop-first"], "order"),
            "max_failure_ratio" => {
                let s = ctx.scalar(v, &p, "a ratio").unwrap_or_default();
                match s.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => u.max_failure_ratio = Some(r),
                    _ => ctx.err(
                        v.pos,
                        &p,
                        format!("invalid max_failure_ratio {s:?}: write a number from 0 to 1"),
                    ),
                }
            }
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &p,
                format!(
                    "unknown {} key `{other}`: use parallelism, delay, failure_action, \
                     monitor, max_failure_ratio or order",
                    if rollback {
                        "rollback_config"
                    } else {
                        "update_config"
                    }
                ),
            ),
        }
    }
    u
}

/// One of the Swarm-only `deploy` keys; false when `key` is not one of them.
pub(super) fn parse_key(ctx: &mut Ctx, key: &str, v: &Node, p: &str, svc: &mut Service) -> bool {
    let d = &mut svc.deploy;
    match key {
        "mode" => {
            d.mode = one_of(ctx, v, p, &["replicated", "global"], "deploy mode");
        }
        "endpoint_mode" => {
            d.endpoint_mode = one_of(ctx, v, p, &["vip", "dnsrr"], "endpoint_mode");
        }
        "labels" => d.labels = ctx.kv(v, p, false),
        "update_config" => d.update_config = Some(update_config(ctx, v, p, false)),
        "rollback_config" => d.rollback_config = Some(update_config(ctx, v, p, true)),
        _ => return false,
    }
    true
}

/// `mode: global` with `replicas`: refused as `docker stack deploy` refuses it.
pub(super) fn check(ctx: &mut Ctx, node: &Node, path: &str, svc: &Service) {
    if let (true, Some(r)) = (svc.deploy.is_global(), node.get("replicas")) {
        ctx.err(
            r.pos,
            &format!("{path}.replicas"),
            "replicas can only be used with replicated mode (deploy.mode is global: one \
             task per node); remove replicas or set mode: replicated",
        );
    }
}

/// What a local `up` does not do of the file's Swarm-only `deploy` keys, one line per
/// service and key, for standard error (docker compose treats them the same way).
pub fn local_up_notes(svc: &Service) -> Vec<String> {
    let d = &svc.deploy;
    let mut out = Vec::new();
    let mut note = |key: &str, what: &str| {
        out.push(format!("{}: deploy.{key}: {what}", svc.name));
    };
    if d.is_global() {
        note(
            "mode",
            "global (one task per Swarm node) runs one container here, as docker compose \
             does; use --engine swarm for one per node",
        );
    }
    if d.update_config.is_some() {
        note(
            "update_config",
            "Swarm's rolling update; a local up recreates the containers without it",
        );
    }
    if d.rollback_config.is_some() {
        note(
            "rollback_config",
            "Swarm's rollback; a local up has no rollback",
        );
    }
    if d.endpoint_mode.is_some() {
        note(
            "endpoint_mode",
            "Swarm's service address; local containers are reached by their network \
             aliases",
        );
    }
    if !d.labels.is_empty() {
        note(
            "labels",
            "they label a Swarm service; a local up has no service object (the \
             containers get `labels:`, not these)",
        );
    }
    if svc.resources.cpus_reservation.is_some() {
        note(
            "resources.reservations.cpus",
            "Swarm's scheduling reservation; one engine reserves no CPU for a container \
             (docker compose drops it too): use cpus or cpu_shares",
        );
    }
    if !d.restart_policy.is_empty() {
        note(
            "restart_policy",
            "delay and window are Swarm's restart timing; the engine restarts a container \
             with its own backoff",
        );
    }
    if !svc.placement.is_empty() || !d.placement.is_empty() {
        note(
            "placement",
            "Swarm's node constraints; a local up runs on this engine",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, Project, load_str};

    fn load(deploy: &str) -> Result<Project, String> {
        let opts = LoadOptions {
            project_name: Some("t".into()),
            ..LoadOptions::default()
        };
        let src = format!("services:\n  a:\n    image: i\n    deploy:\n{deploy}");
        load_str(&src, std::path::Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn swarm_keys_are_read_and_named_for_a_local_up() {
        let p = load(
            "      mode: global\n      endpoint_mode: dnsrr\n      labels: {a: b}\n      \
             update_config: {parallelism: 2, delay: 1s}\n      rollback_config: {order: \
             start-first}\n      placement: {constraints: ['node.role == manager'], \
             preferences: [{spread: node.labels.zone}], max_replicas_per_node: 1}\n      \
             restart_policy: {condition: any, delay: 3s, window: 20s}\n      \
             resources: {reservations: {cpus: '0.5'}}\n",
        )
        .unwrap();
        let a = &p.services["a"];
        assert!(a.deploy.is_global());
        assert_eq!(
            a.deploy.update_config.as_ref().unwrap().parallelism,
            Some(2)
        );
        let notes = super::local_up_notes(a);
        for key in [
            "mode",
            "update_config",
            "rollback_config",
            "endpoint_mode",
            "labels",
            "placement",
            "restart_policy",
            "resources.reservations.cpus",
        ] {
            assert!(
                notes
                    .iter()
                    .any(|n| n.starts_with(&format!("a: deploy.{key}: "))),
                "{key}: {notes:?}"
            );
        }
        assert_eq!(notes.len(), 8, "{notes:?}");
        assert_eq!(
            a.deploy.placement.preferences,
            vec!["node.labels.zone".to_string()]
        );
        assert_eq!(a.deploy.placement.max_replicas_per_node, Some(1));
        assert_eq!(
            a.deploy.restart_policy.window,
            Some(std::time::Duration::from_secs(20))
        );
        assert!(
            super::local_up_notes(&load("      replicas: 2\n").unwrap().services["a"]).is_empty()
        );
    }

    #[test]
    fn bad_swarm_keys_name_the_line_value_and_fix() {
        for (body, want) in [
            (
                "      mode: global\n      replicas: 2\n",
                "6:17: services.a.deploy.replicas: replicas can only be used with replicated mode",
            ),
            (
                "      mode: replicated-job\n",
                "services.a.deploy.mode: invalid deploy mode \"replicated-job\": use replicated or global",
            ),
            (
                "      endpoint_mode: rr\n",
                "invalid endpoint_mode \"rr\": use vip or dnsrr",
            ),
            (
                "      update_config: {order: first}\n",
                "services.a.deploy.update_config.order: invalid order \"first\": use start-first or stop-first",
            ),
            (
                "      rollback_config: {failure_action: rollback}\n",
                "invalid failure_action \"rollback\": use continue or pause",
            ),
            (
                "      update_config: {max_failure_ratio: 2}\n",
                "invalid max_failure_ratio \"2\": write a number from 0 to 1",
            ),
            (
                "      update_config: {paralelism: 2}\n",
                "unknown update_config key `paralelism`",
            ),
            (
                "      restart_policy: {condition: any, windw: 5s}\n",
                "5:40: services.a.deploy.restart_policy.windw: unknown restart_policy key \
                 `windw`; allowed: condition, delay, max_attempts, window",
            ),
            (
                "      restart_policy: {delay: soon}\n",
                "services.a.deploy.restart_policy.delay",
            ),
            (
                "      placement: {prefs: []}\n",
                "unknown placement key `prefs`; allowed: constraints, preferences, \
                 max_replicas_per_node",
            ),
            (
                "      placement: {preferences: [{pack: node.id}]}\n",
                "services.a.deploy.placement.preferences[0]: a placement preference is \
                 `{spread: node.labels.zone}`",
            ),
        ] {
            let err = load(body).unwrap_err();
            assert!(err.contains(want), "{body}\n  want: {want}\n  got: {err}");
        }
    }
}
