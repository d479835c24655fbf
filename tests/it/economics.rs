//! Per-agent GPU and economics, end to end: the gateway answers through a scripted
//! Ollama (eval counts and durations, `/api/ps` with loaded, offloaded and absent models,
//! `/api/show` model files) and a streaming OpenAI stand-in; its /metrics are parsed as
//! the collectors do and joined with a fake GPU whose processes are the Ollama runners.

use serde_json::{Value, json};

use crate::llm_standin;
use osmen::collect::{ollama, prometheus};
use osmen::hub::{agent_gpu, gpu};
use osmen::model::snapshot::{GpuProcess, GpuStats};

const LLAMA_BLOB: &str = "sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";
const QWEN_BLOB: &str = "sha256-2bada8a7450677000f678be90653b85d364de7db25eb5ea54136ada5f3933730";
const CONTAINER: &str = "3f4e8d2c1b0a99887766554433221100ffeeddccbbaa99887766554433221100";

fn config(openai: &str) -> String {
    format!(
        r#"
[providers.openai]
base_url = "{openai}/v1"
model = "gpt-4o-mini"
[prices]
"gpt-4o-mini" = {{ input = 0.00015, output = 0.0006 }}
[agents.daily_brief]
description = "d"
prompt = "daily_brief.md"
provider = "ollama"
model = "llama3.2"
[agents.focus_guardrails]
description = "f"
prompt = "focus_guardrails.md"
provider = "ollama"
model = "llama3.2"
[agents.boot_hardening]
description = "b"
prompt = "boot_hardening.md"
provider = "ollama"
model = "qwen2.5:7b"
[agents.knowledge_management]
description = "k"
prompt = "knowledge_management.md"
provider = "ollama"
model = "mistral"
[agents.content_creator]
description = "c"
prompt = "content_creator.md"
provider = "openai"
"#
    )
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= want.abs() * rel
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_agent_model_vram_speed_and_cost_are_joined_exactly() {
    let llm = llm_standin::start().await;
    {
        let mut s = llm.script();
        // 120 tokens in 3 s of eval: 40 tokens/s; 1.5 s load + 0.25 s prompt: TTFT 1.75 s.
        s.ollama_eval = Some(json!({
            "eval_count": 120, "eval_duration": 3_000_000_000u64,
            "prompt_eval_count": 300, "prompt_eval_duration": 250_000_000u64,
            "load_duration": 1_500_000_000u64, "total_duration": 4_800_000_000u64
        }));
        s.ps = Some(json!({"models": [
            {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 3_000_000_000u64,
             "size_vram": 2_000_000_000u64, "digest": "a80c4f17acd5", "expires_at": "2026-11-29T10:05:00Z"},
            {"name": "qwen2.5:7b", "model": "qwen2.5:7b", "size": 5_000_000_000u64,
             "size_vram": 5_000_000_000u64, "digest": "845dbda0ea48", "expires_at": "2026-11-29T10:09:00Z"}
        ]}));
        s.blobs.insert("llama3.2:latest".into(), LLAMA_BLOB.into());
        s.blobs.insert("qwen2.5:7b".into(), QWEN_BLOB.into());
        s.first_chunk = std::time::Duration::from_millis(80);
        s.chunk_gap = std::time::Duration::from_millis(10);
    }
    let env = [
        ("OLLAMA_URL", llm.url.clone()),
        ("OPENAI_API_KEY", "sk-test-secret".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = crate::gateway::start(&env, Some(&config(&llm.url))).await;
    for (agent, key, input) in [
        ("daily_brief", "key-one", "first"),
        ("daily_brief", "key-one", "second"),
        ("daily_brief", "key-two", "third"),
        ("focus_guardrails", "key-one", "status"),
        ("content_creator", "key-one", "a post about caching"),
    ] {
        let (s, v) = gw.exec_as(agent, key, input).await;
        assert_eq!(s, 200, "{agent}: {v}");
    }
    // The answer itself carries the call's timing.
    let (_, v) = gw.exec_as("daily_brief", "key-one", "fourth").await;
    assert_eq!(v["timing"]["tokens_per_second"], 40.0, "{v}");
    assert_eq!(v["timing"]["ttft_ms"], 1750.0, "{v}");
    assert_eq!(v["timing"]["load_ms"], 1500.0, "{v}");

    let (_, text) = gw.get("/metrics", None).await;
    let fams = prometheus::parse(&text).expect("the gateway's metrics parse");
    let mut agents = prometheus::agents_from(&fams);
    let client = reqwest::Client::new();
    let mut o = ollama::sample(&client, &llm.url).await.unwrap();
    assert_eq!(o.loaded[0].blob.as_deref(), Some(LLAMA_BLOB));

    // The GPU: `ollama serve`, and one runner per loaded model, in the Ollama container.
    let p = |pid: u32, mib: u64| GpuProcess {
        pid,
        used_memory_bytes: mib << 20,
        ..Default::default()
    };
    let mut gpus = vec![GpuStats {
        name: "NVIDIA H200".into(),
        memory_total_bytes: 141 << 30,
        memory_used_bytes: 7_500 << 20,
        processes: vec![p(100, 0), p(101, 2_150), p(102, 5_200)],
        ..Default::default()
    }];
    let containers = vec![(
        CONTAINER.to_string(),
        "osmen-ollama-1".to_string(),
        "ollama".to_string(),
    )];
    gpu::attribute(&mut gpus, &containers, |_| {
        Some(format!("0::/system.slice/docker-{CONTAINER}.scope\n"))
    });
    agent_gpu::mark_runners(&mut gpus, |pid| match pid {
        100 => Some("/bin/ollama\0serve\0".into()),
        101 => Some(format!(
            "/usr/bin/ollama\0runner\0--model\0/root/.ollama/models/blobs/{LLAMA_BLOB}\0--port\041235\0"
        )),
        102 => Some(format!(
            "/usr/bin/ollama\0runner\0--ollama-engine\0--model\0/root/.ollama/models/blobs/{QWEN_BLOB}\0"
        )),
        _ => None,
    });
    agent_gpu::join(&mut agents, Some(&mut o), &gpus);
    let by = |name: &str| -> Value {
        agents
            .iter()
            .find(|a| a.agent == name)
            .map(|a| serde_json::to_value(a).unwrap())
            .unwrap_or_else(|| panic!("no {name} in {agents:?}"))
    };

    let d = by("daily_brief");
    assert_eq!(d["provider"], "ollama");
    assert_eq!(d["model"], "llama3.2");
    assert_eq!(d["gpu"]["state"], "offloaded", "{d}");
    assert_eq!(d["gpu"]["vram_bytes"], 2_000_000_000u64);
    assert_eq!(d["gpu"]["size_bytes"], 3_000_000_000u64);
    assert_eq!(d["gpu"]["vram_measured_bytes"], 2_150u64 << 20);
    assert_eq!(d["gpu"]["shared_with"], json!(["focus_guardrails"]));
    assert_eq!(d["gpu"]["last_load_seconds"], 1.5);
    assert_eq!(d["gpu"]["model_from"], "last answer");
    // HDR histograms keep three significant digits.
    for k in ["tokens_per_second_p50", "tokens_per_second_p95"] {
        assert!(close(d[k].as_f64().unwrap(), 40.0, 1e-3), "{k} {d}");
    }
    for k in ["ttft_p50_seconds", "ttft_p95_seconds"] {
        assert!(close(d[k].as_f64().unwrap(), 1.75, 1e-3), "{k} {d}");
    }
    assert_eq!(d["requests_success"], 4.0);
    // 300 prompt + 120 completion tokens per answer, at no cost (a local model).
    assert_eq!(d["tokens_per_request"], 420.0);
    assert_eq!(d["cost_per_request_dollars"], 0.0);
    // Four answers in the last 5 minutes for two keys.
    assert_eq!(d["per_active_user_requests"], 2.0);
    assert_eq!(d["models"][0]["role"], "primary");
    assert_eq!(d["models"][0]["requests"], 4.0);

    let f = by("focus_guardrails");
    assert_eq!(f["gpu"]["shared_with"], json!(["daily_brief"]));
    assert_eq!(f["gpu"]["vram_measured_bytes"], 2_150u64 << 20);

    let b = by("boot_hardening");
    assert_eq!(b["gpu"]["state"], "loaded");
    assert_eq!(b["gpu"]["model_from"], "configured");
    assert_eq!(b["gpu"]["vram_bytes"], 5_000_000_000u64);
    assert_eq!(b["gpu"]["vram_measured_bytes"], 5_200u64 << 20);
    assert_eq!(b["gpu"]["shared_with"], json!([]));

    let k = by("knowledge_management");
    assert_eq!(
        k["gpu"]["state"], "cold",
        "not loaded: the next request loads it"
    );

    let c = by("content_creator");
    assert_eq!(c["provider"], "openai");
    assert_eq!(c["model"], "gpt-4o-mini");
    assert_eq!(c["gpu"]["state"], "remote");
    // 1000 prompt x $0.00015/1K + 500 completion x $0.0006/1K.
    assert!(
        close(
            c["cost_per_request_dollars"].as_f64().unwrap(),
            0.00045,
            1e-9
        ),
        "{c}"
    );
    assert_eq!(c["tokens_per_request"], 1500.0);
    // Streamed: the first content chunk came after the scripted 80 ms.
    let ttft = c["ttft_p50_seconds"].as_f64().unwrap();
    assert!((0.08..1.0).contains(&ttft), "{ttft}");
    // One request in the first minute: the rate is taken over a minute at least.
    let monthly = c["projected_monthly_cost_dollars"].as_f64().unwrap();
    assert!(
        close(monthly, 0.00045 / 60.0 * 86400.0 * 30.0, 1e-6),
        "{monthly}"
    );
    assert!(close(
        c["projected_daily_requests"].as_f64().unwrap(),
        1440.0,
        1e-9
    ));

    // The GPU view's side: each loaded model lists the agents it serves.
    assert_eq!(
        o.loaded[0].agents,
        Some(vec!["daily_brief".into(), "focus_guardrails".into()])
    );
    assert_eq!(o.loaded[1].agents, Some(vec!["boot_hardening".into()]));
    assert_eq!(
        o.loaded[1].vram_measured_from.as_deref(),
        Some("runner process")
    );
    assert!(!text.contains("sk-test-secret"));
    gw.stop().await;
}

#[test]
fn one_loaded_model_owns_the_ollama_containers_vram_and_several_need_their_runner() {
    let agents_text = "osmen_agent_model_info{agent=\"a\",provider=\"ollama\",model=\"m1\",role=\"primary\",order=\"0\"} 1\n\
                       osmen_agent_model_info{agent=\"b\",provider=\"ollama\",model=\"m2:7b\",role=\"primary\",order=\"0\"} 1\n";
    let fams = prometheus::parse(agents_text).unwrap();
    let gpus = vec![GpuStats {
        processes: vec![
            GpuProcess {
                pid: 7,
                used_memory_bytes: 900,
                service: Some("ollama".into()),
                ..Default::default()
            },
            GpuProcess {
                pid: 8,
                used_memory_bytes: 100,
                service: Some("ollama".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    }];
    // One model loaded, no model files known: the container's VRAM is that model's.
    let mut agents = prometheus::agents_from(&fams);
    let ollama = |v: Value| -> osmen::model::ollama::Ollama { serde_json::from_value(v).unwrap() };
    let mut o = ollama(
        json!({"loaded": [{"name": "m1:latest", "size_bytes": 1000, "size_vram_bytes": 1000}]}),
    );
    agent_gpu::join(&mut agents, Some(&mut o), &gpus);
    let gpu = |a: &osmen::model::agent::AgentRow| a.gpu.clone().unwrap_or_default();
    assert_eq!(gpu(&agents[0]).vram_measured_bytes, Some(1000));
    assert_eq!(gpu(&agents[1]).state, "cold");
    // Two loaded and no runner matched: no measured figure rather than a guess.
    let mut o = ollama(json!({"loaded": [
        {"name": "m1:latest", "size_bytes": 1000, "size_vram_bytes": 0},
        {"name": "m2:7b", "size_bytes": 10, "size_vram_bytes": 10}]}));
    agent_gpu::join(&mut agents, Some(&mut o), &gpus);
    assert_eq!(gpu(&agents[0]).state, "cpu");
    assert!(gpu(&agents[0]).vram_measured_bytes.is_none());
    assert!(o.loaded[0].vram_measured_bytes.is_none());
    // Without Ollama measured at all the state is unknown, not cold.
    agent_gpu::join(&mut agents, None, &gpus);
    assert_eq!(gpu(&agents[1]).state, "unknown");
}
