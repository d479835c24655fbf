//! `osmen export k8s`: the compose stack as Kubernetes manifests, the step the guide takes
//! when a team outgrows one workstation. Pure: a loaded [`Project`] in, manifests (as JSON
//! values, written out as YAML by the command) and the warnings an operator must read out.
//!
//! Stateless services become Deployments, services with named volumes StatefulSets with
//! one PersistentVolumeClaim template per volume; every service with a port gets a
//! Service under its compose name, so the stack's host names keep working. Plain
//! environment goes into a ConfigMap; anything secret (a secret-looking name, a URL with a
//! password, a value that holds another secret's value, the argument of `--requirepass`)
//! becomes a reference into one Secret that the operator creates: no secret value is ever
//! written. The gateway gets the guide's HorizontalPodAutoscaler.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::compose::{HealthTest, Healthcheck, MountKind, Project, Restart, Service};
use crate::model::secret::{MASK, is_secret_name, mask_command, mask_url_credentials};

mod settings;

/// The guide's autoscaler bounds for the gateway.
pub const HPA_MIN_REPLICAS: u32 = 3;
pub const HPA_MAX_REPLICAS: u32 = 10;
/// A bind-mounted file larger than this is not copied into a ConfigMap (the API limit is
/// 1 MiB per object).
const CONFIGMAP_FILE_MAX_BYTES: u64 = 512 * 1024;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The services to export (those active under the enabled profiles).
    pub services: BTreeSet<String>,
    /// Size requested by each PersistentVolumeClaim (compose volumes have none).
    pub volume_size: String,
    /// The HPA's CPU target, percent of the requested CPU (the advisor's threshold).
    pub cpu_target_percent: u32,
}

/// One file of the export: a service's objects, or the kustomization.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub name: String,
    /// Comment lines written at the top of the file.
    pub header: Vec<String>,
    pub objects: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Export {
    pub files: Vec<ManifestFile>,
    /// The keys the Secret must hold, and which service needs each.
    pub secret_keys: BTreeMap<String, BTreeSet<String>>,
    pub secret_name: String,
    /// Secret keys that hold a whole bind-mounted file: key -> the file on this machine.
    pub secret_files: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

/// A Kubernetes object name (RFC 1123 label): lower case, `[a-z0-9-]`, at most 63.
pub fn dns_name(raw: &str) -> String {
    let mut s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-');
    let mut s: String = s.chars().take(63).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "x".into() } else { s }
}

/// A quantity Kubernetes reads exactly: whole CPUs as integers, else millicores.
fn cpu_quantity(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes in the largest binary unit that divides them exactly, so nothing is rounded.
fn memory_quantity(bytes: u64) -> String {
    for (unit, scale) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    bytes.to_string()
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// A word for `/bin/sh -c`, single-quoted unless it is plainly safe.
fn sh_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Which environment entries of a service are secret, and the Secret key each maps to.
struct SecretScan {
    /// Environment variable -> key in the Secret.
    env: BTreeMap<String, String>,
    /// Literal secret value -> the variable that carries it in the pod.
    literals: Vec<(String, String)>,
}

/// The Secret key for a variable: its own name when every service that sets it sets the
/// same value (one `POSTGRES_PASSWORD` for the database and its clients), else prefixed
/// with the service so that two different values cannot collide.
fn env_key(svc: &Service, var: &str, ambiguous: &BTreeSet<String>) -> String {
    if ambiguous.contains(var) {
        format!("{}_{}", dns_name(&svc.name).replace('-', "_"), var).to_ascii_uppercase()
    } else {
        var.to_string()
    }
}

fn scan_secrets(project: &Project, svc: &Service, ambiguous: &BTreeSet<String>) -> SecretScan {
    let mut env = BTreeMap::new();
    let mut literals: Vec<(String, String)> = Vec::new();
    for (k, v) in &svc.environment {
        if is_secret_name(k) && !v.is_empty() {
            env.insert(k.clone(), env_key(svc, k, ambiguous));
            if v.len() >= 4 {
                literals.push((v.clone(), k.clone()));
            }
        }
    }
    // A secret the file interpolated into a command or a health check: the pod gets it
    // from the Secret under the variable's own name.
    let words = svc
        .command
        .iter()
        .chain(svc.entrypoint.iter())
        .flatten()
        .map(String::as_str)
        .chain(svc.healthcheck.iter().flat_map(|h| match &h.test {
            Some(HealthTest::Exec(w)) => w.iter().map(String::as_str).collect::<Vec<_>>(),
            Some(HealthTest::Shell(s)) => vec![s.as_str()],
            _ => Vec::new(),
        }))
        .collect::<Vec<_>>();
    for (k, v) in &project.secret_vars {
        if v.len() >= 4
            && !literals.iter().any(|(lit, _)| lit == v)
            && words.iter().any(|w| w.contains(v.as_str()))
        {
            let var = if svc.environment.contains_key(k) {
                format!("OSMEN_{k}")
            } else {
                k.clone()
            };
            env.insert(var.clone(), k.clone());
            literals.push((v.clone(), var));
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    literals.sort_by_key(|(lit, _)| std::cmp::Reverse(lit.len()));
    for (k, v) in &svc.environment {
        if env.contains_key(k) || v.is_empty() {
            continue;
        }
        let holds_literal = literals.iter().any(|(lit, _)| v.contains(lit.as_str()));
        if holds_literal || mask_url_credentials(v) != *v {
            env.insert(k.clone(), env_key(svc, k, ambiguous));
        }
    }
    SecretScan { env, literals }
}

/// Command words with secrets replaced by `$(VAR)` (expanded by the kubelet), and the
/// variables that must then come from the Secret. A known secret value becomes its own
/// variable; any other secret is what the masker of every view hides (`--requirepass x`,
/// `--password=x`, `-pX` after a MySQL client, a URL password), so the export and the
/// views agree on what is a secret (`--default-authentication-plugin=mysql_native_password`
/// is none).
fn scrub_words(
    svc: &Service,
    words: &[String],
    scan: &SecretScan,
    extra: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let masked = mask_command(words);
    let mut out = Vec::with_capacity(words.len());
    for (i, (w, m)) in words.iter().zip(&masked).enumerate() {
        let mut word = w.clone();
        for (lit, var) in &scan.literals {
            if word.contains(lit.as_str()) {
                word = word.replace(lit.as_str(), &format!("$({var})"));
            }
        }
        if word != *w || m == w {
            out.push(word);
            continue;
        }
        // One hidden part: keep what surrounds it; else the whole word is the secret.
        let (pre, post) = match m.split_once(MASK) {
            Some((pre, post))
                if !post.contains(MASK)
                    && w.len() > pre.len() + post.len()
                    && w.starts_with(pre)
                    && w.ends_with(post) =>
            {
                (pre, post)
            }
            _ => ("", ""),
        };
        let flag = match (pre.strip_suffix('='), i.checked_sub(1).map(|j| &words[j])) {
            (Some(opt), _) if opt.starts_with('-') => opt.to_string(),
            (None, Some(prev)) if pre.is_empty() && prev.starts_with('-') => prev.clone(),
            _ if pre.starts_with('-') => pre.to_string(),
            _ => format!("arg{i}"),
        };
        let var = format!("OSMEN_ARG_{}", flag_var(&flag));
        extra.insert(var.clone(), arg_key(svc, &flag));
        out.push(format!("{pre}$({var}){post}"));
    }
    out
}

/// The Secret key for a secret command-line argument: the service and the flag.
fn arg_key(svc: &Service, flag: &str) -> String {
    format!(
        "{}_{}",
        dns_name(&svc.name).replace('-', "_").to_ascii_uppercase(),
        flag_var(flag)
    )
}

fn flag_var(flag: &str) -> String {
    flag.trim_start_matches('-')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A compose health check as a probe handler; secrets in it are read from the pod's
/// environment through a shell, since exec probes are not expanded by the kubelet.
fn probe_handler(test: &HealthTest, scan: &SecretScan) -> Option<Value> {
    let holds_secret = |s: &str| {
        scan.literals
            .iter()
            .any(|(lit, _)| s.contains(lit.as_str()))
    };
    let unexpand = |s: &str| {
        let mut s = s.to_string();
        for (lit, var) in &scan.literals {
            s = s.replace(lit.as_str(), &format!("${{{var}}}"));
        }
        s
    };
    let command: Vec<String> = match test {
        HealthTest::Disabled => return None,
        HealthTest::Exec(words) if words.iter().any(|w| holds_secret(w)) => {
            let line: Vec<String> = words
                .iter()
                .map(|w| {
                    if holds_secret(w) {
                        format!("\"{}\"", unexpand(w))
                    } else {
                        sh_word(w)
                    }
                })
                .collect();
            vec!["/bin/sh".into(), "-c".into(), line.join(" ")]
        }
        HealthTest::Exec(words) => words.clone(),
        HealthTest::Shell(line) => vec!["/bin/sh".into(), "-c".into(), unexpand(line)],
    };
    Some(json!({ "exec": { "command": command } }))
}

/// Readiness and liveness probes from the health check, and a startup probe that holds
/// liveness off for the start period (compose's `start_period`).
fn probes(hc: &Healthcheck, scan: &SecretScan, c: &mut Map<String, Value>) {
    let Some(handler) = hc.test.as_ref().and_then(|t| probe_handler(t, scan)) else {
        return;
    };
    let period = hc.interval.map(secs).unwrap_or(30);
    let timeout = hc.timeout.map(secs).unwrap_or(30);
    let failures = hc.retries.unwrap_or(3).max(1);
    let mut probe = handler.as_object().cloned().unwrap_or_default();
    probe.insert("periodSeconds".into(), json!(period));
    probe.insert("timeoutSeconds".into(), json!(timeout));
    probe.insert("failureThreshold".into(), json!(failures));
    c.insert("readinessProbe".into(), Value::Object(probe.clone()));
    c.insert("livenessProbe".into(), Value::Object(probe.clone()));
    if let Some(start) = hc.start_period.filter(|d| !d.is_zero()) {
        let mut startup = probe;
        let tries = secs(start).div_ceil(period).max(1) as u32 + failures;
        startup.insert("failureThreshold".into(), json!(tries));
        c.insert("startupProbe".into(), Value::Object(startup));
    }
}

fn labels(project: &str, svc: &str) -> Value {
    json!({
        "app.kubernetes.io/name": svc,
        "app.kubernetes.io/part-of": dns_name(project),
        "app.kubernetes.io/managed-by": "osmen",
    })
}

/// True for the service the guide scales out: named `gateway`, or running `osmen gateway`.
pub fn is_gateway(svc: &Service) -> bool {
    svc.name == "gateway"
        || svc
            .command
            .as_ref()
            .and_then(|c| c.first())
            .is_some_and(|w| w == "gateway")
}

/// The container's ports, once each (compose may publish one port twice), as `(port,
/// "TCP" | "UDP")`.
/// The container's ports: the published ones' targets and the `expose`d ones (which the
/// other services reach, as the Service's ports give them).
fn container_ports(svc: &Service) -> BTreeSet<(u16, String)> {
    let exposed = svc.settings.exposed_ports().into_iter().filter_map(|e| {
        let (port, proto) = e.split_once('/')?;
        Some((port.parse().ok()?, proto.to_ascii_uppercase()))
    });
    svc.ports
        .iter()
        .map(|p| (p.target, p.protocol.to_ascii_uppercase()))
        .chain(exposed)
        .collect()
}

/// What a Service does not keep of a published port: its host address (a Service is
/// reached from the whole cluster) and a host port other than the target.
fn published_port_warnings(svc: &Service, ex: &mut Export) {
    for p in &svc.ports {
        let shown = format!(
            "{}{}:{}/{}",
            p.host_ip
                .as_ref()
                .map(|ip| format!("{ip}:"))
                .unwrap_or_default(),
            p.published.map(|h| h.to_string()).unwrap_or_default(),
            p.target,
            p.protocol
        );
        if let Some(ip) = &p.host_ip {
            ex.warnings.push(format!(
                "{}: ports {shown}: bound to {ip} on the host; a Service has no address \
                 binding and is reached from the whole cluster (restrict it with a \
                 NetworkPolicy)",
                svc.name
            ));
        }
        if p.published.is_some_and(|h| h.single() != Some(p.target)) && p.mode.is_none() {
            ex.warnings.push(format!(
                "{}: ports {shown}: the Service listens on {} (the target), not the host \
                 port; use kubectl port-forward or a LoadBalancer's port to publish it",
                svc.name, p.target
            ));
        }
    }
}

/// The long form's `name` or `app_protocol` of the first port with this target.
fn port_field<'s>(
    svc: &'s Service,
    target: u16,
    f: impl Fn(&'s super::compose::Port) -> Option<&'s str>,
) -> Option<&'s str> {
    svc.ports.iter().filter(|p| p.target == target).find_map(f)
}

struct Pod {
    containers: Value,
    volumes: Vec<Value>,
    claims: Vec<Value>,
    configmaps: Vec<Value>,
    /// Pod-level fields from the container settings (hostAliases, dnsConfig, ...).
    pod: Map<String, Value>,
}

pub fn export(project: &Project, opts: &ExportOptions) -> Export {
    let secret_name = format!("{}-secrets", dns_name(&project.name));
    let mut ex = Export {
        secret_name: secret_name.clone(),
        ..Export::default()
    };
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for svc in project.services.values() {
        if opts.services.contains(&svc.name) {
            for (k, v) in &svc.environment {
                values.entry(k).or_default().insert(v);
            }
        }
    }
    let ambiguous: BTreeSet<String> = values
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.to_string())
        .collect();
    let mut resources = Vec::new();
    let mut volume_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for svc in project.services.values() {
        if !opts.services.contains(&svc.name) {
            continue;
        }
        if let Some(b) = &svc.balance {
            ex.warnings.push(format!(
                "{}: not exported: it balances {}'s replicas, which the Service {} does in \
                 Kubernetes",
                svc.name,
                b.service,
                dns_name(&b.service)
            ));
            continue;
        }
        for m in &svc.volumes {
            if let (MountKind::Volume, Some(src)) = (&m.kind, &m.source) {
                volume_users
                    .entry(src.clone())
                    .or_default()
                    .push(svc.name.clone());
            }
        }
        let file = service_file(project, svc, opts, &secret_name, &ambiguous, &mut ex);
        resources.push(file.name.clone());
        ex.files.push(file);
    }
    for (vol, users) in volume_users.iter().filter(|(_, u)| u.len() > 1) {
        ex.warnings.push(format!(
            "volume {vol} is shared by {}: each StatefulSet gets its own claim; share it \
             through a ReadWriteMany storage class if the services must see the same files",
            users.join(", ")
        ));
    }
    ex.files.push(ManifestFile {
        name: "kustomization.yaml".into(),
        header: vec![format!(
            "Apply with: kubectl apply -k . (after creating the Secret {secret_name})"
        )],
        objects: vec![json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": resources,
        })],
    });
    ex
}

fn service_file(
    project: &Project,
    svc: &Service,
    opts: &ExportOptions,
    secret_name: &str,
    ambiguous: &BTreeSet<String>,
    ex: &mut Export,
) -> ManifestFile {
    let name = dns_name(&svc.name);
    let lbl = labels(&project.name, &name);
    let selector = json!({ "app.kubernetes.io/name": name });
    let scan = scan_secrets(project, svc, ambiguous);
    let mut extra = BTreeMap::new();
    // A service others wait on to complete is a one-shot task: a Job.
    let one_shot = project.services.values().any(|o| {
        opts.services.contains(&o.name)
            && o.depends_on.get(&svc.name).is_some_and(|d| {
                d.condition == super::compose::Condition::ServiceCompletedSuccessfully
            })
    });
    let stateful = !one_shot
        && svc
            .volumes
            .iter()
            .any(|m| m.kind == MountKind::Volume && m.source.is_some());

    let pod = pod_spec(project, svc, opts, &scan, &mut extra, one_shot, ex);
    let mut objects = pod.configmaps;

    let mut all_secret: BTreeMap<String, String> = scan.env.clone();
    all_secret.extend(extra);
    for key in all_secret.values() {
        ex.secret_keys
            .entry(key.clone())
            .or_default()
            .insert(svc.name.clone());
    }

    published_port_warnings(svc, ex);
    let ports: Vec<Value> = container_ports(svc)
        .into_iter()
        .map(|(target, proto)| {
            let mut p = json!({
                "name": format!("{}-{target}", proto.to_ascii_lowercase()),
                "port": target,
                "targetPort": target,
                "protocol": proto,
            });
            if let Some(a) = port_field(svc, target, |p| p.app_protocol.as_deref()) {
                p["appProtocol"] = json!(a);
            }
            p
        })
        .collect();
    if !ports.is_empty() {
        let mut spec = json!({ "selector": selector, "ports": ports });
        // dnsrr: clients resolve the pods themselves, as a headless Service gives them.
        if stateful || svc.deploy.endpoint_mode.as_deref() == Some("dnsrr") {
            // Headless: the StatefulSet's governing service, and clients reach the pod.
            spec["clusterIP"] = json!("None");
        }
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": name, "labels": lbl },
            "spec": spec,
        }));
    }

    let mut template_spec = json!({ "containers": pod.containers });
    for (k, v) in pod.pod {
        template_spec[k] = v;
    }
    if !pod.volumes.is_empty() {
        template_spec["volumes"] = json!(pod.volumes);
    }
    if let Some(g) = svc.stop_grace_period {
        template_spec["terminationGracePeriodSeconds"] = json!(secs(g));
    }
    if one_shot {
        template_spec["restartPolicy"] = json!("OnFailure");
    }
    let template = json!({ "metadata": { "labels": lbl }, "spec": template_spec });
    let workload = if one_shot {
        let retries = match svc.restart {
            Restart::OnFailure(Some(n)) => n,
            Restart::No => 0,
            _ => 6,
        };
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": { "name": name, "labels": lbl },
            "spec": { "backoffLimit": retries, "template": template },
        })
    } else if stateful {
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "serviceName": name,
                "replicas": svc.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
                "volumeClaimTemplates": pod.claims,
            }
        })
    } else if svc.deploy.is_global() {
        // One pod per node, as `mode: global` runs one task per Swarm node.
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "selector": { "matchLabels": selector },
                "template": template,
            }
        })
    } else {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": name, "labels": lbl },
            "spec": {
                "replicas": svc.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
            }
        })
    };
    let mut workload = workload;
    if !svc.deploy.labels.is_empty() {
        // The service's labels (not its pods'): annotations take any value.
        workload["metadata"]["annotations"] = json!(svc.deploy.labels);
    }
    if stateful && ports.is_empty() {
        ex.warnings.push(format!(
            "{}: a StatefulSet without ports has no governing Service; serviceName {name} \
             names one that does not exist (harmless unless pods need stable DNS names)",
            svc.name
        ));
    }
    objects.push(workload);

    let mut header = vec![format!(
        "{} from {} ({})",
        svc.name,
        project.file.display(),
        if one_shot {
            "Job"
        } else if stateful {
            "StatefulSet"
        } else if svc.deploy.is_global() {
            "DaemonSet"
        } else {
            "Deployment"
        }
    )];
    if is_gateway(svc) {
        let min = HPA_MIN_REPLICAS.max(svc.replicas);
        objects.push(json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": format!("{name}-hpa"), "labels": lbl },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": min,
                "maxReplicas": HPA_MAX_REPLICAS.max(min),
                "metrics": [{
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": opts.cpu_target_percent,
                        }
                    }
                }],
            }
        }));
        header.push(format!(
            "HPA: {min}-{} replicas at {}% of the requested CPU (the advisor's threshold)",
            HPA_MAX_REPLICAS.max(min),
            opts.cpu_target_percent
        ));
        if stateful {
            ex.warnings.push(format!(
                "{}: the gateway has a named volume, so it is a StatefulSet, but its HPA \
                 targets a Deployment; drop the volume or edit scaleTargetRef",
                svc.name
            ));
        }
    }
    if !all_secret.is_empty() {
        header.push(format!(
            "Reads {} from the Secret {secret_name} (values are never exported)",
            all_secret.values().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if svc.build.is_some() {
        header.push(format!(
            "Image {} is built locally: push it to a registry the cluster can pull from",
            svc.image.as_deref().unwrap_or("(unnamed)")
        ));
        if svc.image.is_none() {
            ex.warnings.push(format!(
                "{}: built without an `image:` name; set one and push it",
                svc.name
            ));
        }
    }
    ManifestFile {
        name: format!("{name}.yaml"),
        header,
        objects,
    }
}

fn pod_spec(
    project: &Project,
    svc: &Service,
    opts: &ExportOptions,
    scan: &SecretScan,
    extra: &mut BTreeMap<String, String>,
    one_shot: bool,
    ex: &mut Export,
) -> Pod {
    let name = dns_name(&svc.name);
    let secret_name = ex.secret_name.clone();
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
    let carried = settings::carry(svc, ex);
    let mut sc = carried.security_context;
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

    let ports: Vec<Value> = container_ports(svc)
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
        .collect();
    if !ports.is_empty() {
        c.insert("ports".into(), json!(ports));
    }

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
    if !res.is_empty() {
        c.insert("resources".into(), Value::Object(res));
    }
    if let Some(hc) = &svc.healthcheck {
        probes(hc, scan, &mut c);
    }
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

    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    let mut claims = Vec::new();
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for (i, m) in svc.volumes.iter().enumerate() {
        let mut mount = json!({ "mountPath": m.target });
        if m.read_only {
            mount["readOnly"] = json!(true);
        }
        match (&m.kind, &m.source) {
            (MountKind::Volume, Some(src)) if one_shot => {
                let v = format!("volume-{i}");
                mount["name"] = json!(v);
                volumes.push(json!({ "name": v, "emptyDir": {} }));
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
                claims.push(json!({
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
                volumes.push(json!({ "name": v, "emptyDir": {} }));
            }
            (MountKind::Tmpfs, _) => {
                let v = format!("tmpfs-{i}");
                mount["name"] = json!(v);
                volumes.push(json!({ "name": v, "emptyDir": { "medium": "Memory" } }));
            }
            (MountKind::Bind, src) => {
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
                        volumes.push(json!({
                            "name": v,
                            "secret": { "secretName": ex.secret_name, "items": [{"key": key, "path": key}] }
                        }));
                    }
                    Some(text) => {
                        let key = dns_name(&fname);
                        let key = if files.contains_key(&key) {
                            format!("{key}-{i}")
                        } else {
                            key
                        };
                        files.insert(key.clone(), text);
                        mount["name"] = json!("files");
                        mount["subPath"] = json!(key);
                    }
                    None => {
                        let v = format!("bind-{i}");
                        mount["name"] = json!(v);
                        volumes.push(json!({ "name": v, "emptyDir": {} }));
                        ex.warnings.push(format!(
                            "{}: bind mount {src} -> {} is not a small text file; exported \
                             as an empty directory (bake it into the image or use a volume)",
                            svc.name, m.target
                        ));
                    }
                }
            }
        }
        mounts.push(mount);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};

    fn project(yaml: &str) -> Project {
        let opts = LoadOptions {
            project_name: Some("demo".into()),
            env: Default::default(),
        };
        load_str(yaml, Path::new("/tmp/demo/docker-compose.yml"), &opts).unwrap()
    }

    fn all(p: &Project) -> ExportOptions {
        ExportOptions {
            services: p.services.keys().cloned().collect(),
            volume_size: "10Gi".into(),
            cpu_target_percent: 70,
        }
    }

    #[test]
    fn secrets_and_configs_a_pod_does_not_get_are_named() {
        let p = project(
            "services:\n  api:\n    image: api:1\n    configs: [app]\n\
             configs:\n  app:\n    content: 'x=1'\n",
        );
        let ex = export(&p, &all(&p));
        let line = "api: configs: \"app\" is not exported; create a Secret or ConfigMap and \
                    mount it at /app";
        assert!(ex.warnings.iter().any(|w| w == line), "{:?}", ex.warnings);
    }

    #[test]
    fn quantities_are_exact() {
        assert_eq!(cpu_quantity(2.0), "2");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(cpu_quantity(1.25), "1250m");
        assert_eq!(memory_quantity(4 << 30), "4Gi");
        assert_eq!(memory_quantity(1536 << 20), "1536Mi");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(dns_name("Postgres_Data"), "postgres-data");
        assert_eq!(dns_name("__a..b__"), "a-b");
    }

    #[test]
    fn container_settings_reach_the_security_context_or_a_warning() {
        let p = project(
            "services:\n  api:\n    image: api\n    cap_drop: [ALL]\n    cap_add: [CAP_NET_BIND_SERVICE]\n    \
             read_only: true\n    privileged: false\n    tty: true\n    sysctls: {a.b: 1}\n    \
             network_mode: host\n",
        );
        let ex = export(&p, &all(&p));
        let text = serde_json::to_value(ex.files.iter().map(|f| &f.objects).collect::<Vec<_>>())
            .unwrap()
            .to_string();
        assert!(
            text.contains(r#""securityContext":{"capabilities":{"add":["NET_BIND_SERVICE"],"drop":["ALL"]},"privileged":false,"readOnlyRootFilesystem":true}"#),
            "{text}"
        );
        assert!(text.contains(r#""tty":true"#), "{text}");
        assert!(text.contains(r#""hostNetwork":true"#), "{text}");
        assert!(
            text.contains(r#""securityContext":{"sysctls":[{"name":"a.b","value":"1"}]}"#),
            "{text}"
        );
    }

    #[test]
    fn secrets_become_references_and_never_values() {
        let p = project(
            "services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: \
             hunter2hunter\n      URL: postgresql://u:hunter2hunter@db/x\n      PLAIN: ok\n    \
             command: [\"redis-server\", \"--requirepass\", \"s3cr3tword\"]\n    healthcheck:\n      \
             test: [\"CMD\", \"check\", \"-p\", \"hunter2hunter\"]\n",
        );
        let ex = export(&p, &all(&p));
        let text = serde_json::to_string(&ex.files.iter().map(|f| &f.objects).collect::<Vec<_>>())
            .unwrap();
        assert!(!text.contains("hunter2hunter"), "{text}");
        assert!(!text.contains("s3cr3tword"), "{text}");
        assert!(text.contains("$(OSMEN_ARG_REQUIREPASS)"), "{text}");
        assert!(text.contains("\\\"${POSTGRES_PASSWORD}\\\""), "{text}");
        let keys: Vec<&String> = ex.secret_keys.keys().collect();
        assert_eq!(keys, ["DB_REQUIREPASS", "POSTGRES_PASSWORD", "URL"]);
        assert!(text.contains("\"PLAIN\":\"ok\""), "{text}");
    }

    /// What the views mask is what the export turns into references, and nothing else:
    /// an option that only names a password keeps its value, and the word after it is
    /// not taken for a secret.
    #[test]
    fn command_secrets_are_the_ones_every_view_masks() {
        let p = project(
            "services:\n  db:\n    image: mariadb\n    command: --default-authentication-plugin=\
             mysql_native_password --character-set-server=utf8mb4 --password=pl41nword \
             --password-file=/run/secrets/pw\n  cli:\n    image: mariadb\n    command: \
             [mysql, -uroot, -pr00tpass, --url, 'mysql://u:urlpass1@db/x']\n",
        );
        let ex = export(&p, &all(&p));
        let args = |name: &str| {
            let f = ex
                .files
                .iter()
                .find(|f| f.name == format!("{name}.yaml"))
                .unwrap();
            let w = f
                .objects
                .iter()
                .find(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
                .unwrap();
            w["spec"]["template"]["spec"]["containers"][0]["args"].clone()
        };
        assert_eq!(
            args("db"),
            json!([
                "--default-authentication-plugin=mysql_native_password",
                "--character-set-server=utf8mb4",
                "--password=$(OSMEN_ARG_PASSWORD)",
                "--password-file=/run/secrets/pw"
            ])
        );
        assert_eq!(
            args("cli"),
            json!([
                "mysql",
                "-uroot",
                "-p$(OSMEN_ARG_P)",
                "--url",
                "mysql://u:$(OSMEN_ARG_ARG4)@db/x"
            ])
        );
        let keys: Vec<&String> = ex.secret_keys.keys().collect();
        assert_eq!(
            keys,
            ["CLI_ARG4", "CLI_P", "DB_PASSWORD"],
            "{:?}",
            ex.secret_keys
        );
    }

    #[test]
    fn exposed_ports_are_the_services_and_host_bindings_are_named() {
        let p = project(
            "services:\n  db:\n    image: mariadb\n    expose: ['3306', '4567-4568/udp']\n  \
             admin:\n    image: a\n    ports: ['127.0.0.1:8088:8080']\n",
        );
        let ex = export(&p, &all(&p));
        let svc = |name: &str| {
            let f = ex
                .files
                .iter()
                .find(|f| f.name == format!("{name}.yaml"))
                .unwrap();
            f.objects.iter().find(|o| o["kind"] == "Service").cloned()
        };
        let db = svc("db").expect("db's exposed port has a Service");
        let ports: Vec<String> = db["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap()))
            .collect();
        assert_eq!(ports, ["3306/TCP", "4567/UDP", "4568/UDP"]);
        assert!(
            !ex.warnings.iter().any(|w| w.contains("expose")),
            "{:?}",
            ex.warnings
        );
        for want in [
            "admin: ports 127.0.0.1:8088:8080/tcp: bound to 127.0.0.1 on the host",
            "admin: ports 127.0.0.1:8088:8080/tcp: the Service listens on 8080",
        ] {
            assert!(
                ex.warnings.iter().any(|w| w.starts_with(want)),
                "{want}: {:?}",
                ex.warnings
            );
        }
    }

    #[test]
    fn one_key_per_shared_secret_and_a_prefix_when_values_differ() {
        let p = project(
            "services:\n  a:\n    image: x\n    environment:\n      DB_PASSWORD: samesame\n      \
             API_TOKEN: tokena1\n  b:\n    image: x\n    environment:\n      DB_PASSWORD: \
             samesame\n      API_TOKEN: tokenb2\n",
        );
        let ex = export(&p, &all(&p));
        let keys: Vec<&String> = ex.secret_keys.keys().collect();
        assert_eq!(keys, ["A_API_TOKEN", "B_API_TOKEN", "DB_PASSWORD"]);
        assert_eq!(ex.secret_keys["DB_PASSWORD"].len(), 2);
    }

    #[test]
    fn stateful_services_claim_their_volumes_and_the_gateway_scales() {
        let p = project(
            "services:\n  db:\n    image: postgres\n    volumes: [\"data:/var/lib/db\", \
             \"/scratch\", {type: tmpfs, target: /run}]\n    deploy:\n      resources:\n        \
             limits: {cpus: \"0.5\", memory: 1536M}\n        reservations: {cpus: \"0.25\"}\n  \
             gateway:\n    image: osmen:local\n    command: [gateway]\n    ports: [\"8080\"]\n    \
             deploy: {replicas: 2}\nvolumes:\n  data:\n",
        );
        let ex = export(&p, &all(&p));
        let db = &ex
            .files
            .iter()
            .find(|f| f.name == "db.yaml")
            .unwrap()
            .objects;
        let sts = db.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
            "data"
        );
        let c = &sts["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["resources"]["limits"],
            json!({"cpu": "500m", "memory": "1536Mi"})
        );
        assert_eq!(c["resources"]["requests"]["cpu"], "250m");
        let vols = &sts["spec"]["template"]["spec"]["volumes"];
        assert_eq!(vols[1]["emptyDir"]["medium"], "Memory", "{vols}");
        let gw = &ex
            .files
            .iter()
            .find(|f| f.name == "gateway.yaml")
            .unwrap()
            .objects;
        let hpa = gw
            .iter()
            .find(|o| o["kind"] == "HorizontalPodAutoscaler")
            .unwrap();
        assert_eq!(hpa["spec"]["minReplicas"], 3);
        assert_eq!(hpa["spec"]["maxReplicas"], 10);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert!(gw.iter().any(|o| o["kind"] == "Deployment"));
        assert_eq!(ex.files.last().unwrap().name, "kustomization.yaml");
    }
}
