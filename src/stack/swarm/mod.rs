//! `--engine swarm`: the compose stack as Swarm services, as `docker stack deploy` makes
//! them: an overlay network per project network, one service `<project>_<service>` per
//! compose service with its replicas, limits and reservations (GPUs as the `NVIDIA-GPU`
//! generic resource), restart policy, placement constraints, health check and volumes;
//! images used as they are on the node (no digest is resolved, no registry is asked).
//!
//! Tasks' containers carry the compose project and service labels too, so osmen's
//! collectors, console and advisor see a Swarm stack as they see their own. A port the
//! file publishes on loopback only is not published: Swarm's ingress listens on every
//! address, and osmen does not widen what the file restricts (it says so).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::compose::deploy::UpdateConfig;
use super::compose::{MountKind, Project, Restart, Service};
use super::plan;
use crate::stack::engine::{DockerEngine, EResult, EngineError, ServiceSpec, SwarmService, Task};

mod spec;

pub use spec::service_spec;

pub const LABEL_NAMESPACE: &str = "com.docker.stack.namespace";
/// The digest of the spec osmen last deployed from the file. The engine's answer cannot
/// be compared with the spec itself: it fills in defaults, names networks by id, and
/// bollard drops the health check when it reads a service back (the engine writes
/// `Healthcheck`, bollard's model reads `HealthCheck`).
pub const LABEL_SPEC_HASH: &str = "io.osmen.spec-hash";

/// `<project>_<service>`, as `docker stack deploy` names services.
pub fn service_name(project: &Project, svc: &str) -> String {
    format!("{}_{svc}", project.name)
}

/// The overlay network a project network becomes.
pub fn network_name(project: &Project, key: &str) -> String {
    project
        .networks
        .get(key)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| format!("{}_{key}", project.name))
}

fn ns_filter(project: &Project) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_NAMESPACE}={}", project.name)],
    )])
}

/// The project's Swarm services (those labelled with its namespace).
async fn project_services(engine: &DockerEngine, project: &Project) -> EResult<Vec<SwarmService>> {
    engine.swarm_services(ns_filter(project)).await
}

/// Refuses with the command that fixes it when the engine is not a Swarm manager.
pub async fn require_manager(engine: &DockerEngine) -> EResult<()> {
    if !engine.swarm_manager().await? {
        return Err(EngineError::Other(
            "--engine swarm: this engine is not a Swarm manager; make it one with \
             `docker swarm init` (or run osmen against a manager's DOCKER_HOST)"
                .into(),
        ));
    }
    Ok(())
}

/// Creates the overlay networks, then creates or updates each service. Lines to show.
pub async fn deploy(
    engine: &DockerEngine,
    project: &Project,
    targets: &std::collections::BTreeSet<String>,
    mut record: impl FnMut(&str, &str, &str) -> EResult<()>,
) -> EResult<Vec<String>> {
    require_manager(engine).await?;
    let mut out = Vec::new();
    let mut nets: std::collections::BTreeSet<String> = Default::default();
    for t in targets {
        let svc = &project.services[t];
        if svc.networks.is_empty() {
            nets.insert("default".into());
        }
        nets.extend(svc.networks.keys().cloned());
    }
    for key in nets {
        if project.networks.get(&key).is_some_and(|n| n.external) {
            continue;
        }
        let name = network_name(project, &key);
        let existing = engine.network_driver(&name).await;
        if let Some(driver) = &existing
            && driver.as_deref() != Some("overlay")
        {
            return Err(EngineError::Other(format!(
                "network {name} exists as a {} network (a compose-mode `osmen up` made \
                 it?): run `osmen down` first, or use another project name (-p)",
                driver.as_deref().unwrap_or("local")
            )));
        }
        if existing.is_none() {
            record("", "network", &format!("create overlay network {name}"))?;
            let labels = HashMap::from([(LABEL_NAMESPACE.into(), project.name.clone())]);
            engine.create_overlay_network(&name, labels).await?;
            out.push(format!("network {name} created (overlay)"));
        }
    }
    let existing = project_services(engine, project).await?;
    for t in targets {
        let svc = &project.services[t];
        if let Some(b) = &svc.balance {
            out.push(format!(
                "warning: {t}: not deployed: it balances {}'s replicas, which Swarm's \
                 service address does itself",
                b.service
            ));
            continue;
        }
        let (spec, warnings) =
            service_spec(project, svc).map_err(|e| EngineError::Other(e.to_string()))?;
        out.extend(warnings.into_iter().map(|w| format!("warning: {w}")));
        let wants_nnp = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.privileges.as_ref())
            .and_then(|p| p.no_new_privileges)
            == Some(true);
        let name = service_name(project, t);
        let current = existing
            .iter()
            .find(|s| s.spec.as_ref().and_then(|x| x.name.as_deref()) == Some(name.as_str()));
        match current {
            Some(s) => {
                let version = s.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                let label = |x: Option<&ServiceSpec>| {
                    x.and_then(|x| x.labels.as_ref())
                        .and_then(|l| l.get(LABEL_SPEC_HASH))
                        .cloned()
                };
                if label(s.spec.as_ref()).is_some() && label(s.spec.as_ref()) == label(Some(&spec))
                {
                    out.push(format!("{name}: unchanged"));
                    continue;
                }
                record(t, "update", &format!("update service {name}"))?;
                put(engine, &name, spec, version).await?;
                out.push(format!("{name}: updated"));
            }
            None => {
                record(t, "create", &format!("create service {name}"))?;
                engine.create_service(spec).await?;
                out.push(format!("{name}: created"));
            }
        }
        if wants_nnp && !engine_kept_no_new_privileges(engine, &name).await {
            out.push(format!(
                "warning: {t}: security_opt no-new-privileges: this engine dropped the \
                 service's Privileges.NoNewPrivileges (Engine API 1.46, Docker 27, takes it); \
                 its tasks run without it"
            ));
        }
    }
    Ok(out)
}

/// Whether the engine stored `NoNewPrivileges` (older engines drop the field unread).
async fn engine_kept_no_new_privileges(engine: &DockerEngine, name: &str) -> bool {
    let svc = engine.inspect_service(name).await;
    svc.ok()
        .and_then(|s| s.spec)
        .and_then(|s| s.task_template)
        .and_then(|t| t.container_spec)
        .and_then(|c| c.privileges)
        .and_then(|p| p.no_new_privileges)
        == Some(true)
}

/// Changes one service's replicas and/or CPU and memory limits in place (a service
/// update: Swarm replaces its tasks one by one).
pub async fn update(
    engine: &DockerEngine,
    project: &Project,
    svc: &str,
    replicas: Option<u32>,
    cpus: Option<f64>,
    memory: Option<u64>,
) -> EResult<()> {
    let name = service_name(project, svc);
    let cur = engine.inspect_service(&name).await?;
    let mut spec = cur.spec.unwrap_or_default();
    let version = cur.version.and_then(|v| v.index).unwrap_or(0);
    // bollard read the service back without its health check: the file's goes back in,
    // or this update would remove it.
    if let Some(hc) = project
        .services
        .get(svc)
        .and_then(|s| s.healthcheck.as_ref())
        && let Some(c) = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        && c.health_check.is_none()
    {
        c.health_check = Some(crate::stack::engine::health_config(hc));
    }
    // No longer what the file says: the next `up` puts the file's figures back.
    spec.labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_SPEC_HASH.into(), "changed-since-up".into());
    if let (Some(_), Some(m)) = (replicas, spec.mode.as_ref())
        && m.global.is_some()
    {
        return Err(EngineError::Other(format!(
            "{name} is a global service (deploy.mode: global, one task per node): it has no \
             replica count to scale; set mode: replicated in the file to scale it"
        )));
    }
    if let Some(n) = replicas {
        let mode = spec.mode.get_or_insert_with(Default::default);
        mode.replicated
            .get_or_insert_with(Default::default)
            .replicas = Some(n as i64);
    }
    if cpus.is_some() || memory.is_some() {
        let tt = spec.task_template.get_or_insert_with(Default::default);
        let res = tt.resources.get_or_insert_with(Default::default);
        let lim = res.limits.get_or_insert_with(Default::default);
        if let Some(c) = cpus {
            lim.nano_cpus = Some((c * 1e9).round() as i64);
        }
        if let Some(m) = memory {
            lim.memory_bytes = Some(m as i64);
        }
    }
    put(engine, &name, spec, version).await
}

/// Replaces a service's spec, at the version it was read at (the engine refuses a
/// stale one rather than lose another writer's change).
async fn put(engine: &DockerEngine, name: &str, spec: ServiceSpec, version: u64) -> EResult<()> {
    engine.update_service(name, spec, version).await
}

/// One task as `ps` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskRow {
    pub service: String,
    pub slot: Option<i64>,
    pub node: String,
    pub state: String,
    pub desired: String,
    pub error: Option<String>,
    pub container: Option<String>,
}

/// The project's services (name, desired replicas, running tasks, an update rolling)
/// and their tasks, the node of each named.
pub async fn tasks(
    engine: &DockerEngine,
    project: &Project,
) -> EResult<(Vec<(String, u64, u64, bool)>, Vec<TaskRow>)> {
    let services = project_services(engine, project).await?;
    let nodes: HashMap<String, String> = engine.node_hostnames().await?;
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for s in &services {
        let Some(id) = s.id.clone() else { continue };
        let name = s
            .spec
            .as_ref()
            .and_then(|x| x.name.clone())
            .unwrap_or_default();
        let mode = s.spec.as_ref().and_then(|x| x.mode.as_ref());
        let global = mode.is_some_and(|m| m.global.is_some());
        let mut desired = mode
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
            .unwrap_or(0) as u64;
        let ts: Vec<Task> = engine.service_tasks(id).await?;
        let mut running = 0;
        for t in ts {
            let st = t.status.clone().unwrap_or_default();
            let state = st.state.map(|s| s.to_string()).unwrap_or_default();
            let desired_state = t.desired_state.map(|s| s.to_string()).unwrap_or_default();
            // Only tasks meant to run count: an old task still running while Swarm
            // replaces it is not one of the wanted replicas.
            if state == "running" && desired_state == "running" {
                running += 1;
            }
            // A global service wants one task per eligible node: those Swarm made.
            if global && desired_state == "running" {
                desired += 1;
            }
            // Old tasks Swarm keeps for history are left out, as `docker service ps` does
            // by default with --filter desired-state=running.
            if desired_state != "running" && desired_state != "ready" {
                continue;
            }
            rows.push(TaskRow {
                service: name.clone(),
                slot: t.slot,
                node: t
                    .node_id
                    .as_ref()
                    .and_then(|n| nodes.get(n).cloned())
                    .unwrap_or_else(|| "(unassigned)".into()),
                state,
                desired: desired_state,
                error: st.err.or(st.message.filter(|m| !m.is_empty())),
                container: st
                    .container_status
                    .and_then(|c| c.container_id)
                    .map(|c| c.chars().take(12).collect()),
            });
        }
        // While an update rolls, the old tasks may still make up the count.
        let rolling = s
            .update_status
            .as_ref()
            .and_then(|u| u.state.as_ref())
            .is_some_and(|st| matches!(st.to_string().as_str(), "updating" | "rollback_started"));
        // Before Swarm made its tasks, a global service still wants one.
        if global {
            desired = desired.max(1);
        }
        summary.push((name, desired, running, rolling));
    }
    summary.sort();
    rows.sort_by(|a, b| (&a.service, a.slot).cmp(&(&b.service, b.slot)));
    Ok((summary, rows))
}

/// Removes the project's services and overlay networks; volumes stay.
pub async fn remove(
    engine: &DockerEngine,
    project: &Project,
    mut record: impl FnMut(&str, &str, &str) -> EResult<()>,
) -> EResult<usize> {
    require_manager(engine).await?;
    let services = project_services(engine, project).await?;
    for s in &services {
        let name = s
            .spec
            .as_ref()
            .and_then(|x| x.name.clone())
            .unwrap_or_default();
        record("", "remove", &format!("remove service {name}"))?;
        engine.delete_service(&name).await?;
    }
    let nets = engine.network_names(ns_filter(project)).await?;
    for name in nets {
        record("", "network", &format!("remove network {name}"))?;
        // Tasks take a moment to leave the network after their service is gone.
        for attempt in 0..20 {
            match engine.remove_swarm_network(&name).await {
                Ok(()) => break,
                Err(_) if attempt < 19 => {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(services.len())
}
