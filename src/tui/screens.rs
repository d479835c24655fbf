//! Screens as text: every view drawn into ratatui's `TestBackend` at 80x24 and 160x48,
//! from a fixed snapshot, with every source up and with the sources down; and a 1x1
//! terminal, which must not panic. Compared with insta snapshots under `snapshots/`.

use std::collections::BTreeMap;

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::keymap::Keymap;
use super::state::{Mode, UiState, View};
use super::theme::{ColorMode, Theme};
use super::views;
use crate::model::console::{Activity, EventLine, LogLine};
use crate::model::snapshot::{
    DiskStats, GpuProcess, GpuStats, HostStats, ServiceStats, Snapshot, SourceHealth,
};

const T0: f64 = 1_795_924_800.0; // 2026-11-29T04:00:00Z

fn ok() -> SourceHealth {
    SourceHealth {
        status: "ok".into(),
        last_error: None,
        last_sample: Some(T0),
        failing_since: None,
    }
}

fn svc(
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
        host: Some(HostStats {
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
        }),
        services: vec![
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
        ],
        gpus: vec![GpuStats {
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
        }],
        ollama: Some(serde_json::from_value(serde_json::json!({
            "url": "http://127.0.0.1:11434", "version": "0.5.7",
            "installed": ["llama3.1:8b", "mixtral:8x7b"],
            "loaded": [
                {"name": "llama3.1:8b", "size_bytes": 6_000_000_000u64, "size_vram_bytes": 6_000_000_000u64, "partly_on_cpu": false,
                 "vram_measured_bytes": 6_174_015_488u64, "agents": ["daily_brief", "focus_guardrails"]},
                {"name": "mixtral:8x7b", "size_bytes": 30_000_000_000u64, "size_vram_bytes": 22_000_000_000u64, "partly_on_cpu": true,
                 "vram_measured_bytes": 23_001_563_136u64, "agents": ["knowledge_management"]}
            ]
        })).unwrap()),
        agents: vec![
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
        ],
        sources: ["containers", "host", "gpu", "ollama", "scrape"]
            .iter()
            .map(|k| (k.to_string(), ok()))
            .collect(),
        activity: Activity {
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
        },
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
    s.suggestions = vec![
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
    ];
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

fn render(st: &mut UiState, s: &Snapshot, w: u16, h: u16) -> String {
    let theme = Theme {
        color: ColorMode::None,
        ascii: st.ascii,
    };
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| views::draw(f, st, s, &Keymap::default(), &theme))
        .unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn slug(v: View) -> String {
    format!("{}_{}", v.index() + 1, v.title().to_lowercase())
}

#[test]
fn every_view_at_80x24_and_160x48_with_sources_up_and_down() {
    for (variant, snap) in [("up", full()), ("down", down())] {
        for (w, h) in [(80u16, 24u16), (160, 48)] {
            for v in View::ALL {
                let mut st = UiState::new(false, false);
                st.view = v;
                let text = render(&mut st, &snap, w, h);
                insta::assert_snapshot!(format!("{}_{w}x{h}_{variant}", slug(v)), text);
            }
        }
    }
}

#[test]
fn secrets_in_log_lines_are_masked_on_screen() {
    let mut st = UiState::new(false, false);
    st.view = View::Logs;
    let text = render(&mut st, &full(), 160, 48);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgres://app:"), "{text}");
}

#[test]
fn help_confirm_ascii_and_dependency_screens() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    st.mode = Mode::Help;
    insta::assert_snapshot!("help_services_80x24", render(&mut st, &s, 80, 24));
    st.mode = Mode::Confirm(crate::model::console::Command::Restart("gateway".into()));
    insta::assert_snapshot!("confirm_restart_80x24", render(&mut st, &s, 80, 24));
    st.mode = Mode::Normal;
    st.show_dependencies = true;
    insta::assert_snapshot!("dependencies_80x24", render(&mut st, &s, 80, 24));
    let mut st = UiState::new(false, true);
    insta::assert_snapshot!("overview_ascii_80x24", render(&mut st, &s, 80, 24));
    let ascii = render(&mut st, &s, 80, 24);
    assert!(
        ascii.is_ascii(),
        "--ascii drew a non-ASCII character:\n{ascii}"
    );
}

#[test]
fn services_detail_pane_shows_the_selected_service_probe() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    for (i, name) in [(4usize, "postgres"), (5, "redis")] {
        st.selected[View::Services.index()] = i;
        let text = render(&mut st, &s, 160, 48);
        insta::assert_snapshot!(format!("services_probe_{name}_160x48"), text);
    }
    st.selected[View::Services.index()] = 4;
    let text = render(&mut st, &s, 160, 48);
    for want in [
        "1255/s",
        "14 of 100",
        "97.1%",
        "pg_sleep(2)",
        "INSERT INTO load",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    st.selected[View::Services.index()] = 5;
    let text = render(&mut st, &s, 160, 48);
    for want in ["104/s", "allkeys-lru", "2MiB", "52.0%"] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn a_provider_with_an_open_circuit_is_shown_failing() {
    let mut s = full();
    for a in &mut s.agents {
        a.providers_failing = Some(vec!["ollama".into()]);
        for m in a.models.iter_mut() {
            if m.provider == "ollama" {
                m.circuit = Some("open".into());
            }
        }
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    assert!(text.contains("FAILING: ollama (circuit open)"), "{text}");
    assert!(text.contains("[failing: circuit open]"), "{text}");
}

#[test]
fn an_unwritable_journal_is_on_the_overview() {
    let mut s = full();
    s.sources.insert(
        "journal".into(),
        SourceHealth {
            status: "error since 04:00:00 UTC: /srv/osmen/runtime: Not a directory (os error \
                     20); actions are refused until the journal can be written"
                .into(),
            last_error: None,
            last_sample: None,
            failing_since: Some(T0),
        },
    );
    let mut st = UiState::new(false, false);
    let text = render(&mut st, &s, 160, 48);
    assert!(
        text.contains("journal: error since 04:00:00 UTC: /srv"),
        "{text}"
    );
}

#[test]
fn tiny_terminals_get_a_message_not_a_panic() {
    for (w, h) in [(1, 1), (0, 0), (39, 24), (80, 9), (40, 10)] {
        for v in View::ALL {
            for snap in [full(), down()] {
                let mut st = UiState::new(false, false);
                st.view = v;
                st.mode = Mode::Help;
                let text = render(&mut st, &snap, w, h);
                if w < views::MIN_WIDTH || h < views::MIN_HEIGHT {
                    assert!(
                        w * h == 0 || text.contains("terminal") || text.len() < 4,
                        "{text}"
                    );
                }
            }
        }
    }
    let mut st = UiState::new(false, false);
    assert!(render(&mut st, &full(), 39, 24).starts_with("terminal too small: 39x24"));
}

#[test]
fn replica_rows_show_under_their_merged_row_on_demand() {
    let mut s = full();
    s.agents.push(
        serde_json::from_value::<crate::model::agent::AgentRow>(
            serde_json::json!({"agent": "gateway/daily_brief", "replicas": 2,
        "requests_per_s": 30.0, "p50_seconds": 0.05, "p95_seconds": 0.2, "p99_seconds": 0.4,
        "latency_source": "merged histogram buckets of 2 replica(s), histogram, last 60 s"}),
        )
        .unwrap(),
    );
    for (n, p99) in [(1, 0.35), (2, 0.47)] {
        s.replica_agents.push(
            serde_json::from_value::<crate::model::agent::AgentRow>(serde_json::json!({
            "agent": format!("gateway/daily_brief@osmen-gateway-{n}"),
            "group_agent": "gateway/daily_brief", "replica": format!("osmen-gateway-{n}"),
            "requests_per_s": 15.0, "p50_seconds": 0.05, "p95_seconds": 0.2, "p99_seconds": p99}))
            .unwrap(),
        );
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    assert!(text.contains("gateway/daily_brief"), "{text}");
    assert!(
        !text.contains("osmen-gateway-1 "),
        "replica rows shown unasked:\n{text}"
    );
    let _ = crate::tui::state::update(&mut st, &s, crate::tui::keymap::Action::Replicas);
    let text = render(&mut st, &s, 160, 48);
    let merged = text.find("gateway/daily_brief ").unwrap();
    let first = text.find("└ osmen-gateway-1").unwrap();
    let second = text.find("└ osmen-gateway-2").unwrap();
    assert!(merged < first && first < second, "{text}");
    assert!(
        text.contains("2 replica rows under the merged rows"),
        "{text}"
    );
}

/// A stack where the engine changed underneath the console: a killed replica (exited
/// 137, the engine still holding its last health), an OOM-killed worker, a second
/// replica, and a service of the compose file that has no container yet.
fn changed_stack() -> Snapshot {
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
fn failing() -> Snapshot {
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

#[test]
fn exited_oom_replica_and_not_created_rows() {
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Services;
        let text = render(&mut st, &changed_stack(), w, h);
        insta::assert_snapshot!(format!("services_changed_{w}x{h}"), text);
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("│{name} ")))
                .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
                .to_string()
        };
        let api = row("api");
        assert!(api.contains("exited (137)"), "{api}");
        assert!(!api.contains("healthy") && !api.contains("0B"), "{api}");
        assert!(row("worker").contains("oom (137)"));
        assert!(row("worker#2").contains("running"));
        assert!(row("burner").contains("not created"));
    }
}

#[test]
fn quitting_asks_while_the_gateway_has_recent_clients() {
    use crate::tui::keymap::Action;
    let mut s = full();
    s.taken_at = T0;
    s.activity.gateway_last_client = Some(T0 - 30.0);
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(!st.quit, "a recent client: quitting asks first");
    assert!(matches!(st.mode, Mode::ConfirmQuit(_)));
    insta::assert_snapshot!("quit_asks_80x24", render(&mut st, &s, 80, 24));
    // Ctrl-C asks too, and a second one quits.
    let ctrl_c = crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::CONTROL,
    );
    let mut st = UiState::new(false, false);
    let km = crate::tui::keymap::Keymap::default();
    let _ = crate::tui::state::on_key(&mut st, &km, &s, ctrl_c);
    assert!(!st.quit && matches!(st.mode, Mode::ConfirmQuit(_)));
    let _ = crate::tui::state::on_key(&mut st, &km, &s, ctrl_c);
    assert!(st.quit, "a second Ctrl-C quits");
    // Long enough ago, or never: it quits at once.
    s.activity.gateway_last_client = Some(T0 - 301.0);
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(st.quit);
    s.activity.gateway_last_client = None;
    let mut st = UiState::new(false, false);
    let _ = crate::tui::state::update(&mut st, &s, Action::Quit);
    assert!(st.quit);
}

#[test]
fn a_failing_agent_is_marked_with_its_error_rate_and_last_error() {
    let s = failing();
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Agents;
        let text = render(&mut st, &s, w, h);
        insta::assert_snapshot!(format!("agents_failing_{w}x{h}"), text);
        for want in [
            "FAILING: daily_brief (100% of requests)",
            "no provider",
            "100%",
        ] {
            assert!(text.contains(want), "{w}x{h}: {want} missing:\n{text}");
        }
    }
    let mut st = UiState::new(false, false);
    st.view = View::Agents;
    let text = render(&mut st, &s, 160, 48);
    for want in [
        "743 of 743 failed in the last minute",
        "FAILING",
        "no provider at 03:59:58 UTC, 2s ago: no LLM provider is configured",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    let mut st = UiState::new(false, false);
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("overview_failing_80x24", text);
    let line = text
        .lines()
        .find(|l| l.contains("daily_brief"))
        .expect("the failing agent is listed first");
    assert!(
        line.contains("140.3/s") && line.contains("100%") && line.contains("FAILING"),
        "{line}"
    );
    // A healthy agent is not marked.
    let text = render(&mut UiState::new(false, false), &full(), 160, 48);
    assert!(!text.contains("FAILING"), "{text}");
}

/// The body rows of a Logs screen that hold a log line (between the borders).
fn log_body(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| l.trim_matches('│').trim_end().to_string())
        .collect()
}

#[test]
fn log_scrolling_shows_a_full_page_at_every_position_with_and_without_a_filter() {
    let s = full();
    for filter in ["", "GATEWAY", "gateway#2", "request 3"] {
        for wrap in [false, true] {
            let mut st = UiState::new(false, false);
            st.view = View::Logs;
            st.logs.filter = filter.into();
            st.logs.wrap = wrap;
            let rows = crate::tui::state::log_rows(&s, &st.logs);
            assert!(!rows.is_empty(), "{filter:?} matches nothing");
            let n = rows.len();
            let texts: Vec<String> = rows.iter().map(|l| l.text.clone()).collect();
            for (sel, line) in texts.iter().enumerate() {
                st.logs.follow = false;
                st.selected[View::Logs.index()] = sel;
                let text = render(&mut st, &s, 80, 24);
                let body = log_body(&text);
                // 24 rows: tab bar, two borders, status line; 20 for the lines.
                assert_eq!(body.len(), 20, "{filter:?} wrap {wrap} at {sel}:\n{text}");
                let filled = body.iter().filter(|l| !l.trim().is_empty()).count();
                let want = if wrap { 20.min(2 * n) } else { 20.min(n) };
                assert!(
                    filled >= want.min(20) - usize::from(wrap),
                    "{filter:?} wrap {wrap} at {sel} of {n}: {filled} of 20 rows drawn:\n{text}"
                );
                let head: String = line.chars().take(30).collect();
                assert!(
                    text.contains(&head),
                    "{filter:?} wrap {wrap}: selected line {sel} not shown:\n{text}"
                );
            }
        }
    }
}

#[test]
fn logs_scroll_sideways_and_replicas_have_their_own_prefix() {
    let s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Logs;
    st.logs.hscroll = 16;
    let text = render(&mut st, &s, 80, 24);
    assert!(text.contains("from column 17"), "{text}");
    assert!(text.contains("gateway#2 api/v1/agents"), "{text}");
    assert!(!text.contains("request 39"), "{text}");
}

/// A container as `i` shows it, with secrets in its environment, labels and health log.
fn inspection() -> crate::model::console::Inspection {
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

#[test]
fn inspect_pane_masks_secrets_and_shows_mounts_labels_networks_and_health_log() {
    let mut s = full();
    let mut st = UiState::new(false, false);
    st.view = View::Services;
    st.mode = Mode::Inspect {
        container: "osmen-gateway-1".into(),
        scroll: 0,
    };
    let waiting = render(&mut st, &s, 80, 24);
    assert!(
        waiting.contains("asking the engine about osmen-gateway-1"),
        "{waiting}"
    );
    s.activity.inspect = Some(inspection());
    let text = render(&mut st, &s, 160, 48);
    insta::assert_snapshot!("inspect_160x48", text);
    for secret in ["sk-live", "hunter2", "tok-9f8e7d", "s3cret"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    for want in [
        "OPENAI_API_KEY=********",
        "postgresql://osmen:********@postgres",
        "volume osmen_gateway-data -> /data (rw)",
        "com.docker.compose.service=gateway",
        "osmen_default 172.18.0.5",
        "health checks: healthy (3)",
        "2026-11-29T03:59:52Z exit 0",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // At 80x24 it scrolls: the end is reached with G and nothing is cut on the way.
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("inspect_80x24", text);
    assert!(!text.contains("03:59:52Z"), "{text}");
    if let Mode::Inspect { scroll, .. } = &mut st.mode {
        *scroll = usize::MAX / 2;
    }
    let end = render(&mut st, &s, 80, 24);
    assert!(end.contains("2026-11-29T03:59:52Z exit 0"), "{end}");
}

#[test]
fn the_whole_text_popup_and_a_long_confirmation_wrap_instead_of_cutting() {
    let mut s = full();
    let long = "pull access denied for registry-1.docker.io/library/langflow, repository does \
                not exist or may require 'docker login': denied: requested access to the \
                resource is denied; fix: docker login, or build the image locally (END)";
    std::sync::Arc::make_mut(&mut s.events).push(EventLine {
        time: T0,
        source: "console".into(),
        service: "langflow".into(),
        text: long.into(),
    });
    let mut st = UiState::new(false, false);
    st.view = View::Events;
    let _ = crate::tui::state::update(&mut st, &s, crate::tui::keymap::Action::Open);
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("event_detail_80x24", text);
    assert!(text.contains("(END)"), "{text}");
    let joined: String = text.split_whitespace().collect();
    for word in long.split_whitespace() {
        assert!(joined.contains(word), "{word} cut:\n{text}");
    }
    let mut st = UiState::new(false, false);
    st.view = View::Suggestions;
    st.mode = Mode::Confirm(crate::model::console::Command::ApplySuggestion(
        "agent-errors:gateway/knowledge_management_with_a_long_name".into(),
    ));
    let text = render(&mut st, &s, 80, 24);
    insta::assert_snapshot!("confirm_long_80x24", text);
    assert!(
        text.contains("agent-errors:gateway/knowledge_management_with_a_long_name│"),
        "{text}"
    );
    assert!(text.contains("?  y = yes, any other key = no"), "{text}");
}

#[test]
fn agents_at_80_columns_keep_14_characters_of_names_and_the_units_of_figures() {
    let text = render(
        &mut UiState::new(false, false).tap_view(View::Agents),
        &full(),
        80,
        24,
    );
    let row = text
        .lines()
        .find(|l| l.contains("knowle"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("knowle…agement "), "{row}");
    for unit in ["20.5GiB", "9.50s", "14.00s", "15.10s"] {
        assert!(row.contains(unit), "{unit} missing or cut: {row}");
    }
}

trait TapView {
    fn tap_view(self, v: View) -> Self;
}

impl TapView for UiState {
    fn tap_view(mut self, v: View) -> Self {
        self.view = v;
        self
    }
}

/// The tester's case: no registry answers, and every image of the stack fails to pull.
#[test]
fn every_failed_pull_shows_in_its_row_and_whole_in_the_detail_pane() {
    let mut s = changed_stack();
    s.services.push(ServiceStats::not_created("postgres"));
    let long = "cannot pull image postgres:15-alpine: Get \"https://registry-1.docker.io/v2/\": \
                dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: server misbehaving\n\
                fix: the registry docker.io cannot be reached from the engine: check the \
                network, or use `--pull never` with images already on this engine";
    for svc in ["burner", "postgres"] {
        s.activity.image_failures.insert(
            svc.into(),
            long.replace("postgres:15-alpine", &format!("{svc}:1")),
        );
    }
    // A running service keeps its state even if an earlier pull of it failed.
    s.activity
        .image_failures
        .insert("redis".into(), "cannot pull image redis:7".into());
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let mut st = UiState::new(false, false);
        st.view = View::Services;
        let rows = crate::tui::state::service_rows(&s, "", crate::tui::state::ServiceSort::Name);
        let at = rows.iter().position(|x| x.service == "postgres").unwrap();
        st.selected[View::Services.index()] = at;
        let text = render(&mut st, &s, w, h);
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("│{name} ")))
                .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
                .to_string()
        };
        assert!(row("postgres").contains("pull failed"), "{text}");
        assert!(row("burner").contains("pull failed"), "{text}");
        assert!(!row("redis").contains("pull failed"), "{text}");
        // The whole message and the fix, joined back from the wrapped detail pane.
        let flat: String = text
            .lines()
            .map(|l| l.trim_matches(|c| c == '│' || c == ' '))
            .collect::<Vec<_>>()
            .join(" ");
        for want in [
            "postgres  not created: its image could not be pulled",
            "server misbehaving",
            "use `--pull never` with images already on this engine",
        ] {
            assert!(flat.contains(want), "{want} missing at {w}x{h}:\n{text}");
        }
    }
}
