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

mod pod;
mod ports;
mod probes;
mod secrets;
mod settings;
mod workload;

use pod::*;
use ports::*;
use probes::*;
use secrets::*;
use workload::*;

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
