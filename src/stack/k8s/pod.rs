//! One service's pod: the container (command, environment, ports, resources, probes),
//! its volumes and claims, and the ConfigMaps they need.

use super::*;

pub(super) fn pod_spec(
    project: &Project,
    svc: &Service,
    opts: &ExportOptions,
    scan: &SecretScan,
    extra: &mut BTreeMap<String, String>,
    one_shot: bool,
    ex: &mut Export,
) -> Pod {
    let name = dns_name(&svc.name);
    let carried = settings::carry(svc, ex);
    let mut c = container(svc, scan, extra, carried.security_context, ex);
    let mut configmaps = environment(project, svc, scan, extra, &mut c, ex);
    let ports = container_port_list(svc);
    if !ports.is_empty() {
        c.insert("ports".into(), json!(ports));
    }
    let res = resources(svc, ex);
    if !res.is_empty() {
        c.insert("resources".into(), Value::Object(res));
    }
    if let Some(hc) = &svc.healthcheck {
        probes(hc, scan, &mut c);
    }
    lifecycle_warnings(svc, ex);
    let Mounts {
        mut mounts,
        mut volumes,
        claims,
        files,
    } = mounts(project, svc, opts, scan, one_shot, ex);
    if !files.is_empty() {
        let cm = format!("{name}-files");
        volumes.push(json!({ "name": "files", "configMap": { "name": cm } }));
        configmaps.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": cm, "labels": labels(&project.name, &name) },
            "data": files,
        }));
    }
    mounts.extend(carried.mounts);
    volumes.extend(carried.volumes);
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), json!(mounts));
    }
    let mut pod = carried.pod;
    if !carried.pod_security.is_empty() {
        pod.insert(
            "securityContext".into(),
            Value::Object(carried.pod_security),
        );
    }
    Pod {
        containers: json!([Value::Object(c)]),
        volumes,
        claims,
        configmaps,
        pod,
    }
}

/// The container's own fields: name, image, command, working directory, user, terminal.
fn container(
    svc: &Service,
    scan: &SecretScan,
    extra: &mut BTreeMap<String, String>,
    mut sc: Map<String, Value>,
    ex: &mut Export,
) -> Map<String, Value> {
    let name = dns_name(&svc.name);
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    c.insert(
        "image".into(),
        json!(svc.image.clone().unwrap_or_else(|| format!("{name}:local"))),
    );
    if let Some(ep) = &svc.entrypoint {
        c.insert("command".into(), json!(scrub_words(svc, ep, scan, extra)));
    }
    if let Some(cmd) = &svc.command {
        c.insert("args".into(), json!(scrub_words(svc, cmd, scan, extra)));
    }
    if let Some(wd) = &svc.working_dir {
        c.insert("workingDir".into(), json!(wd));
    }
    if let Some(user) = &svc.user {
        let (u, g) = user.split_once(':').unwrap_or((user, ""));
        match u.parse::<u64>() {
            Ok(uid) => {
                sc.insert("runAsUser".into(), json!(uid));
            }
            Err(_) => ex.warnings.push(format!(
                "{}: user {user:?} is a name; Kubernetes needs a numeric runAsUser, \
                 so the image's default user runs",
                svc.name
            )),
        }
        if let Ok(gid) = g.parse::<u64>() {
            sc.insert("runAsGroup".into(), json!(gid));
        }
    }
    if !sc.is_empty() {
        c.insert("securityContext".into(), Value::Object(sc));
    }
    if let Some(t) = svc.settings.tty {
        c.insert("tty".into(), json!(t));
    }
    if let Some(i) = svc.settings.stdin_open {
        c.insert("stdin".into(), json!(i));
    }
    c
}

/// Plain environment as a ConfigMap (returned) read through `envFrom`, secret entries
/// as references into the Secret.
fn environment(
    project: &Project,
    svc: &Service,
    scan: &SecretScan,
    extra: &BTreeMap<String, String>,
    c: &mut Map<String, Value>,
    ex: &Export,
) -> Vec<Value> {
    let name = dns_name(&svc.name);
    let secret_name = ex.secret_name.clone();
    let mut configmaps = Vec::new();
    let plain: BTreeMap<&String, &String> = svc
        .environment
        .iter()
        .filter(|(k, _)| !scan.env.contains_key(*k))
        .collect();
    if !plain.is_empty() {
        let cm = format!("{name}-env");
        configmaps.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": cm, "labels": labels(&project.name, &name) },
            "data": plain,
        }));
        c.insert(
            "envFrom".into(),
            json!([{ "configMapRef": { "name": cm } }]),
        );
    }
    let mut secret_env: BTreeMap<String, String> = scan.env.clone();
    secret_env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !secret_env.is_empty() {
        let env: Vec<Value> = secret_env
            .iter()
            .map(|(var, key)| {
                json!({
                    "name": var,
                    "valueFrom": { "secretKeyRef": { "name": secret_name, "key": key } }
                })
            })
            .collect();
        c.insert("env".into(), json!(env));
    }
    configmaps
}

/// The container's ports, named as the file names them, `mode: host` as a hostPort.
fn container_port_list(svc: &Service) -> Vec<Value> {
    container_ports(svc)
        .into_iter()
        .map(|(t, proto)| {
            let mut p = json!({ "containerPort": t, "protocol": proto });
            if let Some(n) = port_field(svc, t, |p| p.name.as_deref()) {
                p["name"] = json!(n);
            }
            // `mode: host` publishes on the node itself, as a hostPort does.
            let host = svc
                .ports
                .iter()
                .find(|p| p.target == t && p.mode.as_deref() == Some("host"));
            if let Some(h) = host.and_then(|p| p.host_port()) {
                p["hostPort"] = json!(h);
            }
            p
        })
        .collect()
}

/// Limits and requests (CPU, memory, NVIDIA GPUs).
fn resources(svc: &Service, ex: &mut Export) -> Map<String, Value> {
    let r = &svc.resources;
    let mut limits = Map::new();
    let mut requests = Map::new();
    if let Some(cpus) = r.cpus {
        limits.insert("cpu".into(), json!(cpu_quantity(cpus)));
    }
    if let Some(mem) = r.memory {
        limits.insert("memory".into(), json!(memory_quantity(mem)));
    }
    // Without a reservation Kubernetes requests the limit; say so explicitly, since the
    // HPA's utilisation is a share of the request.
    if let Some(cpus) = r.cpus_reservation.or(r.cpus) {
        requests.insert("cpu".into(), json!(cpu_quantity(cpus)));
    }
    if let Some(mem) = r.memory_reservation.or(r.memory) {
        requests.insert("memory".into(), json!(memory_quantity(mem)));
    }
    for gpu in &r.gpus {
        if gpu.driver != "nvidia" && !gpu.driver.is_empty() {
            ex.warnings.push(format!(
                "{}: GPU driver {:?} has no Kubernetes resource name here; only nvidia \
                 (nvidia.com/gpu) is exported",
                svc.name, gpu.driver
            ));
            continue;
        }
        let count = match (gpu.count, gpu.device_ids.len()) {
            (Some(n), _) => n.max(1),
            (None, 0) => {
                ex.warnings.push(format!(
                    "{}: `count: all` GPUs has no Kubernetes form; asked for 1 \
                     nvidia.com/gpu (raise it to the node's GPU count)",
                    svc.name
                ));
                1
            }
            (None, n) => n as u32,
        };
        let prev = limits
            .get("nvidia.com/gpu")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        limits.insert("nvidia.com/gpu".into(), json!(prev + count as u64));
    }
    let mut res = Map::new();
    if !requests.is_empty() {
        res.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        res.insert("limits".into(), Value::Object(limits));
    }
    res
}

/// What Kubernetes does otherwise than compose: restart conditions and start order.
fn lifecycle_warnings(svc: &Service, ex: &mut Export) {
    if matches!(svc.restart, Restart::OnFailure(_)) {
        ex.warnings.push(format!(
            "{}: restart {} has no Deployment form; Kubernetes always restarts the pod",
            svc.name,
            svc.restart.as_compose()
        ));
    }
    if !svc.depends_on.is_empty() {
        let deps: Vec<&str> = svc.depends_on.keys().map(String::as_str).collect();
        ex.warnings.push(format!(
            "{}: depends_on {} is not ordered by Kubernetes; the readiness probes gate \
             traffic instead",
            svc.name,
            deps.join(", ")
        ));
    }
}

/// The pod's mounts and what they mount.
struct Mounts {
    mounts: Vec<Value>,
    volumes: Vec<Value>,
    claims: Vec<Value>,
    /// Small bind-mounted text files, for the `files` ConfigMap.
    files: BTreeMap<String, String>,
}

/// The service's volumes as mounts, volumes and claim templates.
fn mounts(
    project: &Project,
    svc: &Service,
    opts: &ExportOptions,
    scan: &SecretScan,
    one_shot: bool,
    ex: &mut Export,
) -> Mounts {
    let name = dns_name(&svc.name);
    let mut acc = Mounts {
        mounts: Vec::new(),
        volumes: Vec::new(),
        claims: Vec::new(),
        files: BTreeMap::new(),
    };
    for (i, m) in svc.volumes.iter().enumerate() {
        let mut mount = json!({ "mountPath": m.target });
        if m.read_only {
            mount["readOnly"] = json!(true);
        }
        match (&m.kind, &m.source) {
            (MountKind::Volume, Some(src)) if one_shot => {
                let v = format!("volume-{i}");
                mount["name"] = json!(v);
                acc.volumes.push(json!({ "name": v, "emptyDir": {} }));
                ex.warnings.push(format!(
                    "{}: a one-shot task (a Job) cannot claim volume {src}; exported as an \
                     empty directory (mount an existing PersistentVolumeClaim if it needs \
                     the data)",
                    svc.name
                ));
            }
            (MountKind::Volume, Some(src)) => {
                let claim = dns_name(src);
                mount["name"] = json!(claim);
                acc.claims.push(json!({
                    "metadata": { "name": claim, "labels": labels(&project.name, &name) },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": opts.volume_size } },
                    }
                }));
            }
            (MountKind::Volume, None) => {
                let v = format!("scratch-{i}");
                mount["name"] = json!(v);
                acc.volumes.push(json!({ "name": v, "emptyDir": {} }));
            }
            (MountKind::Tmpfs, _) => {
                let v = format!("tmpfs-{i}");
                mount["name"] = json!(v);
                acc.volumes
                    .push(json!({ "name": v, "emptyDir": { "medium": "Memory" } }));
            }
            (MountKind::Bind, src) => {
                let at = MountAt {
                    i,
                    target: &m.target,
                };
                bind_mount(project, svc, scan, at, src, &mut mount, &mut acc, ex);
            }
        }
        acc.mounts.push(mount);
    }
    acc
}

/// Which mount of the service a bind is: its index and target.
struct MountAt<'a> {
    i: usize,
    target: &'a str,
}

/// A bind mount: a secret file from the Secret, a small text file from the `files`
/// ConfigMap, anything else an empty directory (said in a warning).
#[allow(clippy::too_many_arguments)]
fn bind_mount(
    project: &Project,
    svc: &Service,
    scan: &SecretScan,
    at: MountAt,
    src: &Option<String>,
    mount: &mut Value,
    acc: &mut Mounts,
    ex: &mut Export,
) {
    let i = at.i;
    let src = src.clone().unwrap_or_default();
    let path = Path::new(&src);
    let small_file = std::fs::metadata(path)
        .ok()
        .filter(|md| md.is_file() && md.len() <= CONFIGMAP_FILE_MAX_BYTES);
    let text = small_file.and_then(|_| std::fs::read_to_string(path).ok());
    let fname = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("file-{i}"));
    // A file that is or holds a secret never goes into a ConfigMap: it is
    // mounted from the Secret, under a key the operator fills from the file.
    let secret_file = is_secret_name(&fname)
        || fname.ends_with(".env")
        || fname == ".env"
        || text.as_deref().is_some_and(|t| {
            scan.literals
                .iter()
                .any(|(lit, _)| t.contains(lit.as_str()))
                || project
                    .secret_vars
                    .values()
                    .any(|v| v.len() >= 4 && t.contains(v.as_str()))
        });
    match text {
        Some(_) | None if secret_file && path.is_file() => {
            let key = format!("{}-{}", dns_name(&svc.name), dns_name(&fname));
            ex.secret_keys
                .entry(key.clone())
                .or_default()
                .insert(svc.name.clone());
            ex.secret_files.insert(key.clone(), src.clone());
            let v = format!("secret-file-{i}");
            mount["name"] = json!(v);
            mount["subPath"] = json!(key);
            mount["readOnly"] = json!(true);
            acc.volumes.push(json!({
                "name": v,
                "secret": { "secretName": ex.secret_name, "items": [{"key": key, "path": key}] }
            }));
        }
        Some(text) => {
            let key = dns_name(&fname);
            let key = if acc.files.contains_key(&key) {
                format!("{key}-{i}")
            } else {
                key
            };
            acc.files.insert(key.clone(), text);
            mount["name"] = json!("files");
            mount["subPath"] = json!(key);
        }
        None => {
            let v = format!("bind-{i}");
            mount["name"] = json!(v);
            acc.volumes.push(json!({ "name": v, "emptyDir": {} }));
            ex.warnings.push(format!(
                "{}: bind mount {src} -> {} is not a small text file; exported \
                 as an empty directory (bake it into the image or use a volume)",
                svc.name, at.target
            ));
        }
    }
}
