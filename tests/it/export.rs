//! `osmen export k8s`: the manifests validate against the Kubernetes OpenAPI schemas
//! (kubernetes-validate, from PyPI, installed by `.ci/run`), keep every limit, probe and
//! volume of the compose file, and never hold a secret value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use osmen::stack::compose::{HealthTest, LoadOptions, MountKind, Project, load};
use osmen::stack::k8s::{self, ExportOptions};
use serde_json::Value;

use crate::util::{osmen, root, text};

const PG_SECRET: &str = "pg-Secret-4f1c9e";
const API_SECRET: &str = "gw-Key-77ad02";
const CACHE_SECRET: &str = "cache-Pass-91be3a";
/// The content of the fixture's bind-mounted `conf/db_password.txt`.
const FILE_SECRET: &str = "file-secret-5be1";

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("POSTGRES_PASSWORD", PG_SECRET),
        ("OSMEN_API_KEYS", API_SECRET),
        ("CACHE_PASSWORD", CACHE_SECRET),
    ]
}

fn validator() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("kubernetes-validate"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubernetes-validate is missing: pip install kubernetes-validate (.ci/run does)"
        );
        eprintln!("skipped: kubernetes-validate is not installed");
    }
    found
}

/// Runs the binary's export into a fresh folder and returns the folder.
fn export_to(file: &Path, profiles: &str, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("osmen-k8s-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut cmd = osmen();
    cmd.arg("-f").arg(file);
    if !profiles.is_empty() {
        cmd.args(["--profile", profiles]);
    }
    cmd.args(["export", "k8s", "--out"]).arg(&out);
    for (k, v) in env() {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}{se}");
    assert!(se.contains("kubectl create secret generic"), "{se}");
    for s in [PG_SECRET, API_SECRET, CACHE_SECRET] {
        assert!(
            !so.contains(s) && !se.contains(s),
            "secret in the output: {se}"
        );
    }
    out
}

/// Every file validates strictly; returns the number of resources that passed.
fn validate(dir: &Path) -> usize {
    let Some(tool) = validator() else {
        return 0;
    };
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        // The kustomization is kubectl's, not an API object: there is no schema for it.
        .filter(|p| p.file_name().unwrap() != "kustomization.yaml")
        .collect();
    let o = Command::new(tool)
        .args(["--strict", "-k", "1.30.0"])
        .args(&files)
        .output()
        .unwrap();
    let (so, se) = text(&o);
    assert!(o.status.success(), "kubernetes-validate failed:\n{so}{se}");
    let passed = so.lines().filter(|l| l.contains(" passed for ")).count();
    let docs: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| *l == "---")
                .count()
        })
        .sum();
    assert_eq!(passed, docs, "every object must be checked:\n{so}{se}");
    passed
}

fn no_secret_in(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for s in [PG_SECRET, API_SECRET, CACHE_SECRET, FILE_SECRET] {
            assert!(!t.contains(s), "a secret value was exported:\n{t}");
        }
    }
}

fn project(file: &Path) -> Project {
    let opts = LoadOptions {
        project_name: None,
        env: env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    load(file, &opts).unwrap()
}

fn objects(p: &Project) -> BTreeMap<(String, String), Value> {
    let opts = ExportOptions {
        services: p.services.keys().cloned().collect(),
        volume_size: "10Gi".into(),
        cpu_target_percent: 70,
    };
    k8s::export(p, &opts)
        .files
        .into_iter()
        .flat_map(|f| f.objects)
        .map(|o| {
            let key = (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
            );
            (key, o)
        })
        .collect()
}

fn workload<'a>(objs: &'a BTreeMap<(String, String), Value>, name: &str) -> &'a Value {
    ["Deployment", "StatefulSet", "Job"]
        .iter()
        .find_map(|k| objs.get(&(k.to_string(), name.to_string())))
        .unwrap_or_else(|| panic!("no workload for {name}"))
}

fn quantity_bytes(q: &str) -> u64 {
    let (n, unit) = q.split_at(q.find(|c: char| c.is_alphabetic()).unwrap_or(q.len()));
    let scale = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        u => panic!("unit {u}"),
    };
    n.parse::<u64>().unwrap() * scale
}

fn quantity_cpus(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().unwrap() / 1000.0,
        None => q.parse().unwrap(),
    }
}

/// Limits, reservations, GPUs, probes and every volume of the compose file are in the
/// manifests, service by service.
fn keeps_limits_probes_and_volumes(p: &Project) {
    let objs = objects(p);
    for (name, svc) in p.services.iter().filter(|(_, s)| s.balance.is_none()) {
        let w = workload(&objs, &k8s::dns_name(name));
        let pod = &w["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let r = &svc.resources;
        let res = &c["resources"];
        if let Some(cpus) = r.cpus {
            assert_eq!(quantity_cpus(res["limits"]["cpu"].as_str().unwrap()), cpus);
        }
        if let Some(mem) = r.memory {
            assert_eq!(
                quantity_bytes(res["limits"]["memory"].as_str().unwrap()),
                mem
            );
        }
        if let Some(cpus) = r.cpus_reservation {
            assert_eq!(
                quantity_cpus(res["requests"]["cpu"].as_str().unwrap()),
                cpus
            );
        }
        if let Some(mem) = r.memory_reservation {
            assert_eq!(
                quantity_bytes(res["requests"]["memory"].as_str().unwrap()),
                mem
            );
        }
        if !r.gpus.is_empty() {
            let want: u64 = r.gpus.iter().map(|g| g.count.unwrap_or(1) as u64).sum();
            assert_eq!(res["limits"]["nvidia.com/gpu"], want, "{name}");
        }
        match svc.healthcheck.as_ref().and_then(|h| h.test.as_ref()) {
            Some(HealthTest::Disabled) | None => assert!(c.get("readinessProbe").is_none()),
            Some(_) => {
                let hc = svc.healthcheck.as_ref().unwrap();
                for probe in ["readinessProbe", "livenessProbe"] {
                    let pr = &c[probe];
                    assert!(pr["exec"]["command"].is_array(), "{name} {probe}: {c}");
                    if let Some(i) = hc.interval {
                        assert_eq!(pr["periodSeconds"], i.as_secs(), "{name}");
                    }
                    if let Some(n) = hc.retries {
                        assert_eq!(pr["failureThreshold"], n, "{name}");
                    }
                }
                if hc.start_period.is_some() {
                    assert!(c["startupProbe"].is_object(), "{name}");
                }
            }
        }
        let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        assert_eq!(mounts.len(), svc.volumes.len(), "{name}: {mounts:?}");
        for m in &svc.volumes {
            let mount = mounts
                .iter()
                .find(|x| x["mountPath"] == m.target.as_str())
                .unwrap_or_else(|| panic!("{name}: {} not mounted", m.target));
            assert_eq!(mount["readOnly"].as_bool().unwrap_or(false), m.read_only);
            if let (MountKind::Volume, Some(src), "StatefulSet") =
                (&m.kind, &m.source, w["kind"].as_str().unwrap())
            {
                let claims = w["spec"]["volumeClaimTemplates"].as_array().unwrap();
                assert!(
                    claims
                        .iter()
                        .any(|c| c["metadata"]["name"] == k8s::dns_name(src).as_str()),
                    "{name}: no claim for {src}"
                );
            }
        }
        assert_eq!(w["spec"]["replicas"].as_u64().unwrap_or(1), {
            if w["kind"] == "Job" {
                1
            } else {
                svc.replicas as u64
            }
        });
    }
}

#[test]
fn shipped_stack_exports_valid_manifests_with_every_limit_and_probe() {
    let file = root().join("docker-compose.yml");
    let dir = export_to(&file, "ollama,scale", "shipped");
    no_secret_in(&dir);
    let passed = validate(&dir);
    eprintln!("kubernetes-validate: {passed} resources passed");
    let p = project(&file);
    keeps_limits_probes_and_volumes(&p);
    let objs = objects(&p);
    // The guide's autoscaler, at the advisor's CPU threshold.
    let hpa = &objs[&("HorizontalPodAutoscaler".into(), "gateway-hpa".into())];
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 10);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    for stateful in ["postgres", "redis", "qdrant", "ollama"] {
        assert_eq!(workload(&objs, stateful)["kind"], "StatefulSet");
    }
    assert_eq!(workload(&objs, "gateway")["kind"], "Deployment");
    let gw = &objs[&("Deployment".into(), "gateway".into())];
    let env = &gw["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env[0]["valueFrom"]["secretKeyRef"]["key"], "OSMEN_API_KEYS");
}

#[test]
fn files_tmpfs_jobs_and_secrets_in_commands_translate() {
    let file = root().join("tests/fixtures/compose/k8s/docker-compose.yml");
    let dir = export_to(&file, "", "fixture");
    no_secret_in(&dir);
    validate(&dir);
    let p = project(&file);
    keeps_limits_probes_and_volumes(&p);
    let objs = objects(&p);
    let cm = &objs[&("ConfigMap".into(), "cache-files".into())];
    assert!(
        cm["data"]["app-conf"]
            .as_str()
            .unwrap()
            .contains("maxclients 100")
    );
    // A bind-mounted secret file is mounted from the Secret, not copied anywhere.
    assert!(cm["data"].get("db-password-txt").is_none(), "{cm}");
    let cache = workload(&objs, "cache");
    let vols = cache["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        vols.iter()
            .any(|v| v["secret"]["items"][0]["key"] == "cache-db-password-txt"),
        "{vols:?}"
    );
    let c = &cache["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["args"][3], "$(CACHE_PASSWORD)", "{c}");
    assert_eq!(c["securityContext"]["runAsUser"], 999);
    let probe = c["readinessProbe"]["exec"]["command"][2].as_str().unwrap();
    assert!(probe.contains("${CACHE_PASSWORD}"), "{probe}");
    assert_eq!(workload(&objs, "migrate")["kind"], "Job");
    assert_eq!(workload(&objs, "migrate")["spec"]["backoffLimit"], 2);
    let worker = workload(&objs, "worker");
    assert_eq!(
        worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        45
    );
    let svc = &objs[&("Service".into(), "worker".into())];
    assert_eq!(svc["spec"]["ports"][1]["protocol"], "UDP");
}

/// The container settings osmen applies at `up` reach the pod (issue 23 item 9), the
/// manifests validate, and each key without a form is named on stderr, one line per
/// service and key.
#[test]
fn container_settings_reach_the_pod_or_stderr() {
    let file = root().join("tests/fixtures/compose/k8s/settings.yml");
    let out = std::env::temp_dir().join(format!("osmen-k8s-settings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = osmen()
        .arg("-f")
        .arg(&file)
        .args(["export", "k8s", "--out"])
        .arg(&out)
        .env("POSTGRES_PASSWORD", PG_SECRET)
        .output()
        .unwrap();
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so}{se}");
    validate(&out);
    for line in [
        "web: security_opt: \"seccomp=unconfined\" has no form in this export",
        "web: pids_limit: no form in this export",
        "web: init: a pod has no init process option",
        "web: deploy.update_config: no form in this export",
    ] {
        assert!(se.contains(line), "stderr lacks {line:?}:\n{se}");
    }
    for carried in [
        "cap_drop", "sysctls", "tmpfs", "dns:", "hostname", "pid:", "ipc:",
    ] {
        assert!(
            !se.contains(&format!("web: {carried}")),
            "{carried} is carried, yet named:\n{se}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);

    let objs = objects(&project(&file));
    let web = workload(&objs, "web");
    assert_eq!(web["metadata"]["annotations"]["tier"], "web");
    let pod = &web["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["add"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(
        (&sc["runAsUser"], &sc["runAsGroup"]),
        (&1000.into(), &1001.into())
    );
    assert_eq!(
        pod["securityContext"]["sysctls"],
        serde_json::json!([{"name": "net.core.somaxconn", "value": "1024"}])
    );
    let vols = pod["volumes"].as_array().unwrap();
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mem = |path: &str| {
        let m = mounts.iter().find(|m| m["mountPath"] == path).expect(path);
        let v = vols.iter().find(|v| v["name"] == m["name"]).unwrap();
        assert_eq!(v["emptyDir"]["medium"], "Memory", "{v}");
        v["emptyDir"]["sizeLimit"].clone()
    };
    assert_eq!(mem("/run"), "1048576");
    assert_eq!(mem("/tmp"), Value::Null);
    assert_eq!(mem("/dev/shm"), "67108864");
    assert_eq!(
        pod["hostAliases"],
        serde_json::json!([
            {"ip": "10.0.0.1", "hostnames": ["one.test", "two.test"]},
            {"ip": "10.0.0.3", "hostnames": ["three.test"]}
        ])
    );
    assert_eq!(pod["dnsPolicy"], "None");
    assert_eq!(
        pod["dnsConfig"],
        serde_json::json!({
            "nameservers": ["10.0.0.53"],
            "searches": ["example.test"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
        })
    );
    assert_eq!(
        (&pod["hostname"], &pod["subdomain"]),
        (&"web-host".into(), &"web-sub".into())
    );
    assert_eq!(
        (&pod["hostPID"], &pod["hostIPC"]),
        (&true.into(), &true.into())
    );
    assert_eq!(pod["terminationGracePeriodSeconds"], 20);
    let ports = c["ports"].as_array().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p["containerPort"] == 8080 && p["name"] == "http"),
        "{ports:?}"
    );
    assert!(
        ports
            .iter()
            .any(|p| p["containerPort"] == 9001 && p["protocol"] == "UDP"),
        "{ports:?}"
    );
    assert!(
        ports
            .iter()
            .any(|p| p["containerPort"] == 7000 && p["hostPort"] == 47200),
        "mode: host is a hostPort: {ports:?}"
    );
    let svc = &objs[&("Service".into(), "web".into())];
    assert_eq!(
        svc["spec"]["clusterIP"], "None",
        "dnsrr is a headless Service"
    );
    let http = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 8080)
        .unwrap();
    assert_eq!(http["appProtocol"], "http");
    let agent = &objs[&("DaemonSet".into(), "agent".into())];
    assert_eq!(agent["spec"]["template"]["spec"]["hostNetwork"], true);
}

/// The real-world fixtures export to valid manifests, and what a pod cannot be given is
/// named: the LAMP database is reachable by its exposed port, the MySQL's secrets are
/// named as not exported (never their values), the proxy's loopback-only admin port is
/// named as reachable cluster-wide.
#[test]
fn real_world_stacks_export_valid_manifests_and_name_what_they_drop() {
    let run = |name: &str| -> (PathBuf, String) {
        let dir = root().join("tests/fixtures/compose/realworld").join(name);
        let out = std::env::temp_dir().join(format!("osmen-k8s-rw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let o = osmen()
            .current_dir(&dir)
            .args(["-f", "docker-compose.yml", "export", "k8s", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let (so, se) = text(&o);
        assert!(o.status.success(), "{name}: {so}{se}");
        validate(&out);
        (out, se)
    };
    let (lamp, se) = run("lamp");
    let db = std::fs::read_to_string(lamp.join("db.yaml")).unwrap();
    assert!(
        db.contains("kind: Service") && db.contains("port: 3306"),
        "{db}"
    );
    // An option that only names a password plugin is not a secret.
    assert!(!se.contains("AUTHENTICATION_PLUGIN"), "{se}");
    assert!(se.contains("--from-literal=MARIADB_PASSWORD=..."), "{se}");

    let (mysql, se) = run("mysql-secrets");
    assert!(
        se.contains(
            "wordpress: secrets: \"db_password\" is not exported; create a Secret or ConfigMap \
             and mount it at /run/secrets/wp_db_password"
        ),
        "{se}"
    );
    for e in std::fs::read_dir(&mysql).unwrap() {
        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(
            !t.contains("wp-Zq81mXr") && !t.contains("root-Hc42pLs"),
            "{t}"
        );
    }

    let (proxy, se) = run("proxy");
    assert!(
        se.contains("proxy: ports 127.0.0.1:8088:8080/tcp: bound to 127.0.0.1 on the host"),
        "{se}"
    );
    assert!(
        se.contains("downloader: network_mode: \"service:vpn\""),
        "{se}"
    );
    for d in [lamp, mysql, proxy] {
        let _ = std::fs::remove_dir_all(d);
    }
}
