//! One table per rule: the inputs (a history, a snapshot, the settings) and the
//! suggestions the rule alone yields from a fresh state, as (id, severity, command).

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::advisor::{AdvisorState, Host, by_service, capacity};
use crate::model::agent::AgentRow;
use crate::model::ollama::{LoadedModel, Ollama};
use crate::model::snapshot::{GpuProcess, GpuStats, HostStats};

const NOW: f64 = 1_795_924_800.0;

/// 8 cores and 32 GiB; `api` (0.5 CPU, 256 MiB) and two `gateway` (1 CPU, 512 MiB each).
fn snap() -> Snapshot {
    let svc = |service: &str, n: u32, cpu: f64, mem: u64| ServiceStats {
        service: service.into(),
        container: format!("p-{service}-{n}"),
        state: "running".into(),
        cpu_limit: Some(cpu),
        memory_limit: Some(mem),
        ..Default::default()
    };
    Snapshot {
        project: "p".into(),
        host: Some(HostStats {
            per_core_percent: vec![0.0; 8],
            memory_total_bytes: 32 << 30,
            ..Default::default()
        }),
        services: vec![
            svc("api", 1, 0.5, 256 << 20),
            svc("gateway", 1, 1.0, 512 << 20),
            svc("gateway", 2, 1.0, 512 << 20),
        ],
        agents: vec![AgentRow {
            agent: "chat".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `key` took `values` once a second, ending at NOW.
fn history(series: &[(&str, Vec<f64>)]) -> History {
    let mut h = History::default();
    for (key, values) in series {
        let n = values.len() as f64;
        for (i, v) in values.iter().enumerate() {
            h.push(key, NOW - n + 1.0 + i as f64, *v);
        }
    }
    h
}

/// What `rule` alone yields, from `state`.
fn yields(
    rule: Rule,
    h: &History,
    s: &Snapshot,
    cfg: &AdvisorConfig,
    state: &mut AdvisorState,
) -> Vec<(String, String, String)> {
    let cx = Ctx {
        h,
        s,
        cfg,
        now: NOW,
        win: cfg.window.as_secs_f64(),
        win_label: crate::model::units::format_duration(cfg.window),
        host: Host {
            cores: 8.0,
            memory: 32 << 30,
        },
        services: by_service(s),
    };
    let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
    rule(&cx, state, &mut seen, &mut out);
    out.into_iter()
        .map(|x| (x.id, x.severity, x.command))
        .collect()
}

type Case = (
    &'static str,
    Vec<(&'static str, Vec<f64>)>,
    Vec<(&'static str, &'static str, String)>,
);

fn check(rule: Rule, s: &Snapshot, cfg: &AdvisorConfig, cases: Vec<Case>) {
    for (case, series, want) in cases {
        let got = yields(
            rule,
            &history(&series),
            s,
            cfg,
            &mut AdvisorState::default(),
        );
        let want: Vec<(String, String, String)> = want
            .into_iter()
            .map(|(id, sev, cmd)| (id.to_string(), sev.to_string(), cmd))
            .collect();
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn cpu_rule_table() {
    let api = "service:p-api-1:cpu_limit_percent";
    let gw = "service:p-gateway-2:cpu_limit_percent";
    check(
        cpu::evaluate,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("under 70%", vec![(api, vec![50.0; 60])], vec![]),
            (
                "80%: warning, the limit doubled",
                vec![(api, vec![80.0; 60])],
                vec![(
                    "cpu:api",
                    "warning",
                    "docker update --cpus 1 p-api-1".into(),
                )],
            ),
            (
                "95%: critical",
                vec![(api, vec![95.0; 60])],
                vec![(
                    "cpu:api",
                    "critical",
                    "docker update --cpus 1 p-api-1".into(),
                )],
            ),
            (
                "stateless gateway at 80%: 2 -> 3 replicas",
                vec![(gw, vec![80.0; 60])],
                vec![(
                    "cpu:gateway",
                    "warning",
                    "docker compose -p p up -d --no-recreate --scale gateway=3".into(),
                )],
            ),
        ],
    );
}

#[test]
fn memory_rule_table() {
    let api = "service:p-api-1:memory_limit_percent";
    let cmd = || "docker update --memory 512m --memory-swap 1024m p-api-1".to_string();
    check(
        memory::evaluate,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("under 80%", vec![(api, vec![70.0; 60])], vec![]),
            (
                "85%: warning",
                vec![(api, vec![85.0; 60])],
                vec![("memory:api", "warning", cmd())],
            ),
            (
                "95%: critical",
                vec![(api, vec![95.0; 60])],
                vec![("memory:api", "critical", cmd())],
            ),
        ],
    );
}

#[test]
fn latency_rule_table() {
    let key = "agent:chat:p95_seconds";
    let scale = || "docker compose -p p up -d --no-recreate --scale gateway=3".to_string();
    // A baseline of 200 ms (30 older samples): the limit is 1.5x, 300 ms.
    let after = |recent: f64| [vec![0.2; 30], vec![recent; 60]].concat();
    check(
        latency::evaluate,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("no history", vec![], vec![]),
            ("250 ms: under the limit", vec![(key, after(0.25))], vec![]),
            (
                "400 ms: 133%, warning",
                vec![(key, after(0.4))],
                vec![("latency:chat", "warning", scale())],
            ),
            (
                "500 ms: 167%, critical",
                vec![(key, after(0.5))],
                vec![("latency:chat", "critical", scale())],
            ),
            ("no baseline, no SLO", vec![(key, vec![5.0; 60])], vec![]),
        ],
    );
    let slo = AdvisorConfig {
        latency_slo: Some(Duration::from_secs(1)),
        ..AdvisorConfig::default()
    };
    check(
        latency::evaluate,
        &snap(),
        &slo,
        vec![
            (
                "SLO 1 s, P95 1.2 s",
                vec![(key, vec![1.2; 60])],
                vec![("latency:chat", "warning", scale())],
            ),
            ("SLO 1 s, P95 0.8 s", vec![(key, vec![0.8; 60])], vec![]),
        ],
    );
}

#[test]
fn queue_rule_table() {
    let key = "agent:chat:queued";
    let scale = || "docker compose -p p up -d --no-recreate --scale gateway=3".to_string();
    check(
        queue::evaluate,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("flat", vec![(key, vec![5.0; 30])], vec![]),
            (
                "growing to 3: warning",
                vec![(key, vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0])],
                vec![("queue:chat", "warning", scale())],
            ),
            (
                "growing to 20: critical",
                vec![(key, (1..=20).map(f64::from).collect())],
                vec![("queue:chat", "critical", scale())],
            ),
            (
                "growing but empty",
                vec![(key, vec![0.0, 0.0, 0.0, 0.0, 0.5])],
                vec![],
            ),
        ],
    );
}

#[test]
fn gpu_vram_rule_table() {
    let key = "gpu:0:vram_percent";
    let mut s = snap();
    s.gpus = vec![GpuStats {
        index: 0,
        name: "H200".into(),
        memory_total_bytes: 100 << 30,
        memory_used_bytes: 95 << 30,
        processes: vec![GpuProcess {
            used_memory_bytes: 90 << 30,
            service: Some("ollama".into()),
            ..Default::default()
        }],
        ..Default::default()
    }];
    let cmd =
        || "OLLAMA_MAX_LOADED_MODELS=1 (fewer resident models) or a GPU with more VRAM".to_string();
    check(
        gpu_vram::evaluate,
        &s,
        &AdvisorConfig::default(),
        vec![
            ("50%", vec![(key, vec![50.0; 60])], vec![]),
            (
                "92%: warning",
                vec![(key, vec![92.0; 60])],
                vec![("gpu-vram:0", "warning", cmd())],
            ),
            (
                "97%: critical",
                vec![(key, vec![97.0; 60])],
                vec![("gpu-vram:0", "critical", cmd())],
            ),
        ],
    );
}

#[test]
fn ollama_offload_rule_table() {
    let model = |name: &str, on_cpu: bool| LoadedModel {
        name: name.into(),
        size_bytes: 10 << 30,
        size_vram_bytes: 6 << 30,
        gpu_percent: 60.0,
        partly_on_cpu: on_cpu,
        agents: Some(vec!["chat".into()]),
        ..Default::default()
    };
    let with = |models: Vec<LoadedModel>| {
        let mut s = snap();
        s.ollama = Some(Ollama {
            loaded: models,
            ..Default::default()
        });
        s
    };
    let q8 = "use a smaller quantisation of llama3:8b-q8_0: it is q8_0; a q4_K_M tag needs about \
              50% of its memory, keep fewer models resident (OLLAMA_MAX_LOADED_MODELS=1), or a GPU \
              with more VRAM";
    let cfg = AdvisorConfig::default();
    let h = History::default();
    let run = |s: &Snapshot, state: &mut AdvisorState| {
        yields(ollama_offload::evaluate, &h, s, &cfg, state)
    };
    type Yield = Vec<(String, String, String)>;
    let rows: Vec<(&str, Snapshot, bool, Yield)> = vec![
        (
            "all in VRAM",
            with(vec![model("llama3:8b-q8_0", false)]),
            false,
            vec![],
        ),
        (
            "partly on the CPU, agents not slower: warning",
            with(vec![model("llama3:8b-q8_0", true)]),
            false,
            vec![(
                "ollama-offload:llama3:8b-q8_0".into(),
                "warning".into(),
                q8.into(),
            )],
        ),
        (
            "partly on the CPU, the latency rule holds for its agent: critical",
            with(vec![model("llama3:8b-q8_0", true)]),
            true,
            vec![(
                "ollama-offload:llama3:8b-q8_0".into(),
                "critical".into(),
                q8.into(),
            )],
        ),
    ];
    for (case, s, slow, want) in rows {
        let mut state = AdvisorState::default();
        if slow {
            state.active.insert("latency:chat".into(), NOW - 10.0);
        }
        assert_eq!(run(&s, &mut state), want, "{case}");
    }
}

#[test]
fn agent_errors_rule_table() {
    let key = "agent:chat:error_percent";
    let read = || {
        "read the agent's errors in the console's Agents view or in GET /api/v1/agents/status, \
         and fix what they name"
            .to_string()
    };
    check(
        agent_errors,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("2% failed", vec![(key, vec![2.0; 60])], vec![]),
            (
                "20% failed: warning",
                vec![(key, vec![20.0; 60])],
                vec![("agent-errors:chat", "warning", read())],
            ),
            (
                "60% failed: critical",
                vec![(key, vec![60.0; 60])],
                vec![("agent-errors:chat", "critical", read())],
            ),
        ],
    );
}

#[test]
fn host_rule_table() {
    let next = format!(
        "move to a machine of the guide's next size: {}",
        capacity::next_above(8, 32 << 30).describe()
    );
    check(
        host::evaluate,
        &snap(),
        &AdvisorConfig::default(),
        vec![
            ("idle", vec![("host:cpu_percent", vec![20.0; 60])], vec![]),
            (
                "CPU 80%: warning",
                vec![("host:cpu_percent", vec![80.0; 60])],
                vec![("host-cpu:host", "warning", next.clone())],
            ),
            (
                "memory 95%: critical",
                vec![("host:memory_percent", vec![95.0; 60])],
                vec![("host-memory:host", "critical", next.clone())],
            ),
            (
                "both",
                vec![
                    ("host:cpu_percent", vec![90.0; 60]),
                    ("host:memory_percent", vec![85.0; 60]),
                ],
                vec![
                    ("host-cpu:host", "critical", next.clone()),
                    ("host-memory:host", "warning", next.clone()),
                ],
            ),
        ],
    );
}

#[test]
fn the_rules_run_in_the_order_evaluate_always_ran_them() {
    let names: Vec<&str> = RULES.iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        [
            "cpu",
            "memory",
            "latency",
            "queue",
            "gpu-vram",
            "ollama-offload",
            "ollama-queue",
            "agent-errors",
            "probes",
            "host"
        ]
    );
}

#[test]
fn probes_rule_table() {
    // The probe rows as `status --json` writes them.
    let probed = |service: &str, probe: serde_json::Value| {
        let mut s = snap();
        s.services.push(ServiceStats {
            service: service.into(),
            container: format!("p-{service}-1"),
            state: "running".into(),
            probe: Some(serde_json::from_value(probe).unwrap()),
            ..Default::default()
        });
        s
    };
    let pg = probed(
        "pg",
        serde_json::json!({"kind": "postgres", "figures": {"connections": {"max": 100, "used": 90, "reserved": 3}}}),
    );
    let pool = || {
        "put a pool in front (PgBouncer, transaction mode; the guide's pool is 20 connections \
         per app) or lower the clients' pool sizes; or raise max_connections to 200 (each \
         connection costs work_mem; needs a restart of pg)"
            .to_string()
    };
    let key = "probe:pg:connections_percent";
    check(
        probes,
        &pg,
        &AdvisorConfig::default(),
        vec![
            (
                "70% of the connections",
                vec![(key, vec![70.0; 60])],
                vec![],
            ),
            (
                "85%: warning",
                vec![(key, vec![85.0; 60])],
                vec![("postgres-connections:pg", "warning", pool())],
            ),
            (
                "95%: critical",
                vec![(key, vec![95.0; 60])],
                vec![("postgres-connections:pg", "critical", pool())],
            ),
        ],
    );
    let redis = probed(
        "cache",
        serde_json::json!({"kind": "redis", "figures": {"maxmemory_bytes": 104857600}}),
    );
    let key = "probe:cache:evictions_per_s";
    check(
        probes,
        &redis,
        &AdvisorConfig::default(),
        vec![
            ("no evictions", vec![(key, vec![0.0; 60])], vec![]),
            (
                "evicting, no limit: maxmemory doubled",
                vec![(key, vec![2.0; 60])],
                vec![(
                    "redis-evicting:cache",
                    "warning",
                    "redis-cli CONFIG SET maxmemory 209715200  (AUTH first when requirepass is set)".into(),
                )],
            ),
        ],
    );
}
