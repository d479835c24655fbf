//! The container settings of a compose service (ContainerSettings) as a pod: what a
//! container's or the pod's securityContext, the pod's DNS, host namespaces, host
//! aliases and memory-backed volumes can carry. Every set key without a form here is
//! named in a warning, one per service and key: a pod built without it is not the
//! container the file describes.

use serde_json::{Map, Value, json};

use super::Export;
use crate::model::units::parse_bytes;
use crate::stack::compose::Service;

/// What the settings add to the container and to the pod.
#[derive(Default)]
pub(super) struct Carried {
    pub security_context: Map<String, Value>,
    pub pod: Map<String, Value>,
    pub pod_security: Map<String, Value>,
    pub volumes: Vec<Value>,
    pub mounts: Vec<Value>,
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_no_new_privileges(o: &str) -> bool {
    matches!(
        o,
        "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
    )
}

struct Ctx<'a> {
    svc: &'a Service,
    carried: Vec<&'static str>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn warn(&mut self, key: &str, why: String) {
        self.warnings
            .push(format!("{}: {key}: {why}", self.svc.name));
    }
}

fn privileges(cx: &mut Ctx, out: &mut Carried) {
    let st = &cx.svc.settings;
    let caps = |l: &[String]| -> Vec<String> {
        l.iter()
            .map(|c| c.strip_prefix("CAP_").unwrap_or(c).to_string())
            .collect()
    };
    let mut capabilities = Map::new();
    if !st.cap_add.is_empty() {
        capabilities.insert("add".into(), json!(caps(&st.cap_add)));
    }
    if !st.cap_drop.is_empty() {
        capabilities.insert("drop".into(), json!(caps(&st.cap_drop)));
    }
    if !capabilities.is_empty() {
        out.security_context
            .insert("capabilities".into(), Value::Object(capabilities));
    }
    if let Some(p) = st.privileged {
        out.security_context.insert("privileged".into(), json!(p));
    }
    if let Some(r) = st.read_only {
        out.security_context
            .insert("readOnlyRootFilesystem".into(), json!(r));
    }
    cx.carried.extend([
        "cap_add",
        "cap_drop",
        "privileged",
        "read_only",
        "security_opt",
    ]);
    for o in &st.security_opt {
        if is_no_new_privileges(o) {
            out.security_context
                .insert("allowPrivilegeEscalation".into(), json!(false));
        } else {
            cx.warn(
                "security_opt",
                format!("{o:?} has no form in this export; the pod runs without it"),
            );
        }
    }
    if !st.sysctls.is_empty() {
        let s: Vec<Value> = st
            .sysctls
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        out.pod_security.insert("sysctls".into(), json!(s));
        cx.carried.push("sysctls");
    }
}

/// `tmpfs` entries and `shm_size` as memory-backed emptyDirs.
fn memory_volumes(cx: &mut Ctx, out: &mut Carried) {
    let st = &cx.svc.settings;
    let mut add = |name: String, path: &str, size: Option<u64>| {
        let mut dir = json!({"medium": "Memory"});
        if let Some(b) = size {
            dir["sizeLimit"] = json!(b.to_string());
        }
        out.volumes.push(json!({"name": name, "emptyDir": dir}));
        out.mounts.push(json!({"name": name, "mountPath": path}));
    };
    for (i, t) in st.tmpfs.iter().enumerate() {
        let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        let size = opts
            .split(',')
            .find_map(|o| o.strip_prefix("size="))
            .and_then(|s| parse_bytes(s).ok());
        add(format!("tmpfs-setting-{i}"), path, size);
    }
    if let Some(b) = st.shm_size {
        add("dshm".into(), "/dev/shm", Some(b));
    }
    cx.carried.extend(["tmpfs", "shm_size"]);
    // `expose`: the container's ports and the Service's (see `container_ports`).
    cx.carried.push("expose");
}

fn name_resolution(cx: &mut Ctx, out: &mut Carried) {
    let st = &cx.svc.settings;
    let mut aliases: Vec<(String, Vec<String>)> = Vec::new();
    for e in &st.extra_hosts {
        let Some((host, ip)) = e.split_once(':') else {
            continue;
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
        match aliases.iter_mut().find(|(i, _)| *i == ip) {
            Some((_, hosts)) => hosts.push(host.to_string()),
            None => aliases.push((ip, vec![host.to_string()])),
        }
    }
    if !aliases.is_empty() {
        let a: Vec<Value> = aliases
            .into_iter()
            .map(|(ip, hostnames)| json!({"ip": ip, "hostnames": hostnames}))
            .collect();
        out.pod.insert("hostAliases".into(), json!(a));
    }
    let mut dns = Map::new();
    if !st.dns.is_empty() {
        // The file replaces the resolver: so does dnsPolicy None.
        dns.insert("nameservers".into(), json!(st.dns));
        out.pod.insert("dnsPolicy".into(), json!("None"));
    }
    if !st.dns_search.is_empty() {
        dns.insert("searches".into(), json!(st.dns_search));
    }
    if !st.dns_opt.is_empty() {
        let o: Vec<Value> = st
            .dns_opt
            .iter()
            .map(|o| match o.split_once(':') {
                Some((n, v)) => json!({"name": n, "value": v}),
                None => json!({"name": o}),
            })
            .collect();
        dns.insert("options".into(), json!(o));
    }
    if !dns.is_empty() {
        out.pod.insert("dnsConfig".into(), Value::Object(dns));
    }
    cx.carried
        .extend(["extra_hosts", "dns", "dns_search", "dns_opt"]);
}

fn names_and_namespaces(cx: &mut Ctx, out: &mut Carried) {
    let st = &cx.svc.settings;
    for (key, field, v) in [
        ("hostname", "hostname", &st.hostname),
        ("domainname", "subdomain", &st.domainname),
    ] {
        match v {
            Some(v) if is_dns_label(v) => {
                out.pod.insert(field.into(), json!(v));
                cx.carried.push(key);
            }
            Some(v) => cx.warn(
                key,
                format!("{v:?} is not a DNS label, which a pod's {field} must be; left out"),
            ),
            None => {}
        }
    }
    for (key, field, v) in [
        ("network_mode", "hostNetwork", &st.network_mode),
        ("pid", "hostPID", &st.pid),
        ("ipc", "hostIPC", &st.ipc),
    ] {
        match v.as_deref() {
            Some("host") => {
                out.pod.insert(field.into(), json!(true));
                cx.carried.push(key);
            }
            Some(other) => cx.warn(
                key,
                format!("{other:?} has no pod form (only \"host\", as {field}); left out"),
            ),
            None => {}
        }
    }
}

/// The settings of `svc` as container and pod fields; warnings for the rest.
pub(super) fn carry(svc: &Service, ex: &mut Export) -> Carried {
    let mut out = Carried::default();
    let mut cx = Ctx {
        svc,
        carried: vec!["tty", "stdin_open"],
        warnings: Vec::new(),
    };
    privileges(&mut cx, &mut out);
    memory_volumes(&mut cx, &mut out);
    name_resolution(&mut cx, &mut out);
    names_and_namespaces(&mut cx, &mut out);
    for key in svc.settings.set_keys() {
        let named = ["hostname", "domainname", "network_mode", "pid", "ipc"];
        if !cx.carried.contains(&key) && !named.contains(&key) {
            cx.warn(
                key,
                "no form in this export; the pod runs without it".into(),
            );
        }
    }
    for (key, grants) in [("secrets", &svc.secrets), ("configs", &svc.configs)] {
        for g in grants {
            cx.warn(
                key,
                format!(
                    "{:?} is not exported; create a Secret or ConfigMap and mount it at {}",
                    g.source, g.target
                ),
            );
        }
    }
    if svc.init == Some(true) {
        cx.warn(
            "init",
            "a pod has no init process option; put an init (tini) in the image's \
             entrypoint"
                .into(),
        );
    }
    let d = &svc.deploy;
    for (key, set) in [
        ("deploy.update_config", d.update_config.is_some()),
        ("deploy.rollback_config", d.rollback_config.is_some()),
    ] {
        if set {
            cx.warn(
                key,
                "no form in this export; the workload uses Kubernetes' rolling update".into(),
            );
        }
    }
    ex.warnings.extend(cx.warnings);
    out
}
