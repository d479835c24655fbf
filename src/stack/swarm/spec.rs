//! The Swarm service spec of a compose service: its container, resources, restart
//! policy, networks, ports, placement and update order, and the warnings for what Swarm
//! has no field for.

use super::*;

fn ns(d: std::time::Duration) -> i64 {
    d.as_nanos() as i64
}

/// The container settings a Swarm ContainerSpec has a field for; the others are named
/// in a warning (Swarm tasks run without them).
pub(super) fn carry_settings(svc: &Service, container: &mut Value, warnings: &mut Vec<String>) {
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
pub(super) fn is_no_new_privileges(opt: &str) -> bool {
    matches!(
        opt,
        "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
    )
}

/// A compose `update_config` / `rollback_config` over osmen's defaults for the service.
pub(super) fn update_config(u: Option<&UpdateConfig>, stateful: bool, rollback: bool) -> Value {
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
pub(super) fn endpoint_ports(svc: &Service, warnings: &mut Vec<String>) -> Vec<Value> {
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

/// A service whose settings make no spec the engine's types accept.
#[derive(Debug, thiserror::Error)]
#[error("{service}: cannot make its Swarm spec: {source}")]
pub struct SpecError {
    pub service: String,
    pub source: serde_json::Error,
}

/// One compose service as a Swarm service spec, and what could not be kept.
pub fn service_spec(
    project: &Project,
    svc: &Service,
) -> Result<(ServiceSpec, Vec<String>), SpecError> {
    let mut warnings = Vec::new();
    let c = plan::container_spec(project, svc, 1);
    let container = container_json(project, svc, &c, &mut warnings);
    let (limits, reservations) = resources_json(svc, &mut warnings);
    let restart = restart_json(svc);
    let nets = networks_json(project, svc);
    let ports = endpoint_ports(svc, &mut warnings);
    let stateful = svc.volumes.iter().any(|m| m.kind == MountKind::Volume);
    let placement = placement_json(svc);
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
            crate::stack::engine::LABEL_PROJECT: project.name,
            crate::stack::engine::LABEL_SERVICE: svc.name,
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
    let spec: ServiceSpec = serde_json::from_value(spec).map_err(|source| SpecError {
        service: svc.name.clone(),
        source,
    })?;
    Ok((spec, warnings))
}

/// The task's ContainerSpec: image, labels, environment, mounts, command, health check
/// and the container settings Swarm has a field for.
fn container_json(
    project: &Project,
    svc: &Service,
    c: &crate::stack::engine::ContainerSpec,
    warnings: &mut Vec<String>,
) -> Value {
    let mut container_labels: HashMap<String, String> = c.labels.clone();
    // Not one container's number: a task's slot is not known here.
    container_labels.remove(crate::stack::engine::LABEL_NUMBER);
    container_labels.insert(LABEL_NAMESPACE.into(), project.name.clone());
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|mount| swarm_mount(project, svc, mount, warnings))
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
            serde_json::to_value(crate::stack::engine::health_config(h)).unwrap_or(Value::Null);
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
    carry_settings(svc, &mut container, warnings);
    container
}

/// Limits and reservations (GPUs as the `NVIDIA-GPU` generic resource).
fn resources_json(svc: &Service, warnings: &mut Vec<String>) -> (Value, Value) {
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
    (limits, reservations)
}

/// The restart policy, with the file's delay and window.
fn restart_json(svc: &Service) -> Value {
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
    restart
}

/// The overlay networks the task joins, the service's name first among its aliases.
fn networks_json(project: &Project, svc: &Service) -> Vec<Value> {
    if svc.networks.is_empty() {
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
    }
}

/// Placement: constraints, spread preferences, replicas per node.
fn placement_json(svc: &Service) -> Value {
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
    placement
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
