//! The create body: a [`ContainerSpec`] as the Engine API's `ContainerCreateBody`,
//! field by field as `docker compose` writes it, and the settings an older engine would
//! drop refused by version.

use super::*;

pub(super) fn nanos(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| d.as_nanos() as i64)
}

pub(super) fn restart_policy(r: &Restart) -> RestartPolicy {
    let (name, max) = match r {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: max,
    }
}

/// A compose health check as the engine takes it (containers and Swarm tasks alike).
pub fn health_config(h: &Healthcheck) -> HealthConfig {
    HealthConfig {
        test: h.test.as_ref().map(|t| match t {
            HealthTest::Exec(w) => std::iter::once("CMD".to_string())
                .chain(w.iter().cloned())
                .collect(),
            HealthTest::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            HealthTest::Disabled => vec!["NONE".to_string()],
        }),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: nanos(h.start_interval),
    }
}

/// `SOURCE:TARGET:MODE`, the mode `ro` or `rw` with the SELinux relabel and the
/// propagation after it (`/srv/data:/data:rw,z,rslave`).
fn legacy_bind(m: &crate::stack::compose::Mount) -> String {
    let mut mode = vec![if m.read_only { "ro" } else { "rw" }.to_string()];
    if let Some(b) = &m.bind {
        mode.extend(b.selinux.clone());
        mode.extend(b.propagation.clone());
    }
    let source = m.source.as_deref().unwrap_or_default();
    format!("{source}:{}:{}", m.target, mode.join(","))
}

/// One mount as the Mounts API takes it, with its bind, volume and tmpfs options.
fn engine_mount(m: &crate::stack::compose::Mount) -> BMount {
    use bollard::models::{MountBindOptions, MountTmpfsOptions, MountVolumeOptions};
    let propagation = m
        .bind
        .as_ref()
        .and_then(|b| b.propagation.as_deref())
        .map(|p| {
            use bollard::models::MountBindOptionsPropagationEnum as P;
            match p {
                "shared" => P::SHARED,
                "rshared" => P::RSHARED,
                "slave" => P::SLAVE,
                "rslave" => P::RSLAVE,
                "private" => P::PRIVATE,
                _ => P::RPRIVATE,
            }
        });
    BMount {
        target: Some(m.target.clone()),
        source: m.source.clone(),
        typ: Some(match m.kind {
            MountKind::Volume => MountType::VOLUME,
            MountKind::Bind => MountType::BIND,
            MountKind::Tmpfs => MountType::TMPFS,
        }),
        read_only: Some(m.read_only),
        bind_options: propagation.map(|p| MountBindOptions {
            propagation: Some(p),
            ..Default::default()
        }),
        volume_options: m.volume.as_ref().map(|v| MountVolumeOptions {
            no_copy: v.nocopy.then_some(true),
            subpath: v.subpath.clone(),
            ..Default::default()
        }),
        tmpfs_options: m.tmpfs.as_ref().map(|t| MountTmpfsOptions {
            size_bytes: t.size,
            mode: t.mode.map(i64::from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let healthcheck = spec.healthcheck.as_ref().map(health_config);
    let st = &spec.settings;
    let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut exposed = st.exposed_ports();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.published.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    // A bind that creates its missing host directory, or relabels for SELinux, is a
    // legacy `Binds` entry (the Mounts API does neither), as `docker compose` writes it.
    let (legacy, mounts): (Vec<_>, Vec<_>) = spec.mounts.iter().partition(|m| {
        m.creates_host_path() || m.bind.as_ref().is_some_and(|b| b.selinux.is_some())
    });
    let binds: Vec<String> = legacy.iter().map(|m| legacy_bind(m)).collect();
    let mounts = mounts.into_iter().map(engine_mount).collect::<Vec<_>>();
    let device_requests = spec
        .gpus
        .iter()
        .map(|g| DeviceRequest {
            driver: Some(g.driver.clone()),
            count: Some(g.count.map(i64::from).unwrap_or(-1)),
            device_ids: (!g.device_ids.is_empty()).then(|| g.device_ids.clone()),
            capabilities: Some(vec![g.capabilities.clone()]),
            options: None,
        })
        .collect::<Vec<_>>();
    // With network_mode the container joins no network of the project (as in Compose).
    let first_net = st
        .network_mode
        .clone()
        .or_else(|| spec.networks.first().map(|a| a.network.clone()));
    let endpoints: HashMap<String, EndpointSettings> = spec
        .networks
        .iter()
        .take(1)
        .map(|a| {
            let mut ep = endpoint(a);
            // On a user-defined network the engine takes links here and drops
            // HostConfig.Links without a word (docker-compose writes them here too).
            ep.links = non_empty(&spec.links);
            ep.mac_address = a.mac_address.clone().or_else(|| st.mac_address.clone());
            (a.network.clone(), ep)
        })
        .collect();
    let mut host_config = HostConfig {
        nano_cpus: spec.cpus.map(|c| (c * 1e9).round() as i64),
        memory: spec.memory.map(|m| m as i64),
        memory_reservation: spec.memory_reservation.map(|m| m as i64),
        restart_policy: Some(restart_policy(&spec.restart)),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        binds: (!binds.is_empty()).then_some(binds),
        device_requests: (!device_requests.is_empty()).then_some(device_requests),
        network_mode: first_net,
        init: spec.init,
        log_config: spec.log_driver.as_ref().map(|(d, o)| HostConfigLogConfig {
            typ: Some(d.clone()),
            config: Some(o.clone()),
        }),
        // Only the default bridge (`network_mode: bridge`) has legacy links; other modes
        // with links are refused by the engine itself.
        links: st
            .network_mode
            .as_ref()
            .and_then(|_| non_empty(&spec.links)),
        ..Default::default()
    };
    apply_settings(st, &mut host_config);
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone()),
        healthcheck,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        stop_timeout: spec.stop_timeout_s,
        stop_signal: spec.stop_signal.clone(),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        hostname: st.hostname.clone(),
        domainname: st.domainname.clone(),
        tty: st.tty,
        open_stdin: st.stdin_open,
        host_config: Some(host_config),
        networking_config: st.network_mode.is_none().then_some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    }
}

/// One attachment's endpoint: aliases and static addresses (`IPAMConfig`).
pub(super) fn endpoint(a: &Attachment) -> EndpointSettings {
    let static_ip = a.ipv4_address.is_some() || a.ipv6_address.is_some();
    EndpointSettings {
        aliases: Some(a.aliases.clone()),
        ipam_config: (static_ip || !a.link_local_ips.is_empty()).then(|| EndpointIpamConfig {
            ipv4_address: a.ipv4_address.clone(),
            ipv6_address: a.ipv6_address.clone(),
            link_local_ips: non_empty(&a.link_local_ips),
        }),
        driver_opts: hash_map(&a.driver_opts),
        ..Default::default()
    }
}

pub(super) fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

pub(super) fn hash_map(
    m: &std::collections::BTreeMap<String, String>,
) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The service's container settings onto HostConfig, field by field as `docker compose`
/// writes them.
pub(super) fn apply_settings(st: &ContainerSettings, hc: &mut HostConfig) {
    hc.cap_add = non_empty(&st.cap_add);
    hc.cap_drop = non_empty(&st.cap_drop);
    hc.privileged = st.privileged;
    hc.readonly_rootfs = st.read_only;
    hc.security_opt = non_empty(&st.security_opt);
    hc.tmpfs = (!st.tmpfs.is_empty()).then(|| {
        st.tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_string(), opts.to_string()),
                None => (t.clone(), String::new()),
            })
            .collect()
    });
    hc.shm_size = st.shm_size.map(|b| b as i64);
    hc.ulimits = (!st.ulimits.is_empty()).then(|| {
        st.ulimits
            .iter()
            .map(|(name, l)| ResourcesUlimits {
                name: Some(name.clone()),
                soft: Some(l.soft),
                hard: Some(l.hard),
            })
            .collect()
    });
    hc.sysctls = hash_map(&st.sysctls);
    hc.devices = (!st.devices.is_empty()).then(|| {
        st.devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: Some(d.source.clone()),
                path_in_container: Some(d.target.clone()),
                cgroup_permissions: Some(d.permissions.clone()),
            })
            .collect()
    });
    hc.device_cgroup_rules = non_empty(&st.device_cgroup_rules);
    hc.extra_hosts = non_empty(&st.extra_hosts);
    hc.dns = non_empty(&st.dns);
    hc.dns_search = non_empty(&st.dns_search);
    hc.dns_options = non_empty(&st.dns_opt);
    hc.ipc_mode = st.ipc.clone();
    hc.pid_mode = st.pid.clone();
    hc.uts_mode = st.uts.clone();
    hc.cgroupns_mode = st.cgroup.as_deref().map(|c| match c {
        "host" => HostConfigCgroupnsModeEnum::HOST,
        _ => HostConfigCgroupnsModeEnum::PRIVATE,
    });
    hc.group_add = non_empty(&st.group_add);
    hc.oom_score_adj = st.oom_score_adj;
    hc.oom_kill_disable = st.oom_kill_disable;
    hc.cgroup_parent = st.cgroup_parent.clone();
    hc.userns_mode = st.userns_mode.clone();
    hc.runtime = st.runtime.clone();
    hc.cpu_count = st.cpu_count;
    hc.cpu_shares = st.cpu_shares;
    hc.cpu_period = st.cpu_period;
    hc.cpu_quota = st.cpu_quota;
    hc.cpu_realtime_runtime = st.cpu_rt_runtime;
    hc.cpu_realtime_period = st.cpu_rt_period;
    hc.cpuset_cpus = st.cpuset.clone();
    hc.memory_swappiness = st.mem_swappiness;
    hc.memory_swap = st.memswap_limit;
    hc.pids_limit = st.pids_limit;
    hc.storage_opt = hash_map(&st.storage_opt);
    hc.annotations = hash_map(&st.annotations);
    hc.volumes_from = non_empty(&st.volumes_from);
    if let Some(b) = &st.blkio_config {
        let throttle = |l: &[DeviceRate]| {
            (!l.is_empty()).then(|| {
                l.iter()
                    .map(|d| ThrottleDevice {
                        path: Some(d.path.clone()),
                        rate: Some(d.rate),
                    })
                    .collect()
            })
        };
        hc.blkio_weight = b.weight;
        hc.blkio_weight_device = (!b.weight_device.is_empty()).then(|| {
            b.weight_device
                .iter()
                .map(|d| ResourcesBlkioWeightDevice {
                    path: Some(d.path.clone()),
                    weight: Some(usize::from(d.weight)),
                })
                .collect()
        });
        hc.blkio_device_read_bps = throttle(&b.device_read_bps);
        hc.blkio_device_write_bps = throttle(&b.device_write_bps);
        hc.blkio_device_read_iops = throttle(&b.device_read_iops);
        hc.blkio_device_write_iops = throttle(&b.device_write_iops);
    }
}

/// Settings an older engine would drop without a word: refused with the version they
/// need instead.
pub(super) fn check_api(spec: &ContainerSpec, api: (u16, u16)) -> EResult<()> {
    let needs = [
        (
            "annotations",
            !spec.settings.annotations.is_empty(),
            (1, 43),
        ),
        // Below 1.44 the address is the container's Config.MacAddress (docker-compose
        // 1.29 writes it there), a field the API client osmen uses no longer has.
        (
            "mac_address",
            spec.settings.mac_address.is_some()
                || spec.networks.iter().any(|a| a.mac_address.is_some()),
            (1, 44),
        ),
        (
            "volumes[].volume.subpath",
            spec.mounts
                .iter()
                .any(|m| m.volume.as_ref().is_some_and(|v| v.subpath.is_some())),
            (1, 45),
        ),
        (
            "healthcheck.start_interval",
            spec.healthcheck
                .as_ref()
                .is_some_and(|h| h.start_interval.is_some()),
            (1, 44),
        ),
    ];
    for (key, set, (major, minor)) in needs {
        if set && api < (major, minor) {
            let why = if key == "mac_address" {
                "takes it only as the container's Config.MacAddress, which the Engine API \
                 client osmen uses does not write"
            } else {
                "would ignore it"
            };
            return Err(EngineError::Other(format!(
                "{}: `{key}` needs Engine API {major}.{minor} or later in osmen; this engine \
                 speaks {}.{} and {why}. Remove the key or upgrade the engine",
                spec.name, api.0, api.1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};
    use crate::stack::plan::container_spec;
    #[test]
    fn create_body_carries_limits_health_ports_and_gpus() {
        let src = "name: t\nservices:\n  o:\n    image: ollama/ollama\n    \
                   ports: ['127.0.0.1:11434:11434']\n    restart: on-failure:3\n    \
                   healthcheck: {test: [CMD, ollama, list], interval: 15s, retries: 5}\n    \
                   volumes: ['models:/root/.ollama:ro']\n    deploy:\n      resources:\n        \
                   limits: {cpus: '4', memory: 8G}\n        reservations:\n          devices:\n\
                   \x20           - {driver: nvidia, count: all, capabilities: [gpu]}\n\
                   volumes:\n  models:\n";
        let p = load_str(
            src,
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let body = create_body(&container_spec(&p, &p.services["o"], 1));
        let hc = body.host_config.as_ref().unwrap();
        assert_eq!(hc.nano_cpus, Some(4_000_000_000));
        assert_eq!(hc.memory, Some(8 << 30));
        let gpu = &hc.device_requests.as_ref().unwrap()[0];
        assert_eq!(gpu.driver.as_deref(), Some("nvidia"));
        assert_eq!(gpu.count, Some(-1), "count: all is -1 for the engine");
        assert_eq!(gpu.capabilities, Some(vec![vec!["gpu".to_string()]]));
        let rp = hc.restart_policy.as_ref().unwrap();
        assert_eq!(rp.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(rp.maximum_retry_count, Some(3));
        let b = &hc.port_bindings.as_ref().unwrap()["11434/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(b.host_port.as_deref(), Some("11434"));
        let m = &hc.mounts.as_ref().unwrap()[0];
        assert_eq!(m.source.as_deref(), Some("t_models"));
        assert_eq!(m.read_only, Some(true));
        let h = body.healthcheck.as_ref().unwrap();
        assert_eq!(h.test.as_ref().unwrap(), &["CMD", "ollama", "list"]);
        assert_eq!(h.interval, Some(15_000_000_000));
        assert_eq!(hc.network_mode.as_deref(), Some("t_default"));
    }

    fn body_of(src: &str, svc: &str) -> ContainerCreateBody {
        let p = load_str(
            src,
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        create_body(&container_spec(&p, &p.services[svc], 1))
    }

    #[test]
    fn create_body_carries_privileges_limits_and_names_as_compose_does() {
        let body = body_of(
            "name: t\nservices:\n  a:\n    image: i\n    cap_add: [NET_ADMIN]\n    \
             cap_drop: [ALL]\n    privileged: true\n    read_only: true\n    \
             security_opt: ['no-new-privileges:true']\n    tmpfs: ['/run:size=64m', /tmp]\n    \
             shm_size: 1m\n    ulimits: {nofile: {soft: 100, hard: 200}}\n    \
             sysctls: {net.core.somaxconn: 1024}\n    devices: [/dev/null]\n    \
             extra_hosts: {db: 10.0.0.9}\n    dns: [1.1.1.1]\n    dns_search: [x.y]\n    \
             dns_opt: ['ndots:1']\n    hostname: h\n    domainname: d\n    tty: true\n    \
             stdin_open: true\n    ipc: shareable\n    pid: host\n    uts: host\n    \
             cgroup: private\n    expose: ['81']\n    ports: ['8080:80']\n    \
             group_add: [audio]\n    oom_score_adj: 10\n    oom_kill_disable: true\n    \
             cgroup_parent: p\n    userns_mode: host\n    runtime: runc\n    cpu_count: 1\n    \
             cpu_shares: 2\n    cpu_period: 100000\n    cpu_quota: 5000\n    \
             cpu_rt_runtime: 1ms\n    cpu_rt_period: 2ms\n    cpuset: '0-1'\n    \
             mem_swappiness: 0\n    memswap_limit: -1\n    pids_limit: 7\n    \
             storage_opt: {size: 1G}\n    external_links: ['other:o']\n    \
             annotations: {a.b: c}\n    device_cgroup_rules: ['c 1:3 mr']\n    \
             blkio_config: {weight: 300, weight_device: [{path: /dev/sda, weight: 400}], \
             device_read_bps: [{path: /dev/sda, rate: 12mb}], \
             device_write_iops: [{path: /dev/sda, rate: 30}]}\n",
            "a",
        );
        let hc = body.host_config.clone().unwrap();
        assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".into()]));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".into()]));
        assert_eq!(hc.privileged, Some(true));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges:true".into()]));
        let tmpfs = hc.tmpfs.unwrap();
        assert_eq!(tmpfs["/run"], "size=64m");
        assert_eq!(tmpfs["/tmp"], "");
        assert_eq!(hc.shm_size, Some(1 << 20));
        let u = &hc.ulimits.unwrap()[0];
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(100), Some(200))
        );
        assert_eq!(hc.sysctls.unwrap()["net.core.somaxconn"], "1024");
        let d = &hc.devices.unwrap()[0];
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/null"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        assert_eq!(hc.extra_hosts, Some(vec!["db:10.0.0.9".into()]));
        assert_eq!(hc.dns, Some(vec!["1.1.1.1".into()]));
        assert_eq!(hc.dns_search, Some(vec!["x.y".into()]));
        assert_eq!(hc.dns_options, Some(vec!["ndots:1".into()]));
        assert_eq!(hc.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.uts_mode.as_deref(), Some("host"));
        assert_eq!(hc.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::PRIVATE));
        assert_eq!(hc.group_add, Some(vec!["audio".into()]));
        assert_eq!(
            (hc.oom_score_adj, hc.oom_kill_disable),
            (Some(10), Some(true))
        );
        assert_eq!(hc.cgroup_parent.as_deref(), Some("p"));
        assert_eq!(hc.userns_mode.as_deref(), Some("host"));
        assert_eq!(hc.runtime.as_deref(), Some("runc"));
        assert_eq!((hc.cpu_count, hc.cpu_shares), (Some(1), Some(2)));
        assert_eq!((hc.cpu_period, hc.cpu_quota), (Some(100_000), Some(5000)));
        assert_eq!(
            (hc.cpu_realtime_runtime, hc.cpu_realtime_period),
            (Some(1000), Some(2000))
        );
        assert_eq!(hc.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!((hc.memory_swappiness, hc.memory_swap), (Some(0), Some(-1)));
        assert_eq!(hc.pids_limit, Some(7));
        assert_eq!(hc.storage_opt.unwrap()["size"], "1G");
        assert_eq!(hc.links, None, "links go to the network endpoint");
        let ep = &body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap()["t_default"];
        assert_eq!(ep.links, Some(vec!["other:o".into()]));
        assert_eq!(hc.annotations.unwrap()["a.b"], "c");
        assert_eq!(hc.device_cgroup_rules, Some(vec!["c 1:3 mr".into()]));
        assert_eq!(hc.blkio_weight, Some(300));
        assert_eq!(hc.blkio_weight_device.unwrap()[0].weight, Some(400));
        let bps = &hc.blkio_device_read_bps.unwrap()[0];
        assert_eq!(
            (bps.path.as_deref(), bps.rate),
            (Some("/dev/sda"), Some(12 << 20))
        );
        assert_eq!(hc.blkio_device_write_iops.unwrap()[0].rate, Some(30));
        assert_eq!(body.hostname.as_deref(), Some("h"));
        assert_eq!(body.domainname.as_deref(), Some("d"));
        assert_eq!((body.tty, body.open_stdin), (Some(true), Some(true)));
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, ["80/tcp", "81/tcp"]);
    }

    #[test]
    fn network_mode_replaces_the_project_networks() {
        let body = body_of(
            "name: t\nservices:\n  a:\n    image: i\n    network_mode: host\n",
            "a",
        );
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("host")
        );
        assert!(body.networking_config.is_none());
        let body = body_of("name: t\nservices:\n  a:\n    image: i\n", "a");
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("t_default")
        );
    }

    #[test]
    fn settings_an_old_engine_would_drop_are_refused_by_version() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    annotations: {k: v}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(e.contains("`annotations` needs Engine API 1.43"), "{e}");
        assert!(check_api(&spec, (1, 43)).is_ok());
    }

    fn project_in(dir: &std::path::Path, src: &str) -> crate::stack::compose::Project {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pw.txt"), "s3cret").unwrap();
        std::fs::write(dir.join("app.conf"), "listen 80;").unwrap();
        let opts = LoadOptions {
            env: [("TOKEN".to_string(), "tok-123".to_string())].into(),
            ..LoadOptions::default()
        };
        load_str(src, &dir.join("c.yml"), &opts).unwrap()
    }

    #[test]
    fn secrets_and_configs_are_bind_mounted_or_injected_as_compose_does() {
        let dir = std::env::temp_dir().join(format!("osmen-eng-sec-{}", std::process::id()));
        let p = project_in(
            &dir,
            "name: t\nservices:\n  a:\n    image: i\n    secrets:\n      - pw\n      \
             - {source: pw, target: owned, uid: '7', gid: '8', mode: 0400}\n      - token\n    \
             configs:\n      - app\n      - {source: inline, target: etc/inline.conf}\n\
             secrets:\n  pw: {file: pw.txt}\n  token: {environment: TOKEN}\n\
             configs:\n  app: {file: app.conf}\n  inline: {content: 'a = 1'}\n",
        );
        let spec = container_spec(&p, &p.services["a"], 1);
        let body = create_body(&spec);
        let mounts = body.host_config.unwrap().mounts.unwrap();
        let binds: Vec<(String, String, bool)> = mounts
            .iter()
            .map(|m| {
                assert_eq!(m.typ, Some(MountType::BIND));
                (
                    m.source.clone().unwrap(),
                    m.target.clone().unwrap(),
                    m.read_only.unwrap(),
                )
            })
            .collect();
        let abs = |f: &str| {
            std::path::absolute(dir.join(f))
                .unwrap()
                .display()
                .to_string()
        };
        assert_eq!(
            binds,
            vec![
                (abs("pw.txt"), "/run/secrets/pw".into(), true),
                (abs("app.conf"), "/app".into(), true),
            ]
        );
        let files: Vec<(&str, u32, u32, u32)> = spec
            .files
            .iter()
            .map(|f| (f.target.as_str(), f.uid, f.gid, f.mode))
            .collect();
        assert_eq!(
            files,
            vec![
                ("/run/secrets/owned", 7, 8, 0o400),
                ("/run/secrets/token", 0, 0, 0o444),
                ("/etc/inline.conf", 0, 0, 0o444),
            ]
        );
        // The spec is logged: a secret's value never shows in its Debug form.
        assert!(!format!("{spec:?}").contains("tok-123"));
        // The archive holds each file at its path with its owner, mode and bytes.
        let tar = files_tar("t-a-1", &spec.files).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut e, &mut body).unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
                body,
            ));
        }
        assert_eq!(
            seen,
            vec![
                ("run/secrets/owned".into(), 7, 8, 0o400, "s3cret".into()),
                ("run/secrets/token".into(), 0, 0, 0o444, "tok-123".into()),
                ("etc/inline.conf".into(), 0, 0, 0o444, "a = 1".into()),
            ]
        );
        std::fs::remove_file(dir.join("pw.txt")).unwrap();
        let e = files_tar("t-a-1", &spec.files).unwrap_err().to_string();
        assert!(
            e.contains("pw.txt") && e.contains("/run/secrets/owned"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn endpoints_carry_static_addresses_in_priority_order() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    networks:\n      \
             back: {ipv4_address: 10.9.0.5}\n      front:\n        priority: 100\n        \
             ipv4_address: 172.28.5.10\n        ipv6_address: 2001:db8::10\n        \
             link_local_ips: [169.254.1.1]\n        aliases: [web]\n\
             networks:\n  front: {}\n  back: {}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let order: Vec<&str> = spec.networks.iter().map(|a| a.network.as_str()).collect();
        assert_eq!(order, ["t_front", "t_back"], "priority 100 first");
        let body = create_body(&spec);
        assert_eq!(
            body.host_config.unwrap().network_mode.as_deref(),
            Some("t_front")
        );
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        let ep = &eps["t_front"];
        assert_eq!(ep.aliases, Some(vec!["a".to_string(), "web".to_string()]));
        let ipam = ep.ipam_config.as_ref().unwrap();
        assert_eq!(ipam.ipv4_address.as_deref(), Some("172.28.5.10"));
        assert_eq!(ipam.ipv6_address.as_deref(), Some("2001:db8::10"));
        assert_eq!(ipam.link_local_ips, Some(vec!["169.254.1.1".to_string()]));
        // The second network is connected after create with its own address.
        let back = endpoint(&spec.networks[1]);
        assert_eq!(
            back.ipam_config.unwrap().ipv4_address.as_deref(),
            Some("10.9.0.5")
        );
    }

    #[test]
    fn start_interval_and_endpoint_mac_are_refused_below_api_1_44() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    healthcheck:\n      \
             test: [CMD, true]\n      start_interval: 2s\n  b:\n    image: i\n    \
             networks:\n      default: {mac_address: '02:42:ac:11:00:02'}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let spec = container_spec(&p, &p.services["a"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(
            e.contains("`healthcheck.start_interval` needs Engine API 1.44"),
            "{e}"
        );
        assert!(check_api(&spec, (1, 44)).is_ok());
        assert_eq!(
            create_body(&spec).healthcheck.unwrap().start_interval,
            Some(2_000_000_000)
        );
        let spec = container_spec(&p, &p.services["b"], 1);
        let e = check_api(&spec, (1, 41)).unwrap_err().to_string();
        assert!(e.contains("`mac_address` needs Engine API 1.44"), "{e}");
        let eps = create_body(&spec)
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(
            eps["t_default"].mac_address.as_deref(),
            Some("02:42:ac:11:00:02")
        );
    }
}

#[cfg(test)]
mod mount_tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};
    use crate::stack::plan::container_spec;

    /// The options reach the engine: a short-syntax bind (which creates its host path) and
    /// an SELinux relabel as `Binds` entries, the rest as Mounts with their options.
    #[test]
    fn mount_options_reach_the_create_body() {
        let p = load_str(
            "services:\n  a:\n    image: i\n    volumes:\n      - ./d:/a:ro,z\n      \
             - {type: bind, source: /srv/e, target: /e, bind: {propagation: rslave}}\n      \
             - {type: volume, source: v, target: /v, volume: {nocopy: true}}\n      \
             - {type: tmpfs, target: /t, tmpfs: {size: 10m, mode: 0700}}\nvolumes:\n  v: {}\n",
            std::path::Path::new("/x/compose.yml"),
            &LoadOptions {
                project_name: Some("m".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let hc = create_body(&container_spec(&p, &p.services["a"], 1))
            .host_config
            .unwrap();
        assert_eq!(hc.binds, Some(vec!["/x/d:/a:ro,z".to_string()]));
        let m = hc.mounts.unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0].bind_options.as_ref().unwrap().propagation,
            Some(bollard::models::MountBindOptionsPropagationEnum::RSLAVE)
        );
        assert_eq!(m[1].source.as_deref(), Some("m_v"));
        assert_eq!(m[1].volume_options.as_ref().unwrap().no_copy, Some(true));
        let t = m[2].tmpfs_options.as_ref().unwrap();
        assert_eq!((t.size_bytes, t.mode), (Some(10 << 20), Some(0o700)));
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};
    use crate::stack::plan::container_spec;

    #[test]
    fn an_attachments_driver_opts_reach_its_endpoint() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    networks:\n      default:\n        \
             driver_opts: {com.example.opt: 'on'}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let eps = create_body(&container_spec(&p, &p.services["a"], 1))
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(
            eps["t_default"].driver_opts.as_ref().unwrap()["com.example.opt"],
            "on"
        );
    }
}
