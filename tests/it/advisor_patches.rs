//! Every advisor rule's compose patch, applied to a copy of a fixture file as an operator
//! would (merged into the file), must make `osmen config` resolve the new value and
//! leave everything else of the service as it was: service-level `cpus:`/`mem_limit:`
//! and `deploy` limits, replicas, commands with arguments (a secret among them), and
//! services without a command.

use std::collections::BTreeMap;
use std::path::Path;

use osmen::advisor::{AdvisorState, evaluate};
use osmen::model::config::AdvisorConfig;
use osmen::model::history::History;
use osmen::model::snapshot::{GpuProcess, GpuStats, HostStats, ServiceStats, Snapshot};
use osmen::stack::compose::{LoadOptions, load};
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::util::{osmen, root, text};

const T0: f64 = 1_795_924_800.0;
const SECRETS: [(&str, &str); 2] = [
    ("POSTGRES_PASSWORD", "pg-patch-secret-31"),
    ("REDIS_PASSWORD", "redis-patch-secret-77"),
];

fn fixture() -> std::path::PathBuf {
    root().join("tests/fixtures/patches/docker-compose.yml")
}

fn row(service: &str, n: u32, cpu: Option<f64>, mem: Option<u64>) -> ServiceStats {
    ServiceStats {
        service: service.into(),
        container: format!("patches-{service}-{n}"),
        number: n,
        state: "running".into(),
        cpu_limit: cpu,
        memory_limit: mem,
        ..Default::default()
    }
}

fn series(h: &mut History, key: &str, value: f64) {
    for i in 0..60 {
        h.push(key, T0 - 59.0 + f64::from(i), value);
    }
}

/// A snapshot and history on which every rule with a patch holds.
fn pressed() -> (Snapshot, History) {
    let env: BTreeMap<String, String> = SECRETS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let project = load(
        &fixture(),
        &LoadOptions {
            project_name: None,
            env,
        },
    )
    .unwrap();
    let mut s = Snapshot {
        project: "patches".into(),
        host: Some(HostStats {
            per_core_percent: vec![0.0; 32],
            memory_total_bytes: 64 << 30,
            ..Default::default()
        }),
        services: vec![
            row("api", 1, Some(0.5), Some(256 << 20)),
            row("worker", 1, Some(1.0), Some(512 << 20)),
            row("gateway", 1, Some(1.0), None),
            row("gateway", 2, Some(1.0), None),
            row("postgres", 1, None, None),
            row("db2", 1, None, None),
            row("redis", 1, None, Some(64 << 20)),
            row("cache", 1, None, Some(64 << 20)),
            row("ollama", 1, None, None),
        ],
        compose_forms: project.compose_forms(),
        ..Default::default()
    };
    let redis = json!({"kind": "redis", "figures": {"maxmemory_bytes": 2097152.0,
        "memory_used_bytes": 2090000.0, "evicted_keys": 900.0, "maxmemory_policy": "noeviction"}});
    let pg = json!({"kind": "postgres", "figures": {
        "connections": {"used": 95, "max": 100, "reserved": 3}}});
    for x in &mut s.services {
        match x.service.as_str() {
            // redis is pressed (its limit grows too); cache has room (maxmemory only).
            "redis" | "cache" => {
                x.probe = Some(serde_json::from_value(redis.clone()).unwrap());
                x.memory_percent = Some(if x.service == "redis" { 90.0 } else { 20.0 });
            }
            "postgres" | "db2" => x.probe = Some(serde_json::from_value(pg.clone()).unwrap()),
            _ => {}
        }
    }
    s.gpus = vec![GpuStats {
        index: 0,
        name: "GPU".into(),
        memory_used_bytes: 95 << 30,
        memory_total_bytes: 100 << 30,
        processes: vec![GpuProcess {
            used_memory_bytes: 90 << 30,
            service: Some("ollama".into()),
            ..Default::default()
        }],
        ..Default::default()
    }];
    s.agents = vec![
        serde_json::from_value::<osmen::model::agent::AgentRow>(
            json!({"agent": "daily_brief", "errors_per_s": 9.0, "failing": true,
        "last_error_kind": "no_provider", "last_error": "no LLM provider is configured"}),
        )
        .unwrap(),
    ];
    let mut h = History::default();
    for c in ["api-1", "worker-1", "gateway-1", "gateway-2"] {
        series(
            &mut h,
            &format!("service:patches-{c}:cpu_limit_percent"),
            90.0,
        );
    }
    for c in ["api-1", "worker-1"] {
        series(
            &mut h,
            &format!("service:patches-{c}:memory_limit_percent"),
            90.0,
        );
    }
    for svc in ["redis", "cache"] {
        series(&mut h, &format!("probe:{svc}:evictions_per_s"), 12.0);
    }
    for svc in ["postgres", "db2"] {
        series(&mut h, &format!("probe:{svc}:connections_percent"), 97.0);
    }
    series(&mut h, "gpu:0:vram_percent", 95.0);
    series(&mut h, "agent:daily_brief:error_percent", 100.0);
    (s, h)
}

/// Merges a patch into the file the way Compose merges an override: mappings key by
/// key, anything else replaced in place.
fn merge(base: &mut Yaml, patch: &Yaml) {
    match (base, patch) {
        (Yaml::Hash(b), Yaml::Hash(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(bv) if matches!((&*bv, v), (Yaml::Hash(_), Yaml::Hash(_))) => merge(bv, v),
                    Some(bv) => *bv = v.clone(),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn config(file: &Path) -> Value {
    let mut c = osmen();
    c.arg("-f").arg(file).args(["config", "--json"]);
    for (k, v) in SECRETS {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "osmen config {}:\n{err}",
        file.display()
    );
    for (_, v) in SECRETS {
        assert!(!out.contains(v), "config printed a secret");
    }
    serde_json::from_str(&out).unwrap()
}

/// The copy with `patch` applied.
fn patched(patch: &str, dir: &Path) -> std::path::PathBuf {
    let mut docs = YamlLoader::load_from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    let p = YamlLoader::load_from_str(patch).unwrap_or_else(|e| panic!("{e}:\n{patch}"));
    merge(&mut docs[0], &p[0]);
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&docs[0]).unwrap();
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, out).unwrap();
    file
}

/// The service as `before`, with what the suggestion changes.
fn expected(before: &Value, sug: &osmen::model::advice::Suggestion) -> Value {
    let mut want = before.clone();
    let a = &sug.action;
    if let Some(c) = a.cpus {
        want["resources"]["cpus"] = json!(c);
    }
    if let Some(m) = a.memory {
        want["resources"]["memory"] = json!(m);
    }
    if let Some(r) = a.replicas {
        want["replicas"] = json!(r);
    }
    let words = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    match sug.rule.as_str() {
        "redis-evicting" => {
            let mut c = words(&before["command"]);
            let v = format!("{}mb", a.maxmemory.unwrap() >> 20);
            match c.iter().position(|w| w == "--maxmemory") {
                Some(i) => c[i + 1] = v,
                None => c = vec!["redis-server".into(), "--maxmemory".into(), v],
            }
            want["command"] = json!(c);
        }
        "postgres-connections" => {
            let n = sug.command.split("max_connections to ").nth(1).unwrap();
            let n: String = n.chars().take_while(char::is_ascii_digit).collect();
            let mut c = words(&before["command"]);
            match c.iter().position(|w| w.starts_with("max_connections=")) {
                Some(i) => c[i] = format!("max_connections={n}"),
                None => {
                    c = vec![
                        "postgres".into(),
                        "-c".into(),
                        format!("max_connections={n}"),
                    ]
                }
            }
            want["command"] = json!(c);
        }
        "gpu-vram" | "ollama-offload" => {
            want["environment"]["OLLAMA_MAX_LOADED_MODELS"] = json!("1");
        }
        "agent-errors" => want["environment"]["OLLAMA_URL"] = json!("http://ollama:11434"),
        _ => {}
    }
    want
}

#[test]
fn every_rules_compose_patch_applies_and_config_resolves_the_new_value() {
    let (s, h) = pressed();
    let got = evaluate(
        &h,
        &s,
        &AdvisorConfig::default(),
        &mut AdvisorState::default(),
        T0,
    );
    let with_patch: Vec<_> = got.iter().filter(|x| !x.compose_patch.is_empty()).collect();
    let ids: Vec<&str> = with_patch.iter().map(|x| x.id.as_str()).collect();
    for want in [
        "cpu:api",
        "memory:api",
        "cpu:worker",
        "memory:worker",
        "cpu:gateway",
        "redis-evicting:redis",
        "redis-evicting:cache",
        "postgres-connections:postgres",
        "postgres-connections:db2",
        "gpu-vram:0",
        "agent-errors:daily_brief",
    ] {
        assert!(ids.contains(&want), "{want} did not fire: {ids:?}");
    }
    let before = config(&fixture());
    let dir = std::env::temp_dir().join(format!("osmen-patches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for sug in with_patch {
        for (_, v) in SECRETS {
            assert!(
                !sug.compose_patch.contains(v),
                "{}: a secret in the patch",
                sug.id
            );
        }
        let file = patched(&sug.compose_patch, &dir);
        let after = config(&file);
        let svc = &sug.service;
        let want = expected(&before["services"][svc], sug);
        assert_eq!(
            after["services"][svc], want,
            "{}: the patch\n{}\ndid not resolve to the new value (or changed something else)",
            sug.id, sug.compose_patch
        );
        // The other services are untouched.
        for (name, b) in before["services"].as_object().unwrap() {
            if name != svc {
                assert_eq!(&after["services"][name], b, "{}: changed {name}", sug.id);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
