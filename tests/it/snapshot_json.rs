//! The snapshot's JSON (what `osmen status --json` prints) keeps its shape: a snapshot
//! folded by the hub from a gateway's /metrics (two scrapes, so windowed quantiles exist),
//! a scaled gateway's replicas, an Ollama sample with GPU processes, and a service probe,
//! compared with the recorded `tests/fixtures/snapshot/status.json`. Times and the
//! stand-in's port are zeroed. `UPDATE_SNAPSHOT_JSON=1` rewrites the recording.

use std::time::{Duration, Instant};

use osmen::collect::prometheus::{self, Windowed};
use osmen::hub::{GpuSample, Hub, Update};
use osmen::model::figures;
use osmen::model::probe::{Figures, ProbeKind, ProbeReport};
use osmen::model::snapshot::{GpuProcess, GpuStats, ServiceStats};
use serde_json::{Value, json};

use crate::llm_standin;

const BLOB: &str = "sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";

/// A gateway's /metrics for two agents after `n` rounds of traffic.
fn metrics(n: f64, memory: f64) -> String {
    let mut o = String::new();
    let hist = |o: &mut String, name: &str, agent: &str, scale: f64| {
        o.push_str(&format!("# TYPE {name} histogram\n"));
        let mut cum = 0.0;
        for (le, c) in [("0.01", 1.0), ("0.1", 3.0), ("1", 2.0), ("+Inf", 1.0)] {
            cum += c * scale;
            o.push_str(&format!(
                "{name}_bucket{{agent=\"{agent}\",le=\"{le}\"}} {cum}\n"
            ));
        }
        o.push_str(&format!(
            "{name}_sum{{agent=\"{agent}\"}} {}\n",
            0.9 * scale
        ));
        o.push_str(&format!("{name}_count{{agent=\"{agent}\"}} {cum}\n"));
    };
    o.push_str("# TYPE osmen_request_duration_seconds summary\n");
    for (a, q, v) in [
        ("daily_brief", "0.5", "0.012"),
        ("daily_brief", "0.95", "0.4"),
        ("daily_brief", "0.99", "0.9"),
        ("idle", "0.5", "NaN"),
        ("idle", "0.95", "NaN"),
    ] {
        o.push_str(&format!(
            "osmen_request_duration_seconds{{agent=\"{a}\",quantile=\"{q}\"}} {v}\n"
        ));
    }
    o.push_str(&format!(
        "# TYPE osmen_requests_total counter\n\
         osmen_requests_total{{agent=\"daily_brief\",status=\"success\"}} {}\n\
         osmen_requests_total{{agent=\"daily_brief\",status=\"error\"}} {}\n\
         osmen_requests_total{{agent=\"idle\",status=\"success\"}} 0\n\
         # TYPE osmen_inflight gauge\nosmen_inflight{{agent=\"daily_brief\"}} 1\n\
         # TYPE osmen_queue_depth gauge\nosmen_queue_depth{{agent=\"daily_brief\"}} 2\n\
         # TYPE osmen_errors_total counter\n\
         osmen_errors_total{{agent=\"daily_brief\",kind=\"timeout\"}} {}\n\
         osmen_errors_total{{agent=\"daily_brief\",kind=\"provider\"}} 1\n\
         # TYPE osmen_agent_window_requests gauge\nosmen_agent_window_requests{{agent=\"daily_brief\"}} 20\n\
         # TYPE osmen_agent_window_errors gauge\nosmen_agent_window_errors{{agent=\"daily_brief\"}} 5\n\
         # TYPE osmen_agent_last_error_timestamp_seconds gauge\n\
         osmen_agent_last_error_timestamp_seconds{{agent=\"daily_brief\",kind=\"timeout\"}} 1700000000\n\
         osmen_agent_last_error_timestamp_seconds{{agent=\"daily_brief\",kind=\"provider\"}} 1600000000\n\
         # TYPE osmen_agent_last_error_info gauge\n\
         osmen_agent_last_error_info{{agent=\"daily_brief\",kind=\"timeout\",message=\"the provider took over 30 s\"}} 1\n\
         osmen_agent_last_error_info{{agent=\"daily_brief\",kind=\"provider\",message=\"500 from ollama\"}} 1\n\
         # TYPE osmen_agent_cpu_seconds_total counter\nosmen_agent_cpu_seconds_total{{agent=\"daily_brief\"}} {}\n\
         # TYPE osmen_agent_memory_bytes gauge\nosmen_agent_memory_bytes{{agent=\"daily_brief\"}} {memory}\n\
         # TYPE osmen_agent_memory_peak_bytes gauge\nosmen_agent_memory_peak_bytes{{agent=\"daily_brief\"}} 9000000\n\
         # TYPE osmen_agent_tokens_per_second summary\n\
         osmen_agent_tokens_per_second{{agent=\"daily_brief\",quantile=\"0.5\"}} 40\n\
         osmen_agent_tokens_per_second{{agent=\"daily_brief\",quantile=\"0.95\"}} 38\n\
         osmen_agent_tokens_per_second{{agent=\"daily_brief\",quantile=\"0.99\"}} NaN\n\
         # TYPE osmen_agent_ttft_seconds summary\n\
         osmen_agent_ttft_seconds{{agent=\"daily_brief\",quantile=\"0.5\"}} 0.2\n\
         osmen_agent_ttft_seconds{{agent=\"daily_brief\",quantile=\"0.95\"}} 0.5\n\
         osmen_agent_ttft_seconds{{agent=\"daily_brief\",quantile=\"0.99\"}} 1.75\n\
         # TYPE osmen_tokens_used_total counter\n\
         osmen_tokens_used_total{{agent=\"daily_brief\",kind=\"prompt\"}} {}\n\
         osmen_tokens_used_total{{agent=\"daily_brief\",kind=\"completion\"}} {}\n\
         # TYPE osmen_llm_cost_dollars_total counter\nosmen_llm_cost_dollars_total{{agent=\"daily_brief\"}} 0.25\n\
         # TYPE osmen_cache_hits_total counter\nosmen_cache_hits_total{{agent=\"daily_brief\"}} 3\n\
         # TYPE osmen_agent_requests_per_active_user gauge\n\
         osmen_agent_requests_per_active_user{{agent=\"daily_brief\"}} 4.5\n\
         osmen_agent_requests_per_active_user{{agent=\"idle\"}} NaN\n\
         # TYPE osmen_agent_requests_projection_daily gauge\nosmen_agent_requests_projection_daily{{agent=\"daily_brief\"}} 1200\n\
         # TYPE osmen_agent_cost_projection_monthly_dollars gauge\nosmen_agent_cost_projection_monthly_dollars{{agent=\"daily_brief\"}} 7.5\n\
         # TYPE osmen_agent_model_info gauge\n\
         osmen_agent_model_info{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\",role=\"primary\",order=\"0\"}} 1\n\
         osmen_agent_model_info{{agent=\"daily_brief\",provider=\"openai\",model=\"gpt-4o-mini\",role=\"fallback\",order=\"1\"}} 1\n\
         osmen_agent_model_info{{agent=\"idle\",provider=\"anthropic\",model=\"claude\",role=\"primary\",order=\"0\"}} 1\n\
         # TYPE osmen_agent_model_requests_total counter\n\
         osmen_agent_model_requests_total{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} {}\n\
         osmen_agent_model_requests_total{{agent=\"daily_brief\",provider=\"openai\",model=\"gpt-4o-mini\"}} 2\n\
         # TYPE osmen_agent_model_prompt_tokens_total counter\n\
         osmen_agent_model_prompt_tokens_total{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} 400\n\
         # TYPE osmen_agent_model_completion_tokens_total counter\n\
         osmen_agent_model_completion_tokens_total{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} 100\n\
         # TYPE osmen_agent_model_cost_dollars_total counter\n\
         osmen_agent_model_cost_dollars_total{{agent=\"daily_brief\",provider=\"openai\",model=\"gpt-4o-mini\"}} 0.25\n\
         # TYPE osmen_agent_model_seconds_total counter\n\
         osmen_agent_model_seconds_total{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} 3.5\n\
         # TYPE osmen_agent_model_load_seconds gauge\n\
         osmen_agent_model_load_seconds{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} 1.5\n\
         # TYPE osmen_agent_model_last_used_timestamp_seconds gauge\n\
         osmen_agent_model_last_used_timestamp_seconds{{agent=\"daily_brief\",provider=\"ollama\",model=\"llama3.2\"}} 1700000100\n\
         osmen_agent_model_last_used_timestamp_seconds{{agent=\"daily_brief\",provider=\"openai\",model=\"gpt-4o-mini\"}} 1700000000\n\
         # TYPE osmen_provider_circuit_state gauge\n\
         osmen_provider_circuit_state{{provider=\"ollama\"}} 0\n\
         osmen_provider_circuit_state{{provider=\"openai\"}} 2\n",
        10.0 * n,
        n,
        n,
        n,
        40.0 * n,
        10.0 * n,
        8.0 * n,
    ));
    for name in [
        "osmen_agent_duration_seconds",
        "osmen_agent_queue_wait_seconds",
        "osmen_agent_execution_seconds",
    ] {
        hist(&mut o, name, "daily_brief", n);
    }
    o
}

/// Times, ports and rates over the clock differ from run to run; the shape and the
/// figures do not.
fn normalize(v: &mut Value) {
    v["taken_at"] = json!(0.0);
    for (_, s) in v["sources"].as_object_mut().unwrap().iter_mut() {
        for k in ["last_sample", "failing_since"] {
            if !s[k].is_null() {
                s[k] = json!(0.0);
            }
        }
    }
    for s in v["services"].as_array_mut().unwrap() {
        if !s["probe"]["last_sample"].is_null() {
            s["probe"]["last_sample"] = json!(0.0);
        }
    }
    for a in v["agents"].as_array_mut().unwrap() {
        for k in ["requests_per_s", "errors_per_s", "cpu_percent"] {
            if a.get(k).is_some() {
                a[k] = json!(0.0);
            }
        }
    }
    if v["ollama"].is_object() {
        v["ollama"]["url"] = json!("http://standin");
    }
}

async fn snapshot() -> Value {
    let llm = llm_standin::start().await;
    llm.script()
        .blobs
        .insert("llama3.2:latest".into(), BLOB.into());
    let mut hub = Hub::new("p", None);

    // One gateway scraped twice, as `run_targets` does.
    let t0 = Instant::now();
    let mut w = Windowed::default();
    let mut scrapes = Vec::new();
    for (i, n) in [1.0, 3.0].iter().enumerate() {
        let fams = prometheus::parse(&metrics(*n, 5e6)).unwrap();
        let lat = w.latencies(&fams, t0 + Duration::from_secs(10 * i as u64));
        let mut rows = prometheus::agents_from(&fams);
        prometheus::attach_waits(&mut rows, &lat);
        scrapes.push(rows);
    }
    let mut rows = scrapes.pop().unwrap();
    // A gateway scaled to two replicas: one row each, and the merged row.
    let mut per_replica = Vec::new();
    let mut fams = Vec::new();
    for (name, mem) in [("p-gateway-1", 1e6), ("p-gateway-2", 3e6)] {
        let f = prometheus::parse(&metrics(2.0, mem)).unwrap();
        let lat = Windowed::default().latencies(&f, t0);
        let mut r = prometheus::agents_from(&f);
        prometheus::attach_waits(&mut r, &lat);
        per_replica.extend(prometheus::replica_rows("gateway", name, r));
        fams.push(f);
    }
    let merged = prometheus::merge(&fams);
    let lat = Windowed::default().latencies(&merged, t0);
    rows.extend(prometheus::group_agents("gateway", 2, &merged, &lat));

    hub.apply(Update::Services(vec![ServiceStats {
        service: "redis".into(),
        container: "p-redis-1".into(),
        state: "running".into(),
        number: 1,
        ..Default::default()
    }]));
    hub.apply(Update::Probe(Box::new(ProbeReport {
        service: "redis".into(),
        kind: ProbeKind::Redis,
        address: Some("172.18.0.2:6379".into()),
        every_s: 2.0,
        result: Ok(Figures::Redis(figures::Redis {
            version: Some("7.2.4".into()),
            ops_per_s: Some(120.5),
            memory_used_bytes: Some(1048576.0),
            hit_ratio: Some(0.9),
            connected_clients: Some(3.0),
            ..Default::default()
        })),
    })));
    let client = reqwest::Client::new();
    let o = osmen::collect::ollama::sample(&client, &llm.url)
        .await
        .unwrap();
    hub.apply(Update::Ollama(o));
    let p = |pid: u32, mib: u64, service: Option<&str>| GpuProcess {
        pid,
        used_memory_bytes: mib << 20,
        service: service.map(str::to_string),
        ..Default::default()
    };
    hub.apply(Update::Gpus(GpuSample {
        gpus: vec![GpuStats {
            name: "NVIDIA H200".into(),
            memory_total_bytes: 141 << 30,
            memory_used_bytes: 2_000 << 20,
            processes: vec![p(100, 1_900, Some("ollama")), p(200, 100, None)],
            ..Default::default()
        }],
        ..Default::default()
    }));
    // Two scrapes apart give the hub's rates (their values depend on the clock).
    hub.apply(Update::Agents(scrapes.pop().unwrap()));
    std::thread::sleep(Duration::from_millis(20));
    hub.apply(Update::Agents(rows));
    hub.apply(Update::ReplicaAgents(per_replica));
    hub.apply(Update::Source("scrape", Ok(())));
    // A failing source, in the shape `status --json` gives it (not Ollama's: a failing
    // Ollama leaves no models in the snapshot, and its shape is recorded here).
    hub.apply(Update::Source("host", Err("unavailable: testing".into())));
    let mut v = serde_json::to_value(&hub.snapshot).unwrap();
    normalize(&mut v);
    v
}

#[tokio::test]
async fn the_snapshot_json_keeps_its_shape() {
    let got = snapshot().await;
    crate::util::assert_recorded(
        "tests/fixtures/snapshot/status.json",
        &got,
        "the snapshot's JSON",
    );
    // The figures are there to compare, not empty shells.
    assert!(got["agents"].as_array().unwrap().len() >= 3);
    assert_eq!(got["replica_agents"].as_array().unwrap().len(), 4);
    assert_eq!(got["ollama"]["loaded"][0]["blob"], BLOB);
    assert_eq!(got["services"][0]["probe"]["figures"]["version"], "7.2.4");
}
