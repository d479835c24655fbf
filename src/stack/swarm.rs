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
use super::engine::{DockerEngine, EResult, EngineError, ServiceSpec, SwarmService, Task};
use super::plan;

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

fn ns(d: std::time::Duration) -> i64 {
    d.as_nanos() as i64
}

/// The container settings a Swarm ContainerSpec has a field for; the others are named
/// in a warning (Swarm tasks run without them).
fn carry_settings(svc: &Service, container: &mut Value, warnings: &mut Vec<String>) {
    let st = &svc.settings;
    let mut carried = Vec::new();
    let mut set = |key: &'static str, field: &str, v: Value| {
        container[field] = v;
        carried.push(key);
    };
    if let Some(h) = &st.hostname {
        set("hostname", "Hostname", json!(h));
    }
    if let Some(t) = st.tty {
        set("tty", "TTY", json!(t));
    }
    if let Some(o) = st.stdin_open {
        set("stdin_open", "OpenStdin", json!(o));
    }
    if let Some(r) = st.read_only {
        set("read_only", "ReadOnly", json!(r));
    }
    if !st.group_add.is_empty() {
        set("group_add", "Groups", json!(st.group_add));
    }
    if !st.cap_add.is_empty() {
        set("cap_add", "CapabilityAdd", json!(st.cap_add));
    }
    if !st.cap_drop.is_empty() {
        set("cap_drop", "CapabilityDrop", json!(st.cap_drop));
    }
    if !st.sysctls.is_empty() {
        set("sysctls", "Sysctls", json!(st.sysctls));
    }
    if !st.ulimits.is_empty() {
        let l: Vec<Value> = st
            .ulimits
            .iter()
            .map(|(n, u)| json!({"Name": n, "Soft": u.soft, "Hard": u.hard}))
            .collect();
        set("ulimits", "Ulimits", json!(l));
    }
    if !st.extra_hosts.is_empty() {
        // Swarm writes hosts as /etc/hosts lines: "IP HOST".
        let h: Vec<String> = st
            .extra_hosts
            .iter()
            .filter_map(|e| e.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
            .collect();
        set("extra_hosts", "Hosts", json!(h));
    }
    let mut dns = json!({});
    for (key, field, v) in [
        ("dns", "Nameservers", &st.dns),
        ("dns_search", "Search", &st.dns_search),
        ("dns_opt", "Options", &st.dns_opt),
    ] {
        if !v.is_empty() {
            dns[field] = json!(v);
            carried.push(key);
        }
    }
    if dns.as_object().is_some_and(|o| !o.is_empty()) {
        container["DNSConfig"] = dns;
    }
    let (nnp, other_opts): (Vec<&String>, Vec<&String>) = st
        .security_opt
        .iter()
        .partition(|o| is_no_new_privileges(o));
    if !nnp.is_empty() {
        container["Privileges"] = json!({"NoNewPrivileges": true});
    }
    if other_opts.is_empty() && !nnp.is_empty() {
        carried.push("security_opt");
    }
    for o in &other_opts {
        warnings.push(format!(
            "{}: security_opt {o:?}: a Swarm service has no form for it; its tasks run \
             without it",
            svc.name
        ));
    }
    for (key, grants) in [("secrets", &svc.secrets), ("configs", &svc.configs)] {
        for g in grants {
            warnings.push(format!(
                "{}: {key}: {:?} is not deployed to Swarm by osmen; create it with \
                 `docker {} create` and grant it to the service ({})",
                svc.name,
                g.source,
                &key[..key.len() - 1],
                g.target
            ));
        }
    }
    for key in st.set_keys() {
        if !carried.contains(&key) && key != "security_opt" {
            warnings.push(format!(
                "{}: {key}: a Swarm service has no form for it; its tasks run without it",
                svc.name
            ));
        }
    }
}

/// One mount of a task's ContainerSpec, with its bind, volume and tmpfs options; what a
/// Swarm mount has no form for is named.
fn swarm_mount(
    project: &Project,
    svc: &Service,
    m: &crate::stack::compose::Mount,
    warnings: &mut Vec<String>,
) -> Value {
    let t = match m.kind {
        MountKind::Volume => "volume",
        MountKind::Bind => "bind",
        MountKind::Tmpfs => "tmpfs",
    };
    let mut out = json!({"Type": t, "Target": m.target, "ReadOnly": m.read_only});
    if let Some(s) = &m.source {
        out["Source"] = json!(s);
    }
    if m.kind == MountKind::Volume {
        out["VolumeOptions"] = json!({"Labels": {LABEL_NAMESPACE: project.name}});
    }
    if let Some(v) = &m.volume {
        if v.nocopy {
            out["VolumeOptions"]["NoCopy"] = json!(true);
        }
        if let Some(p) = &v.subpath {
            out["VolumeOptions"]["Subpath"] = json!(p);
        }
    }
    if let Some(b) = &m.bind {
        if let Some(p) = &b.propagation {
            out["BindOptions"] = json!({"Propagation": p});
        }
        if b.create_host_path {
            warnings.push(format!(
                "{}: volumes {}: a Swarm bind does not create a missing host directory; \
                 create it on every node",
                svc.name, m.target
            ));
        }
        if b.selinux.is_some() {
            warnings.push(format!(
                "{}: volumes {}: a Swarm mount has no SELinux relabel (z, Z); its tasks run \
                 without it",
                svc.name, m.target
            ));
        }
    }
    if let Some(t) = &m.tmpfs {
        let mut o = json!({});
        if let Some(n) = t.size {
            o["SizeBytes"] = json!(n);
        }
        if let Some(mode) = t.mode {
            o["Mode"] = json!(mode);
        }
        out["TmpfsOptions"] = o;
    }
    out
}

/// `no-new-privileges`, `no-new-privileges:true` (or `=true`).
fn is_no_new_privileges(opt: &str) -> bool {
    matches!(
        opt,
        "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
    )
}

/// A compose `update_config` / `rollback_config` over osmen's defaults for the service.
fn update_config(u: Option<&UpdateConfig>, stateful: bool, rollback: bool) -> Value {
    let mut v = json!({
        "Parallelism": 1,
        "Order": if stateful { "stop-first" } else { "start-first" },
        "FailureAction": "pause",
    });
    if rollback && u.is_none() {
        return Value::Null;
    }
    let Some(u) = u else { return v };
    if let Some(p) = u.parallelism {
        v["Parallelism"] = json!(p);
    }
    if let Some(d) = u.delay {
        v["Delay"] = json!(ns(d));
    }
    if let Some(m) = u.monitor {
        v["Monitor"] = json!(ns(m));
    }
    if let Some(a) = &u.failure_action {
        v["FailureAction"] = json!(a);
    }
    if let Some(r) = u.max_failure_ratio {
        v["MaxFailureRatio"] = json!(r);
    }
    if let Some(o) = &u.order {
        v["Order"] = json!(o);
    }
    v
}

/// The service's published ports as Swarm `PortConfig`s. A host range is published port
/// by port, as `docker stack deploy` does (Swarm picks no port in a range); a port the
/// file publishes on one address only is left out and named.
fn endpoint_ports(svc: &Service, warnings: &mut Vec<String>) -> Vec<Value> {
    let mut ports = Vec::new();
    for p in &svc.ports {
        if let Some(ip) = p.host_ip.as_deref()
            && ip != "0.0.0.0"
            && ip != "::"
        {
            warnings.push(format!(
                "{}: port {} is published on {ip} only in the file; Swarm's ingress listens \
                 on every address, so it is not published (reach it on the overlay network, \
                 or publish it without an address)",
                svc.name, p.target
            ));
            continue;
        }
        let entry = |published: Option<u16>| {
            let mut e = json!({
                "Protocol": p.protocol,
                "TargetPort": p.target,
                "PublishMode": p.mode.as_deref().unwrap_or("ingress"),
            });
            if let Some(n) = &p.name {
                e["Name"] = json!(n);
            }
            if let Some(pp) = published {
                e["PublishedPort"] = json!(pp);
            }
            e
        };
        match p.published {
            None => ports.push(entry(None)),
            Some(h) => ports.extend((h.start..=h.end).map(|n| entry(Some(n)))),
        }
        if p.app_protocol.is_some() {
            warnings.push(format!(
                "{}: port {}: app_protocol has no Swarm form; it is left out",
                svc.name, p.target
            ));
        }
    }
    ports
}

/// One compose service as a Swarm service spec, and what could not be kept.
pub fn service_spec(
    project: &Project,
    svc: &Service,
) -> Result<(ServiceSpec, Vec<String>), String> {
    let mut warnings = Vec::new();
    let c = plan::container_spec(project, svc, 1);
    let mut container_labels: HashMap<String, String> = c.labels.clone();
    // Not one container's number: a task's slot is not known here.
    container_labels.remove(super::engine::LABEL_NUMBER);
    container_labels.insert(LABEL_NAMESPACE.into(), project.name.clone());
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|mount| swarm_mount(project, svc, mount, &mut warnings))
        .collect();
    let mut container = json!({
        "Image": c.image,
        "Labels": container_labels,
        "Env": c.env,
        "Mounts": mounts,
    });
    if let Some(ep) = &c.entrypoint {
        container["Command"] = json!(ep);
    }
    if let Some(cmd) = &c.cmd {
        container["Args"] = json!(cmd);
    }
    if let Some(h) = &c.healthcheck {
        container["HealthCheck"] =
            serde_json::to_value(super::engine::health_config(h)).unwrap_or(Value::Null);
    }
    if let Some(g) = svc.stop_grace_period {
        container["StopGracePeriod"] = json!(ns(g));
    }
    for (k, v) in [
        ("StopSignal", &c.stop_signal),
        ("Dir", &c.working_dir),
        ("User", &c.user),
    ] {
        if let Some(v) = v {
            container[k] = json!(v);
        }
    }
    if let Some(i) = c.init {
        container["Init"] = json!(i);
    }
    carry_settings(svc, &mut container, &mut warnings);
    let r = &svc.resources;
    let mut limits = json!({});
    if let Some(cpus) = r.cpus {
        limits["NanoCPUs"] = json!((cpus * 1e9).round() as i64);
    }
    if let Some(m) = r.memory {
        limits["MemoryBytes"] = json!(m);
    }
    let mut reservations = json!({});
    if let Some(cpus) = r.cpus_reservation {
        reservations["NanoCPUs"] = json!((cpus * 1e9).round() as i64);
    }
    if let Some(m) = r.memory_reservation {
        reservations["MemoryBytes"] = json!(m);
    }
    let gpus: i64 = r
        .gpus
        .iter()
        .filter(|g| g.driver == "nvidia" || g.driver.is_empty())
        .map(|g| {
            g.count.map(i64::from).unwrap_or_else(|| {
                warnings.push(format!(
                    "{}: `count: all` GPUs has no Swarm form; reserved 1 NVIDIA-GPU",
                    svc.name
                ));
                1
            })
        })
        .sum();
    if gpus > 0 {
        reservations["GenericResources"] =
            json!([{"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": gpus}}]);
    }
    let restart = match &svc.restart {
        Restart::No => json!({"Condition": "none"}),
        Restart::OnFailure(n) => {
            let mut p = json!({"Condition": "on-failure"});
            if let Some(n) = n {
                p["MaxAttempts"] = json!(n);
            }
            p
        }
        Restart::Always | Restart::UnlessStopped => json!({"Condition": "any"}),
    };
    let mut restart = restart;
    let timing = &svc.deploy.restart_policy;
    if let Some(d) = timing.delay {
        restart["Delay"] = json!(ns(d));
    }
    if let Some(w) = timing.window {
        restart["Window"] = json!(ns(w));
    }
    let nets: Vec<Value> = if svc.networks.is_empty() {
        vec![json!({"Target": network_name(project, "default"), "Aliases": [svc.name]})]
    } else {
        svc.networks
            .iter()
            .map(|(k, aliases)| {
                let mut a = aliases.aliases.clone();
                a.insert(0, svc.name.clone());
                json!({"Target": network_name(project, k), "Aliases": a})
            })
            .collect()
    };
    let ports = endpoint_ports(svc, &mut warnings);
    let stateful = svc.volumes.iter().any(|m| m.kind == MountKind::Volume);
    let mut placement = json!({});
    if !svc.placement.is_empty() {
        placement["Constraints"] = json!(svc.placement);
    }
    let spread = &svc.deploy.placement;
    if !spread.preferences.is_empty() {
        let prefs: Vec<Value> = spread
            .preferences
            .iter()
            .map(|s| json!({"Spread": {"SpreadDescriptor": s}}))
            .collect();
        placement["Preferences"] = json!(prefs);
    }
    if let Some(m) = spread.max_replicas_per_node {
        placement["MaxReplicas"] = json!(m);
    }
    let mode = if svc.deploy.is_global() {
        json!({"Global": {}})
    } else {
        json!({"Replicated": {"Replicas": svc.replicas}})
    };
    let spec = json!({
        "Name": service_name(project, &svc.name),
        "Labels": {
            LABEL_NAMESPACE: project.name,
            "com.docker.stack.image": c.image,
            super::engine::LABEL_PROJECT: project.name,
            super::engine::LABEL_SERVICE: svc.name,
        },
        "TaskTemplate": {
            "ContainerSpec": container,
            "Resources": {"Limits": limits, "Reservations": reservations},
            "RestartPolicy": restart,
            "Placement": placement,
            "Networks": nets,
        },
        "Mode": mode,
        // A replica with a volume must stop before its successor mounts it; a stateless
        // one starts its successor first, so an update drops no capacity. The file's
        // update_config and rollback_config override these.
        "UpdateConfig": update_config(svc.deploy.update_config.as_ref(), stateful, false),
        "EndpointSpec": {
            "Mode": svc.deploy.endpoint_mode.as_deref().unwrap_or("vip"),
            "Ports": ports,
        },
    });
    let mut spec = spec;
    let rollback = update_config(svc.deploy.rollback_config.as_ref(), stateful, true);
    if !rollback.is_null() {
        spec["RollbackConfig"] = rollback;
    }
    for (k, v) in &svc.deploy.labels {
        spec["Labels"][k] = json!(v);
    }
    let digest = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(spec.to_string().as_bytes());
        d.iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    spec["Labels"][LABEL_SPEC_HASH] = json!(digest);
    let spec: ServiceSpec = serde_json::from_value(spec)
        .map_err(|e| format!("{}: cannot make its Swarm spec: {e}", svc.name))?;
    Ok((spec, warnings))
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
        let (spec, warnings) = service_spec(project, svc).map_err(EngineError::Other)?;
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
        c.health_check = Some(super::engine::health_config(hc));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};

    #[test]
    fn container_settings_are_carried_or_named() {
        let p = load_str(
            "services:\n  api:\n    image: api:1\n    hostname: h\n    cap_drop: [ALL]\n    \
             read_only: true\n    ulimits: {nofile: 9}\n    extra_hosts: ['db:10.0.0.2']\n    \
             dns: [10.0.0.53]\n    privileged: true\n    pids_limit: 5\n    \
             security_opt: ['no-new-privileges:true', 'seccomp=unconfined']\n    \
             ports: ['8000-8001:80', {target: 81, published: 9000, mode: host, name: web}]\n    \
             deploy:\n      mode: global\n      endpoint_mode: dnsrr\n      \
             labels: {tier: web}\n      update_config: {parallelism: 2, delay: 10s, order: \
             stop-first, failure_action: rollback, monitor: 5s, max_failure_ratio: 0.5}\n      \
             rollback_config: {parallelism: 3}\n      restart_policy: {condition: on-failure, \
             delay: 5s, window: 1m}\n      placement: {preferences: [{spread: \
             node.labels.zone}], max_replicas_per_node: 2}\n",
            std::path::Path::new("/tmp/s/docker-compose.yml"),
            &LoadOptions {
                project_name: Some("st".into()),
                env: Default::default(),
            },
        )
        .unwrap();
        let (spec, warnings) = service_spec(&p, &p.services["api"]).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        let c = &v["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["Hostname"], "h");
        assert_eq!(c["CapabilityDrop"], json!(["ALL"]));
        assert_eq!(c["ReadOnly"], true);
        assert_eq!(
            c["Ulimits"],
            json!([{"Name": "nofile", "Soft": 9, "Hard": 9}])
        );
        assert_eq!(c["Hosts"], json!(["10.0.0.2 db"]));
        assert_eq!(c["DNSConfig"]["Nameservers"], json!(["10.0.0.53"]));
        assert_eq!(c["Privileges"]["NoNewPrivileges"], true);
        // One line per service and key, naming what Swarm cannot carry.
        for key in [
            "pids_limit",
            "privileged",
            "security_opt \"seccomp=unconfined\"",
        ] {
            let line =
                format!("api: {key}: a Swarm service has no form for it; its tasks run without it");
            assert!(warnings.contains(&line), "{line}\n{warnings:?}");
        }
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert_eq!(v["Mode"], json!({"Global": {}}));
        assert_eq!(v["EndpointSpec"]["Mode"], "dnsrr");
        // A host range is published port by port, as `docker stack deploy` does.
        let ports = &v["EndpointSpec"]["Ports"];
        assert_eq!(ports[0]["PublishedPort"], 8000);
        assert_eq!(ports[1]["PublishedPort"], 8001);
        assert_eq!(ports[1]["TargetPort"], 80);
        assert_eq!(ports[2]["PublishMode"], "host");
        assert_eq!(ports[2]["Name"], "web");
        assert_eq!(v["Labels"]["tier"], "web");
        let u = &v["UpdateConfig"];
        assert_eq!(
            (
                &u["Parallelism"],
                &u["Delay"],
                &u["Order"],
                &u["FailureAction"]
            ),
            (
                &json!(2),
                &json!(10_000_000_000i64),
                &json!("stop-first"),
                &json!("rollback")
            )
        );
        assert_eq!(
            (&u["Monitor"], &u["MaxFailureRatio"]),
            (&json!(5_000_000_000i64), &json!(0.5))
        );
        assert_eq!(v["RollbackConfig"]["Parallelism"], 3);
        let tt = &v["TaskTemplate"];
        assert_eq!(
            (
                &tt["RestartPolicy"]["Delay"],
                &tt["RestartPolicy"]["Window"]
            ),
            (&json!(5_000_000_000i64), &json!(60_000_000_000i64))
        );
        assert_eq!(
            tt["Placement"],
            json!({"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                   "MaxReplicas": 2})
        );
    }

    #[test]
    fn secrets_and_configs_swarm_does_not_get_are_named() {
        let p = load_str(
            "services:\n  api:\n    image: api:1\n    secrets: [tok]\n    configs: [app]\n\
             secrets:\n  tok:\n    environment: TOK\nconfigs:\n  app:\n    content: 'x=1'\n",
            std::path::Path::new("/tmp/s/docker-compose.yml"),
            &LoadOptions {
                project_name: Some("st".into()),
                env: [("TOK".to_string(), "t0k".to_string())].into(),
            },
        )
        .unwrap();
        let (_, warnings) = service_spec(&p, &p.services["api"]).unwrap();
        assert_eq!(
            warnings,
            vec![
                "api: secrets: \"tok\" is not deployed to Swarm by osmen; create it with \
                 `docker secret create` and grant it to the service (/run/secrets/tok)"
                    .to_string(),
                "api: configs: \"app\" is not deployed to Swarm by osmen; create it with \
                 `docker config create` and grant it to the service (/app)"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn a_compose_service_becomes_a_swarm_service() {
        let p = load_str(
            "services:\n  api:\n    image: api:1\n    command: [serve]\n    ports: \
             [\"8080:8080\", \"127.0.0.1:9090:9090\"]\n    restart: on-failure:4\n    \
             volumes: [\"data:/data\"]\n    healthcheck:\n      test: [CMD, probe]\n      \
             interval: 2s\n    deploy:\n      replicas: 3\n      placement:\n        \
             constraints: [\"node.role == manager\"]\n      resources:\n        limits: \
             {cpus: \"1.5\", memory: 512M}\n        reservations:\n          cpus: \"0.25\"\n          \
             devices: [{driver: nvidia, count: 2, capabilities: [gpu]}]\nvolumes:\n  data:\n",
            std::path::Path::new("/tmp/s/docker-compose.yml"),
            &LoadOptions {
                project_name: Some("st".into()),
                env: Default::default(),
            },
        )
        .unwrap();
        let (spec, warnings) = service_spec(&p, &p.services["api"]).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["Name"], "st_api");
        assert_eq!(v["Mode"]["Replicated"]["Replicas"], 3);
        let tt = &v["TaskTemplate"];
        assert_eq!(tt["Resources"]["Limits"]["NanoCPUs"], 1_500_000_000i64);
        assert_eq!(tt["Resources"]["Limits"]["MemoryBytes"], 512 << 20);
        assert_eq!(tt["Resources"]["Reservations"]["NanoCPUs"], 250_000_000);
        assert_eq!(
            tt["Resources"]["Reservations"]["GenericResources"][0]["DiscreteResourceSpec"],
            json!({"Kind": "NVIDIA-GPU", "Value": 2})
        );
        assert_eq!(
            tt["RestartPolicy"],
            json!({"Condition": "on-failure", "MaxAttempts": 4})
        );
        assert_eq!(tt["Placement"]["Constraints"][0], "node.role == manager");
        assert_eq!(tt["ContainerSpec"]["Args"][0], "serve");
        assert_eq!(tt["ContainerSpec"]["Mounts"][0]["Source"], "st_data");
        assert_eq!(tt["ContainerSpec"]["Labels"][LABEL_NAMESPACE], "st");
        assert_eq!(
            tt["ContainerSpec"]["HealthCheck"]["Interval"],
            2_000_000_000i64
        );
        assert_eq!(tt["Networks"][0]["Target"], "st_default");
        let ports = v["EndpointSpec"]["Ports"].as_array().unwrap();
        assert_eq!(
            ports.len(),
            1,
            "the loopback-only port is not widened: {ports:?}"
        );
        assert_eq!(ports[0]["PublishedPort"], 8080);
        assert_eq!(v["UpdateConfig"]["Order"], "stop-first");
        assert!(
            warnings.iter().any(|w| w.contains("127.0.0.1 only")),
            "{warnings:?}"
        );
    }
}
