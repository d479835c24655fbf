//! The fixed snapshots the screen tests draw: a stack with every source answering, the
//! same stack with its sources down, and the variants single tests need.

use std::collections::BTreeMap;

use crate::model::console::{Activity, EventLine, LogLine};
use crate::model::snapshot::{
    DiskStats, GpuProcess, GpuStats, HostStats, ServiceStats, Snapshot, SourceHealth,
};

pub const T0: f64 = 1_795_924_800.0; // 2026-11-29T04:00:00Z

fn ok() -> SourceHealth {
    SourceHealth {
        status: "ok".into(),
        last_error: None,
        last_sample: Some(T0),
        failing_since: None,
    }
}

pub fn svc(
    service: &str,
    n: u32,
    cpu: f64,
    limit: Option<f64>,
    mem: u64,
    health: &str,
) -> ServiceStats {
    ServiceStats {
        service: service.into(),
        container: format!("osmen-{service}-{n}"),
        container_id: format!("{service}{n}"),
        number: n,
        state: "running".into(),
        health: health.into(),
        health_output: if health == "unhealthy" {
            "probe http://127.0.0.1:8080/health: 503".into()
        } else {
            String::new()
        },
        cpu_percent: Some(cpu),
        cpu_limit_percent: limit.map(|l| cpu / l),
        memory_bytes: Some(mem << 20),
        memory_limit_bytes: Some(256 << 20),
        memory_percent: Some(mem as f64 / 256.0 * 100.0),
        net_rx_bytes_per_s: Some(1024.0),
        net_tx_bytes_per_s: Some(2048.0),
        pids: Some(4),
        restarts: if health == "unhealthy" { 3 } else { 0 },
        started_at: "2026-11-29T02:00:00Z".into(),
        ports: if service == "gateway" {
            vec!["127.0.0.1:8080->8080/tcp".into()]
        } else {
            vec![]
        },
        uptime_s: Some(7200.0 + f64::from(n)),
        ..Default::default()
    }
}

/// A PostgreSQL probe report under load, as the probe sends it (figures from a real run).
fn postgres_probe() -> serde_json::Value {
    serde_json::json!({
        "kind": "postgres", "address": "172.18.0.3:5432", "every_s": 5.0, "status": "ok",
        "last_error": null, "last_sample": T0,
        "figures": {
            "version": "15.20 (Debian 15.20-0+deb12u1)", "database": "osmen",
            "connections": {"used": 14, "max": 100, "reserved": 3, "percent": 14.43,
                            "by_state": {"active": 3, "idle": 11}},
            "transactions_per_s": 1254.6, "commits_per_s": 1254.6, "rollbacks_per_s": 0.0,
            "inserts_per_s": 458.4, "updates_per_s": 13.1, "deletes_per_s": 0.0,
            "rows_fetched_per_s": 895.4, "cache_hit_ratio": 0.9712,
            "cache_hit_ratio_window": 0.9806, "deadlocks": 0, "mean_query_ms_window": 0.0158,
            "longest_query": {"seconds": 0.8, "state": "active", "database": "osmen",
                              "query": "SELECT pg_sleep(2)"},
            "databases": [{"name": "osmen", "size_bytes": 7912807, "transactions": 2404,
                           "connections": 14}],
            "statements": "on",
            "top_queries": [
                {"query": "INSERT INTO load (body) VALUES ($1)", "calls": 600,
                 "mean_ms": 0.0162, "total_ms": 9.70, "rows": 600},
                {"query": "SELECT count(*) FROM load WHERE id > $1", "calls": 600,
                 "mean_ms": 0.0154, "total_ms": 9.25, "rows": 600}
            ]
        }
    })
}

/// A Redis probe report while it evicts (figures from a real run).
fn redis_probe() -> serde_json::Value {
    serde_json::json!({
        "kind": "redis", "address": "172.18.0.2:6379", "every_s": 2.0, "status": "ok",
        "last_error": null, "last_sample": T0,
        "figures": {
            "version": "7.0.15", "uptime_s": 42.0, "ops_per_s": 391.0,
            "instantaneous_ops_per_s": 380.0, "memory_used_bytes": 2093056.0,
            "memory_rss_bytes": 11612160.0, "memory_peak_bytes": 2990000.0,
            "maxmemory_bytes": 2097152.0, "memory_percent": 99.8,
            "maxmemory_policy": "allkeys-lru", "evicted_keys": 211.0, "evictions_per_s": 104.5,
            "expired_per_s": 0.0, "keyspace_hits": 52.0, "keyspace_misses": 48.0,
            "hit_ratio": 0.52, "hit_ratio_window": 0.52, "connected_clients": 2.0,
            "blocked_clients": 0.0, "keys": 189, "keys_per_db": {"db0": 189},
            "persistence": {"aof_enabled": false, "aof_last_write_status": "ok",
                            "rdb_last_save_time": 1795924000.0,
                            "rdb_changes_since_last_save": 400.0,
                            "rdb_last_bgsave_status": "ok", "rdb_bgsave_in_progress": false}
        }
    })
}

/// A stack with every source answering: six containers (one unhealthy, one replica
/// pair), a GPU with Ollama's process, two agents, logs and events.
pub fn full() -> Snapshot {
    let mut s = Snapshot {
        taken_at: T0,
        project: "osmen".into(),
        host: Some(host()),
        services: services(),
        gpus: vec![gpu()],
        ollama: Some(ollama()),
        agents: agents(),
        sources: ["containers", "host", "gpu", "ollama", "scrape"]
            .iter()
            .map(|k| (k.to_string(), ok()))
            .collect(),
        activity: activity(),
        ..Default::default()
    };
    std::sync::Arc::make_mut(&mut s.trends).insert(
        "host:cpu_percent".into(),
        (0..60).map(|i| f64::from(i % 10) * 10.0).collect(),
    );
    std::sync::Arc::make_mut(&mut s.trends).insert(
        "service:osmen-gateway-2:cpu_percent".into(),
        (0..60).map(f64::from).collect(),
    );
    std::sync::Arc::make_mut(&mut s.trends).insert(
        "agent:daily_brief:p99_seconds".into(),
        (0..60).map(|i| 2.0 + f64::from(i % 5) / 10.0).collect(),
    );
    s.events = std::sync::Arc::new(
        (0..12)
            .map(|i| EventLine {
                time: T0 - 600.0 + f64::from(i) * 30.0,
                source: if i % 2 == 0 { "journal" } else { "engine" }.into(),
                service: "langflow".into(),
                text: if i % 2 == 0 {
                    format!("restart: attempt {i}")
                } else {
                    "health_status: unhealthy".into()
                },
            })
            .collect(),
    );
    s.suggestions = suggestions();
    s.logs.push(
        (0..40)
            .map(|i| LogLine {
                time: T0 - 40.0 + f64::from(i),
                service: if i % 3 == 0 { "postgres" } else { "gateway" }.into(),
                container: "x".into(),
                stderr: i % 7 == 0,
                text: format!(
                    "request {i} GET /api/v1/agents/daily_brief/execute 200 in {}ms postgres://app:hunter2@db/osmen",
                    10 + i
                ),
                // The gateway runs two replicas: their lines carry distinct prefixes.
                replica: if i % 3 != 0 && i % 2 == 0 { 2 } else { 1 },
            })
            .collect(),
    );
    s
}

fn host() -> HostStats {
    HostStats {
        cpu_percent: 42.5,
        per_core_percent: vec![40.0, 45.0],
        memory_total_bytes: 32 << 30,
        memory_used_bytes: 20 << 30,
        memory_available_bytes: 12 << 30,
        load: Some([1.5, 1.2, 0.9]),
        disks: vec![DiskStats {
            mount: "/".into(),
            total_bytes: 500 << 30,
            available_bytes: 150 << 30,
        }],
        osmen_cpu_percent: 0.3,
        osmen_memory_bytes: 24 << 20,
        ..Default::default()
    }
}

fn services() -> Vec<ServiceStats> {
    vec![
        svc("gateway", 1, 35.0, Some(1.0), 120, "healthy"),
        svc("gateway", 2, 72.0, Some(1.0), 200, "healthy"),
        svc("langflow", 1, 5.0, None, 90, "unhealthy"),
        svc("ollama", 1, 150.0, Some(4.0), 250, "healthy"),
        ServiceStats {
            probe: Some(serde_json::from_value(postgres_probe()).unwrap()),
            ..svc("postgres", 1, 3.0, Some(2.0), 60, "healthy")
        },
        ServiceStats {
            probe: Some(serde_json::from_value(redis_probe()).unwrap()),
            ..svc("redis", 1, 1.0, Some(0.5), 12, "")
        },
    ]
}

fn gpu() -> GpuStats {
    GpuStats {
        index: 0,
        name: "NVIDIA H200".into(),
        uuid: "GPU-5f1c3c1e-0000-4000-8000-000000000000".into(),
        memory_used_bytes: 30 << 30,
        memory_total_bytes: 141 << 30,
        gpu_util_percent: Some(64),
        memory_util_percent: Some(21),
        temperature_c: Some(55),
        power_w: Some(310.0),
        power_limit_w: Some(700.0),
        fan_percent: None,
        processes: vec![GpuProcess {
            pid: 4242,
            used_memory_bytes: 29 << 30,
            container: Some("osmen-ollama-1".into()),
            service: Some("ollama".into()),
            ..Default::default()
        }],
    }
}

fn ollama() -> crate::model::ollama::Ollama {
    serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:11434", "version": "0.5.7",
            "installed": ["llama3.1:8b", "mixtral:8x7b", "nomic-embed-text:latest"],
            "loaded": [
                {"name": "llama3.1:8b", "size_bytes": 6_000_000_000u64, "size_vram_bytes": 6_000_000_000u64, "partly_on_cpu": false,
                 "vram_measured_bytes": 6_174_015_488u64, "agents": ["daily_brief", "focus_guardrails"],
                 "context_length": 8192, "expires_at": "2026-11-29T04:04:58Z"},
                {"name": "mixtral:8x7b", "size_bytes": 30_000_000_000u64, "size_vram_bytes": 22_000_000_000u64, "partly_on_cpu": true,
                 "vram_measured_bytes": 26_001_563_136u64, "agents": ["knowledge_management"],
                 "context_length": 32768, "expires_at": "2318-09-22T19:16:23Z"}
            ],
            "queue": {"in_flight": 6, "parallel": 4, "parallel_from": "OLLAMA_NUM_PARALLEL",
                      "waiting_since": T0 - 72.0}
        }))
    .unwrap()
}

fn agents() -> Vec<crate::model::agent::AgentRow> {
    vec![
        serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({"agent": "daily_brief", "requests_per_s": 12.5, "errors_per_s": 0.0,
            "p50_seconds": 0.8, "p95_seconds": 1.9, "p99_seconds": 2.6, "inflight": 3.0, "queued": 0.0,
            "wait_p50_seconds": 0.0, "wait_p95_seconds": 0.35, "wait_p99_seconds": 0.6,
            "execution_p50_seconds": 0.78, "execution_p95_seconds": 1.6, "execution_p99_seconds": 2.1,
            "cpu_percent": 4.2, "memory_bytes": 2_097_152.0, "memory_peak_bytes": 8_388_608.0,
            "provider": "ollama", "model": "llama3.1:8b",
            "tokens_per_second_p50": 40.0, "tokens_per_second_p95": 38.2,
            "ttft_p50_seconds": 1.75, "ttft_p95_seconds": 1.9,
            "tokens_per_request": 420.0, "cost_per_request_dollars": 0.0,
            "per_active_user_requests": 2.0, "projected_daily_requests": 1_080_000.0,
            "projected_monthly_cost_dollars": 0.0,
            "gpu": {"state": "loaded", "model_from": "last answer", "vram_bytes": 6_000_000_000u64,
                    "size_bytes": 6_000_000_000u64, "gpu_percent": 100.0, "vram_measured_bytes": 6_174_015_488u64,
                    "shared_with": ["focus_guardrails"], "last_load_seconds": 1.5,
                    "expires_at": "2026-11-29T04:05:00Z"},
            "models": [{"provider": "ollama", "model": "llama3.1:8b", "role": "primary", "requests": 4.0,
                        "tokens_per_request": 420.0, "cost_per_request_dollars": 0.0, "mean_seconds": 4.81},
                       {"provider": "openai", "model": "gpt-4o-mini", "role": "fallback"}]})).unwrap(),
        serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({"agent": "focus_guardrails", "requests_per_s": 40.0, "errors_per_s": 0.5,
            "p50_seconds": 0.012, "p95_seconds": 0.04, "p99_seconds": 0.09, "inflight": 1.0, "queued": 2.0,
            "wait_p50_seconds": 0.004, "wait_p95_seconds": 0.021, "wait_p99_seconds": 0.05,
            "cpu_percent": 1.1, "memory_bytes": 65536.0, "memory_peak_bytes": 131072.0,
            "provider": "ollama", "model": "llama3.1:8b", "tokens_per_second_p50": 41.5,
            "gpu": {"state": "loaded", "model_from": "last answer", "vram_bytes": 6_000_000_000u64,
                    "size_bytes": 6_000_000_000u64, "gpu_percent": 100.0, "shared_with": ["daily_brief"]}})).unwrap(),
        serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({"agent": "knowledge_management", "requests_per_s": 0.2, "errors_per_s": 0.0,
            "p50_seconds": 9.5, "p95_seconds": 14.0, "p99_seconds": 15.1, "inflight": 0.0, "queued": 0.0,
            "provider": "ollama", "model": "mixtral:8x7b", "tokens_per_second_p50": 6.1,
            "ttft_p50_seconds": 3.2, "tokens_per_request": 910.0, "cost_per_request_dollars": 0.0,
            "gpu": {"state": "offloaded", "model_from": "configured", "vram_bytes": 22_000_000_000u64,
                    "size_bytes": 30_000_000_000u64, "gpu_percent": 73.3, "shared_with": []}})).unwrap(),
        serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({"agent": "content_creator", "requests_per_s": 0.5, "errors_per_s": 0.0,
            "p50_seconds": 2.1, "p95_seconds": 3.0, "p99_seconds": 3.4, "inflight": 0.0, "queued": 0.0,
            "provider": "openai", "model": "gpt-4o-mini", "tokens_per_second_p50": 92.0,
            "ttft_p50_seconds": 0.41, "tokens_per_request": 1500.0, "cost_per_request_dollars": 0.00045,
            "projected_monthly_cost_dollars": 583.2, "gpu": {"state": "remote", "model_from": "last answer"}})).unwrap(),
    ]
}

fn activity() -> Activity {
    Activity {
        gateway: Some("http://127.0.0.1:8080".into()),
        dependencies: BTreeMap::from([
            (
                "gateway".into(),
                vec![
                    "postgres (service_healthy)".into(),
                    "redis (service_healthy)".into(),
                ],
            ),
            ("langflow".into(), vec!["postgres (service_healthy)".into()]),
            ("ollama".into(), vec![]),
            ("postgres".into(), vec![]),
            ("redis".into(), vec![]),
        ]),
        ..Default::default()
    }
}

fn suggestions() -> Vec<crate::model::advice::Suggestion> {
    vec![
        crate::model::advice::Suggestion {
            id: "cpu:gateway".into(),
            service: "gateway".into(),
            rule: "cpu".into(),
            severity: "critical".into(),
            evidence: "CPU 92% of its 1-CPU limit now; over 70% in 58 of 60 samples of the last 1m (mean 88%), since 03:58:00 UTC".into(),
            since: T0 - 120.0,
            action: crate::model::advice::ScaleAction {
                kind: "horizontal".into(),
                cpus: None,
                memory: None,
                replicas: Some(3),
                maxmemory: None,
                from: "2 replicas".into(),
            },
            command: "docker compose -p osmen up -d --no-recreate --scale gateway=3".into(),
            compose_patch: "services:\n  gateway:\n    deploy:\n      replicas: 3\n".into(),
        },
        crate::model::advice::Suggestion {
            id: "memory:ollama".into(),
            service: "ollama".into(),
            rule: "memory".into(),
            severity: "warning".into(),
            evidence: "working set 98% of its 256MiB limit now; over 80% in 60 of 60 samples of the last 1m, since 03:50:00 UTC".into(),
            since: T0 - 600.0,
            action: crate::model::advice::ScaleAction {
                kind: "vertical".into(),
                cpus: None,
                memory: Some(512 << 20),
                replicas: None,
                maxmemory: None,
                from: "memory 256MiB".into(),
            },
            command: "docker update --memory 512m --memory-swap 1024m osmen-ollama-1".into(),
            compose_patch: "services:\n  ollama:\n    deploy:\n      resources:\n        limits:\n          memory: 512M\n".into(),
        },
    ]
}

/// The same stack with its sources down: no engine, no NVML, no Ollama, no gateway.
pub fn down() -> Snapshot {
    let bad = |why: &str| SourceHealth {
        status: why.into(),
        last_error: Some(why.into()),
        last_sample: None,
        failing_since: Some(T0),
    };
    Snapshot {
        taken_at: T0,
        project: "osmen".into(),
        sources: BTreeMap::from([
            (
                "containers".into(),
                bad(
                    "unavailable: cannot reach the Docker engine at unix:///var/run/docker.sock: start it or set DOCKER_HOST",
                ),
            ),
            ("host".into(), bad("error: /proc is not readable")),
            (
                "gpu".into(),
                bad(
                    "unavailable: NVML not available (libnvidia-ml.so.1: cannot open shared object file)",
                ),
            ),
            (
                "ollama".into(),
                bad("error: http://127.0.0.1:11434: connection refused"),
            ),
            (
                "scrape".into(),
                bad("error: http://127.0.0.1:8080/metrics: connection refused"),
            ),
        ]),
        activity: Activity {
            gateway: Some("not running: cannot listen on 127.0.0.1:8080: address in use".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}
/// A stack where the engine changed underneath the console: a killed replica (exited
/// 137, the engine still holding its last health), an OOM-killed worker, a second
/// replica, and a service of the compose file that has no container yet.
pub fn changed_stack() -> Snapshot {
    let mut s = full();
    s.services
        .retain(|x| x.service == "gateway" || x.service == "redis");
    let dead = |service: &str, n: u32, code: i64, oom: bool| ServiceStats {
        service: service.into(),
        container: format!("osmen-{service}-{n}"),
        container_id: format!("{service}{n}"),
        number: n,
        state: "exited".into(),
        exit_code: Some(code),
        oom_killed: oom,
        restarts: 2,
        ..Default::default()
    };
    s.services.push(dead("api", 1, 137, false));
    s.services.push(dead("worker", 1, 137, true));
    s.services
        .push(svc("worker", 2, 12.0, Some(0.25), 20, "healthy"));
    s.services.push(ServiceStats::not_created("burner"));
    s
}
/// The tester's case: every request of daily_brief answered 503 for want of a provider.
pub fn failing() -> Snapshot {
    let mut s = full();
    let mut a = serde_json::to_value(&s.agents[0]).unwrap();
    for (k, v) in [
        ("requests_per_s", serde_json::json!(140.3)),
        ("errors_per_s", serde_json::json!(140.3)),
        ("error_percent", serde_json::json!(100.0)),
        ("window_requests", serde_json::json!(743.0)),
        ("window_errors", serde_json::json!(743.0)),
        ("window_error_percent", serde_json::json!(100.0)),
        ("failing", serde_json::json!(true)),
        ("last_error_kind", serde_json::json!("no_provider")),
        ("last_error_at", serde_json::json!(T0 - 2.0)),
        (
            "last_error",
            serde_json::json!(
                "no LLM provider is configured for this agent: set OLLAMA_URL, OPENAI_API_KEY \
                 or ANTHROPIC_API_KEY (or a [providers.*] section in config/gateway.toml)"
            ),
        ),
        ("p99_seconds", serde_json::json!(0.114)),
    ] {
        a[k] = v;
    }
    s.agents[0] = serde_json::from_value(a).unwrap();
    s
}
/// A container as `i` shows it, with secrets in its environment, labels and health log.
pub fn inspection() -> crate::model::console::Inspection {
    use crate::model::console::{HealthRun, Inspection};
    Inspection {
        container: "osmen-gateway-1".into(),
        image: "osmen-gateway:latest".into(),
        command: "/usr/local/bin/osmen gateway".into(),
        state: "running".into(),
        created: "2026-11-29T02:00:00Z".into(),
        env: vec![
            "OSMEN_GATEWAY_LISTEN=0.0.0.0:8080".into(),
            "OPENAI_API_KEY=sk-live-abcdef123456".into(),
            "DATABASE_URL=postgresql://osmen:hunter2@postgres:5432/osmen".into(),
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
        ],
        mounts: vec!["volume osmen_gateway-data -> /data (rw)".into()],
        labels: vec![
            ("com.docker.compose.project".into(), "osmen".into()),
            ("com.docker.compose.service".into(), "gateway".into()),
            ("io.osmen.api-token".into(), "tok-9f8e7d".into()),
        ],
        networks: vec!["osmen_default 172.18.0.5 (aliases gateway, osmen-gateway-1)".into()],
        health_status: "healthy".into(),
        health_log: (0..3)
            .map(|i| HealthRun {
                start: format!("2026-11-29T03:59:5{i}Z"),
                exit_code: 0,
                output: "GET http://admin:s3cret@127.0.0.1:8080/health 200".into(),
            })
            .collect(),
    }
}
