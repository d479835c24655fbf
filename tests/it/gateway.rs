//! The gateway in-process on loopback with its real router, against stand-ins that speak
//! Ollama's, OpenAI's, Anthropic's and n8n's wire formats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use osmen::gateway::accounting::{Accounted, Usage};
use osmen::gateway::{Gateway, Options};
use serde_json::{Value, json};

use crate::llm_standin;
use crate::util::root;

pub struct Gw {
    url: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn temp_dir() -> std::path::PathBuf {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("osmen-gw-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(dir: &std::path::Path, env: &[(&str, &str)], config: Option<&str>) -> Options {
    let config_file = config.map(|c| {
        let p = dir.join("gateway.toml");
        std::fs::write(&p, c).unwrap();
        p
    });
    let mut envmap: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    envmap
        .entry("OSMEN_API_KEYS".into())
        .or_insert_with(|| "key-one,key-two".into());
    Options {
        config_file,
        assets_dir: root().join("assets"),
        runtime_dir: dir.join("runtime"),
        listen: Some("127.0.0.1:0".into()),
        env: envmap,
        stack: Some(Arc::new(|| {
            Box::pin(async {
                json!({"project": "demo", "containers": [{"service": "redis", "status": "healthy"}]})
            })
        })),
    }
}

pub async fn start(env: &[(&str, &str)], config: Option<&str>) -> Gw {
    let dir = temp_dir();
    let gw = Gateway::build(&options(&dir, env, config)).unwrap();
    let l = tokio::net::TcpListener::bind(gw.listen).await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        osmen::gateway::serve(Arc::new(gw), l, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Gw {
        url,
        http: reqwest::Client::new(),
        stop: Some(tx),
        done: Some(done),
        dir,
    }
}

impl Gw {
    async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, v, headers)
    }

    async fn exec(&self, agent: &str, input: &str) -> (u16, Value) {
        self.exec_as(agent, "key-one", input).await
    }

    pub async fn exec_as(&self, agent: &str, key: &str, input: &str) -> (u16, Value) {
        let body = json!({"input": input}).to_string();
        let (s, v, _) = self
            .post(&format!("/api/v1/agents/{agent}/execute"), Some(key), &body)
            .await;
        (s, v)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut r = self.http.get(format!("{}{path}", self.url));
        if let Some(k) = key {
            r = r.header("X-API-Key", k);
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.done.take().unwrap().await.unwrap();
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One metric sample's value from Prometheus text (name with its label set, exact).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn execute_through_ollama_with_facts_and_usage() {
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let (s, v) = gw.exec("daily_brief", "what needs attention?").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent"], "daily_brief");
    assert_eq!(v["provider"], "ollama");
    assert_eq!(v["model"], "llama3.2");
    assert_eq!(v["usage"]["prompt_tokens"], 11);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert!(v["request_id"].as_str().unwrap().starts_with("req-"));
    assert!(v["duration_ms"].as_f64().unwrap() > 0.0);
    // The measured system status reached the prompt the model saw.
    let out = v["output"].as_str().unwrap();
    assert!(
        out.contains("memory_total_bytes") && out.contains("what needs attention?"),
        "{out}"
    );
    assert!(v["facts"]["memory_total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["facts"]["stack"]["containers"][0]["status"], "healthy");
    assert!(
        out.contains("\"service\": \"redis\""),
        "stack health reached the prompt: {out}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn api_keys_are_required_and_checked() {
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let body = r#"{"input": "x"}"#;
    let path = "/api/v1/agents/content_creator/execute";
    let (s, v, _) = gw.post(path, None, body).await;
    assert_eq!(s, 401);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-API-Key")
    );
    assert_eq!(gw.post(path, Some("key-three"), body).await.0, 401);
    assert_eq!(gw.post(path, Some("key-on"), body).await.0, 401);
    assert_eq!(gw.post(path, Some("key-two"), body).await.0, 200);
    assert_eq!(gw.get("/api/v1/agents", None).await.0, 401);
    let (s, t) = gw.get("/api/v1/agents", Some("key-one")).await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["agents"].as_array().unwrap().len(), 5);
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(gw.get("/health", None).await.0, 200);
    assert_eq!(gw.get("/metrics", None).await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_right_code_and_a_reason() {
    let llm = llm_standin::start().await;
    let cfg = "[gateway]\nbody_limit_kib = 1\n";
    let gw = start(&[("OLLAMA_URL", &llm.url)], Some(cfg)).await;
    let k = Some("key-one");
    let p = "/api/v1/agents/daily_brief/execute";
    let (s, v, _) = gw
        .post("/api/v1/agents/nosuch/execute", k, r#"{"input":"x"}"#)
        .await;
    assert_eq!(s, 404);
    assert!(
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "daily_brief")
    );
    let (s, v, _) = gw.post(p, k, "{not json").await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let (s, v, _) = gw.post(p, k, r#"{"text": "x"}"#).await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing \"input\"")
    );
    assert_eq!(gw.post(p, k, r#"{"input": 5}"#).await.0, 400);
    assert_eq!(
        gw.post(p, k, r#"{"input": "x", "context": [1]}"#).await.0,
        400
    );
    assert_eq!(gw.post(p, k, "[]").await.0, 400);
    let big = json!({"input": "x".repeat(4096)}).to_string();
    let (s, v, _) = gw.post(p, k, &big).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("1 KiB"));
    assert_eq!(llm.requests(), 0, "nothing reached the provider");
    assert_eq!(gw.get("/no/such/route", None).await.0, 404);
    gw.stop().await;
}

#[tokio::test]
async fn retries_honour_retry_after_then_succeed() {
    let llm = llm_standin::start().await;
    {
        let mut s = llm.script();
        s.fail_next = 2;
        s.fail_status = 503;
        s.retry_after = Some("0".into());
    }
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let (s, v) = gw.exec("content_creator", "a haiku about uptime").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(llm.requests(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn provider_failures_map_to_502_and_504() {
    let llm = llm_standin::start().await;
    {
        let mut s = llm.script();
        s.fail_next = 10;
        s.fail_status = 500;
        s.retry_after = Some("0".into());
    }
    let cfg = format!(
        "[providers.ollama]\nurl = \"{}\"\nretries = 1\ntimeout = \"400ms\"\n",
        llm.url
    );
    let gw = start(&[], Some(&cfg)).await;
    let (s, v) = gw.exec("content_creator", "x").await;
    assert_eq!(s, 502, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("ollama answered 500") && m.contains("scripted failure 500"),
        "{m}"
    );
    assert_eq!(llm.requests(), 2, "one try plus one retry");
    {
        let mut s = llm.script();
        s.fail_next = 0;
        s.latency = Duration::from_millis(1500);
    }
    let (s, v) = gw.exec("content_creator", "y").await;
    assert_eq!(s, 504, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 0.4s")
    );
    let (_, m) = gw.get("/metrics", None).await;
    assert_eq!(
        sample(
            &m,
            "osmen_errors_total{agent=\"content_creator\",kind=\"provider_5xx\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "osmen_errors_total{agent=\"content_creator\",kind=\"provider_timeout\"}"
        ),
        Some(1.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn local_first_falls_back_to_openai_and_prices_the_tokens() {
    let cloud = llm_standin::start().await;
    let dead = format!("http://127.0.0.1:{}", crate::util::free_port());
    let cfg = format!(
        "[providers.ollama]\nurl = \"{dead}\"\nretries = 0\n[prices]\n\"gpt-4\" = {{ input = 0.03, output = 0.06 }}\n"
    );
    let env = [
        ("OPENAI_BASE_URL", format!("{}/v1", cloud.url)),
        ("OPENAI_API_KEY", "sk-test-secret".to_string()),
        ("OPENAI_MODEL", "gpt-4".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = start(&env, Some(&cfg)).await;
    let (s, v) = gw.exec("content_creator", "hello").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "openai");
    assert_eq!(v["usage"]["prompt_tokens"], 1000);
    assert_eq!(
        cloud.header("authorization").as_deref(),
        Some("Bearer sk-test-secret")
    );
    let (_, m) = gw.get("/metrics", None).await;
    // 1000 x 0.03/1K + 500 x 0.06/1K = 0.06 dollars.
    let cost = sample(
        &m,
        "osmen_llm_cost_dollars_total{agent=\"content_creator\"}",
    )
    .unwrap();
    assert!((cost - 0.06).abs() < 1e-9, "{cost}");
    assert!(!m.contains("sk-test-secret"));
    let (_, h) = gw.get("/health", None).await;
    assert!(
        h.contains("\"ollama\":\"down") && !h.contains("sk-test"),
        "{h}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn anthropic_wire_format() {
    let llm = llm_standin::start().await;
    let cfg = "[agents.writer]\ndescription = \"d\"\nprompt = \"content_creator.md\"\nprovider = \"anthropic\"\n";
    let env = [
        ("ANTHROPIC_BASE_URL", llm.url.as_str()),
        ("ANTHROPIC_API_KEY", "ak-1"),
    ];
    let gw = start(&env, Some(cfg)).await;
    let (s, v) = gw.exec("writer", "release notes").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["usage"]["prompt_tokens"], 21);
    assert!(v["output"].as_str().unwrap().contains("release notes"));
    assert_eq!(llm.header("x-api-key").as_deref(), Some("ak-1"));
    assert_eq!(
        llm.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    gw.stop().await;
}

#[tokio::test]
async fn identical_requests_are_served_from_the_cache() {
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let (_, a) = gw.exec("content_creator", "same").await;
    let (_, b) = gw.exec("content_creator", "same").await;
    assert_eq!(a["cached"], false);
    assert_eq!(b["cached"], true);
    assert_eq!(a["output"], b["output"]);
    assert_eq!(llm.requests(), 1);
    // The hit is counted apart, and adds no tokens.
    let (_, m) = gw.get("/metrics", None).await;
    assert_eq!(
        sample(&m, "osmen_cache_hits_total{agent=\"content_creator\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "osmen_tokens_used_total{agent=\"content_creator\",kind=\"prompt\"}"
        ),
        Some(11.0),
        "{m}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_an_immediate_429_with_retry_after() {
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(600);
    let cfg = "[agents.slow]\ndescription = \"d\"\nprompt = \"content_creator.md\"\nconcurrency = 1\nqueue = 1\n";
    let gw = Arc::new(start(&[("OLLAMA_URL", &llm.url)], Some(cfg)).await);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let body = json!({"input": format!("n{i}")}).to_string();
            let (s, _, h) = gw
                .post("/api/v1/agents/slow/execute", Some("key-one"), &body)
                .await;
            (
                s,
                h.get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
                t.elapsed(),
            )
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        let (s, ra, took) = t.await.unwrap();
        match s {
            200 => ok += 1,
            429 => {
                rejected += 1;
                assert_eq!(ra.as_deref(), Some("1"));
                assert!(
                    took < Duration::from_millis(300),
                    "429 must be immediate: {took:?}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (ok, rejected),
        (2, 2),
        "one running + one queued, the rest rejected"
    );
    let (_, m) = gw.get("/metrics", None).await;
    assert_eq!(
        sample(
            &m,
            "osmen_requests_total{agent=\"slow\",status=\"rejected\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn memory_notes_feed_knowledge_management() {
    let llm = llm_standin::start().await;
    // No embedding model answers: memory says it searches by words.
    llm.script().no_embeddings = true;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let k = Some("key-one");
    for t in [
        "Postgres backups run nightly at 02:00 to the NAS",
        "Redis evicts with allkeys-lru at 1.5 GB",
        "Qdrant snapshots are weekly",
    ] {
        let (s, v, _) = gw
            .post("/api/v1/memory", k, &json!({"text": t}).to_string())
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v, _) = gw
        .post(
            "/api/v1/memory/search",
            k,
            r#"{"query": "when are postgres backups", "top_k": 2}"#,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["mode"], "lexical-bm25");
    assert_eq!(v["results"][0]["id"], 1);
    assert_eq!(gw.post("/api/v1/memory", k, r#"{"tags": []}"#).await.0, 400);
    let (s, v) = gw
        .exec("knowledge_management", "when do postgres backups run?")
        .await;
    assert_eq!(s, 200);
    let out = v["output"].as_str().unwrap();
    assert!(
        out.contains("nightly at 02:00"),
        "the retrieved note reached the prompt: {out}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn workflows_trigger_n8n_webhooks() {
    let n8n = llm_standin::start().await;
    let gw = start(&[("N8N_URL", &n8n.url), ("OLLAMA_URL", &n8n.url)], None).await;
    let k = Some("key-one");
    let (s, v, _) = gw
        .post(
            "/api/v1/workflows/nightly-report/trigger",
            k,
            r#"{"day": "mon"}"#,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["n8n_status"], 200);
    assert_eq!(v["response"]["received"]["day"], "mon");
    assert_eq!(v["response"]["workflow"], "nightly-report");
    let (s, v, _) = gw.post("/api/v1/workflows/missing/trigger", k, "{}").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        gw.post("/api/v1/workflows/a%20b/trigger", k, "{}").await.0,
        400
    );
    gw.stop().await;
    let gw = start(&[("OLLAMA_URL", &n8n.url)], None).await;
    let (s, v, _) = gw.post("/api/v1/workflows/x/trigger", k, "{}").await;
    assert_eq!(s, 503);
    assert!(v["error"]["message"].as_str().unwrap().contains("N8N_URL"));
    gw.stop().await;
}

#[tokio::test]
async fn metrics_carry_true_percentiles_of_injected_latencies() {
    let llm = llm_standin::start().await;
    // 20 requests: 18 at ~50 ms, then 150 ms and 400 ms.
    let mut lat: Vec<Duration> = vec![Duration::from_millis(50); 18];
    lat.push(Duration::from_millis(150));
    lat.push(Duration::from_millis(400));
    llm.script().latencies = lat;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    for i in 0..20 {
        let (s, _) = gw.exec("content_creator", &format!("distinct {i}")).await;
        assert_eq!(s, 200);
    }
    let body = json!({"input": "k2"}).to_string();
    gw.post(
        "/api/v1/agents/content_creator/execute",
        Some("key-two"),
        &body,
    )
    .await;
    let (_, m) = gw.get("/metrics", None).await;
    let q = |x: &str| {
        sample(
            &m,
            &format!(
                "osmen_request_duration_seconds{{agent=\"content_creator\",quantile=\"{x}\"}}"
            ),
        )
        .unwrap()
    };
    // The gateway adds its own time on top of the stand-in's; allow 40 ms of it.
    assert!((0.050..0.090).contains(&q("0.5")), "p50 {}", q("0.5"));
    assert!((0.150..0.190).contains(&q("0.95")), "p95 {}", q("0.95"));
    assert!((0.400..0.440).contains(&q("0.99")), "p99 {}", q("0.99"));
    assert_eq!(
        sample(
            &m,
            "osmen_requests_total{agent=\"content_creator\",status=\"success\"}"
        ),
        Some(21.0)
    );
    assert_eq!(
        sample(
            &m,
            "osmen_agent_duration_seconds_bucket{agent=\"content_creator\",le=\"+Inf\"}"
        ),
        Some(21.0)
    );
    assert_eq!(
        sample(
            &m,
            "osmen_tokens_used_total{agent=\"content_creator\",kind=\"prompt\"}"
        ),
        Some(21.0 * 11.0)
    );
    assert_eq!(sample(&m, "osmen_active_users"), Some(2.0));
    assert!(
        sample(
            &m,
            "osmen_agent_cpu_seconds_total{agent=\"content_creator\"}"
        )
        .unwrap()
            > 0.0
    );
    // Quantiles of an agent that saw nothing are NaN, not zero.
    assert!(
        sample(
            &m,
            "osmen_request_duration_seconds{agent=\"daily_brief\",quantile=\"0.5\"}"
        )
        .unwrap()
        .is_nan()
    );
    let (_, st) = gw.get("/api/v1/agents/status", Some("key-one")).await;
    let st: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["agents"]["content_creator"]["window_requests"], 21);
    assert!(st["agents"]["daily_brief"]["p99_ms"].is_null());
    gw.stop().await;
}

#[tokio::test]
async fn cpu_and_memory_are_measured_per_execution() {
    // Known CPU work: ~200 ms of spinning inside the polls, checked against the thread's
    // CPU time as getrusage reports it around the whole execution (a loaded machine gives
    // the spin less CPU, and both clocks see the same).
    fn thread_cpu() -> f64 {
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
    let usage = Arc::new(Usage::default());
    let before = thread_cpu();
    Accounted::new(
        async {
            let end = std::time::Instant::now() + Duration::from_millis(200);
            let mut x = 1u64;
            while std::time::Instant::now() < end {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            tokio::task::yield_now().await;
        },
        usage.clone(),
    )
    .await;
    let spent = thread_cpu() - before;
    let cpu = usage.cpu_ns.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9;
    assert!(spent > 0.02, "the spin got {spent} s of CPU");
    assert!(
        cpu <= spent + 0.005 && cpu >= spent * 0.8 - 0.005,
        "accounted {cpu} s, the thread spent {spent} s"
    );
    // Sleeping costs no CPU.
    let idle = Arc::new(Usage::default());
    Accounted::new(tokio::time::sleep(Duration::from_millis(200)), idle.clone()).await;
    assert!(idle.cpu_ns.load(std::sync::atomic::Ordering::Relaxed) < 20_000_000);
    // 50 MB held across an await shows as the peak; it is freed inside the execution.
    let mem = Arc::new(Usage::default());
    Accounted::new(
        async {
            let v = vec![1u8; 50 << 20];
            tokio::task::yield_now().await;
            std::hint::black_box(&v);
        },
        mem.clone(),
    )
    .await;
    let peak = mem.peak_bytes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak >= 50 << 20, "peak {peak}");
    assert!(mem.live_bytes.load(std::sync::atomic::Ordering::Relaxed) < 1 << 20);
}

#[tokio::test]
async fn keys_are_required_off_loopback_and_generated_on_it() {
    let dir = temp_dir();
    let mut o = options(&dir, &[], None);
    o.env.remove("OSMEN_API_KEYS");
    o.listen = Some("0.0.0.0:0".into());
    let e = Gateway::build(&o).err().unwrap().to_string();
    assert!(
        e.contains("refusing to serve on 0.0.0.0:0 without API keys"),
        "{e}"
    );
    o.listen = Some("127.0.0.1:0".into());
    let gw = Gateway::build(&o).unwrap();
    let path = gw.generated_key_file.clone().unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(gw.authorize(key.trim().as_bytes()).is_some());
    assert!(gw.authorize(b"guess").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn health_reports_down_dependencies_and_ready_says_no() {
    let dead = format!("http://127.0.0.1:{}", crate::util::free_port());
    let gw = start(&[("OLLAMA_URL", &dead)], None).await;
    let (s, h) = gw.get("/health", None).await;
    assert_eq!(s, 200, "liveness stays 200 when a dependency is down");
    assert!(h.contains("\"ollama\":\"down"), "{h}");
    let (s, r) = gw.get("/ready", None).await;
    assert_eq!(s, 503);
    assert!(r.contains("no LLM provider answers"), "{r}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_requests_finish() {
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(500);
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let url = gw.url.clone();
    let http = gw.http.clone();
    let inflight = tokio::spawn(async move {
        http.post(format!("{url}/api/v1/agents/content_creator/execute"))
            .header("X-API-Key", "key-one")
            .header("content-type", "application/json")
            .body(r#"{"input": "finish me"}"#)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    gw.stop().await;
    assert_eq!(inflight.await.unwrap().unwrap(), 200);
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    let Ok(_) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but promtool is not installed (.ci/run unpacks it)"
        );
        eprintln!("skipped: promtool not installed");
        return;
    };
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    for i in 0..3 {
        gw.exec("content_creator", &format!("m{i}")).await;
    }
    gw.exec("nosuch", "x").await;
    let (_, m) = gw.get("/metrics", None).await;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "promtool check metrics failed:\n{report}\n---\n{m}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn grafana_dashboard_queries_only_metrics_the_gateway_exports() {
    let text = std::fs::read_to_string(root().join("assets/grafana/osmen-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let (_, m) = gw.get("/metrics", None).await;
    let exported: Vec<&str> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("osmen_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                let base = n.trim_end_matches("_bucket");
                assert!(
                    exported.contains(&base),
                    "{} queries {n}, which /metrics does not export",
                    p["title"]
                );
            }
        }
    }
    gw.stop().await;
}

const NOTES: [&str; 3] = [
    "Postgres backups run nightly at 02:00 to the NAS",
    "Redis evicts keys with allkeys-lru at 1.5 GB",
    "Qdrant snapshots are taken weekly on Sunday",
];

#[tokio::test]
async fn memory_uses_embeddings_when_a_model_answers() {
    let llm = llm_standin::start().await;
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let k = Some("key-one");
    for t in NOTES {
        let (s, v, _) = gw
            .post("/api/v1/memory", k, &json!({"text": t}).to_string())
            .await;
        assert_eq!(
            (s, v["mode"].as_str()),
            (201, Some("embedded-vector")),
            "{v}"
        );
    }
    let (_, v, _) = gw
        .post(
            "/api/v1/memory/search",
            k,
            r#"{"query": "redis evicts keys", "top_k": 1}"#,
        )
        .await;
    assert_eq!(v["mode"], "embedded-vector");
    assert_eq!(v["results"][0]["id"], 2);
    // The embedding model goes away: the same store answers by words, and says why.
    llm.script().no_embeddings = true;
    let (_, v, _) = gw
        .post(
            "/api/v1/memory/search",
            k,
            r#"{"query": "qdrant snapshots", "top_k": 1}"#,
        )
        .await;
    assert_eq!(v["mode"], "lexical-bm25");
    assert_eq!(v["results"][0]["id"], 3);
    assert!(
        v["fallback_reason"].as_str().unwrap().contains("404"),
        "{v}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn memory_goes_to_qdrant_when_configured() {
    let llm = llm_standin::start().await;
    let qdrant = llm_standin::start().await;
    let gw = start(
        &[("OLLAMA_URL", &llm.url), ("QDRANT_URL", &qdrant.url)],
        None,
    )
    .await;
    let k = Some("key-one");
    for t in NOTES {
        let (s, v, _) = gw
            .post("/api/v1/memory", k, &json!({"text": t}).to_string())
            .await;
        assert_eq!((s, v["mode"].as_str()), (201, Some("qdrant-vector")), "{v}");
    }
    let cols = qdrant.state.collections.lock().unwrap().clone();
    assert_eq!(
        cols.get("osmen_memories"),
        Some(&(64, "Cosine".to_string()))
    );
    assert_eq!(qdrant.state.points.lock().unwrap().len(), 3);
    let (_, v, _) = gw
        .post(
            "/api/v1/memory/search",
            k,
            r#"{"query": "postgres backups nightly", "top_k": 2}"#,
        )
        .await;
    assert_eq!(v["mode"], "qdrant-vector");
    assert_eq!(v["results"][0]["id"], 1);
    assert_eq!(v["results"][0]["text"], NOTES[0]);
    let (s, v) = gw
        .exec("knowledge_management", "when do postgres backups run")
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["facts"]["mode"], "qdrant-vector");
    assert!(v["output"].as_str().unwrap().contains("nightly at 02:00"));
    gw.stop().await;
}

/// A throwaway Redis container (the Debian-built test image) on a loopback port.
struct RedisBox(String);

impl RedisBox {
    fn start() -> Option<(RedisBox, u16)> {
        if !crate::util::docker_ready() {
            return None;
        }
        let name = format!("osmenit-redis-{}", std::process::id());
        let (ok, out) = crate::util::docker(&[
            "run",
            "-d",
            "--rm",
            "--name",
            &name,
            "-p",
            "127.0.0.1::6379",
            "osmen-redis:test",
        ]);
        assert!(ok, "{out}");
        let port = crate::util::published_port(&name, "6379/tcp");
        let ready = crate::util::wait_until(Duration::from_secs(10), || {
            crate::util::docker(&["exec", &name, "redis-cli", "ping"]).1 == "PONG"
        });
        assert!(ready, "redis did not answer");
        Some((RedisBox(name), port))
    }
}

impl Drop for RedisBox {
    fn drop(&mut self) {
        crate::util::docker(&["rm", "-f", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_completions_through_redis() {
    let Some((redis, port)) = RedisBox::start() else {
        return;
    };
    let llm = llm_standin::start().await;
    let url = format!("redis://127.0.0.1:{port}/0");
    let env = [
        ("OLLAMA_URL", llm.url.as_str()),
        ("REDIS_URL", url.as_str()),
    ];
    let a = start(&env, None).await;
    let b = start(&env, None).await;
    let (s, first) = a.exec("content_creator", "shared prompt").await;
    assert_eq!(
        (s, first["cached"].as_bool()),
        (200, Some(false)),
        "{first}"
    );
    let (s, second) = b.exec("content_creator", "shared prompt").await;
    assert_eq!(
        (s, second["cached"].as_bool()),
        (200, Some(true)),
        "{second}"
    );
    assert_eq!(first["output"], second["output"]);
    assert_eq!(llm.requests(), 1, "the second replica answered from Redis");
    let keys = crate::util::docker(&[
        "exec",
        &redis.0,
        "redis-cli",
        "--scan",
        "--pattern",
        "osmen:llm:*",
    ])
    .1;
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let ttl: i64 = crate::util::docker(&["exec", &redis.0, "redis-cli", "ttl", keys.trim()])
        .1
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    let (_, h) = a.get("/health", None).await;
    assert!(h.contains("\"redis\":\"up\""), "{h}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_give_up_in_the_queue_free_their_place() {
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(900);
    let cfg = "[agents.slow]\ndescription = \"d\"\nprompt = \"content_creator.md\"\nconcurrency = 1\nqueue = 1\n";
    let gw = start(&[("OLLAMA_URL", &llm.url)], Some(cfg)).await;
    let url = format!("{}/api/v1/agents/slow/execute", gw.url);
    let post = |input: &'static str, timeout: Duration| {
        let http = reqwest::Client::builder().timeout(timeout).build().unwrap();
        let url = url.clone();
        async move {
            http.post(url)
                .header("X-API-Key", "key-one")
                .header("content-type", "application/json")
                .body(format!("{{\"input\": \"{input}\"}}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    let running = tokio::spawn(post("first", Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Takes the only queue place, then gives up.
    assert!(post("impatient", Duration::from_millis(150)).await.is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The place is free again: this one waits its turn instead of a 429.
    let waited = post("patient", Duration::from_secs(10)).await.unwrap();
    assert_eq!(waited, 200);
    assert_eq!(running.await.unwrap().unwrap(), 200);
    let (_, m) = gw.get("/metrics", None).await;
    assert_eq!(sample(&m, "osmen_queue_depth{agent=\"slow\"}"), Some(0.0));
    gw.stop().await;
}

/// The guide's load test on the shipped defaults (10 users x 100 requests, at most 100 in
/// flight, one key): every request is answered (they wait for a slot rather than being
/// refused), `daily_brief` is never answered from the cache (its prompt carries live
/// facts), and the gateway's latency includes the wait: its total over the requests
/// matches what the clients measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_burst_waits_for_slots_and_latency_includes_the_wait() {
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(20);
    let gw = start(&[("OLLAMA_URL", &llm.url)], None).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(100)
        .build()
        .unwrap();
    let permits = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    for user in 0..10 {
        for i in 0..100 {
            let (client, permits) = (client.clone(), permits.clone());
            let url = format!("{}/api/v1/agents/daily_brief/execute", gw.url());
            tasks.push(tokio::spawn(async move {
                let _p = permits.acquire_owned().await.unwrap();
                let t = std::time::Instant::now();
                let r = client
                    .post(url)
                    .header("X-API-Key", "key-one")
                    .json(&json!({"input": format!("user {user} request {i}")}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                (status, v["cached"].as_bool(), t.elapsed())
            }));
        }
    }
    let mut ok = 0;
    let mut client_sum = 0.0;
    for t in tasks {
        let (status, cached, took) = t.await.unwrap();
        if status == 200 {
            ok += 1;
            assert_eq!(
                cached,
                Some(false),
                "daily_brief must not be cached by default"
            );
        }
        client_sum += took.as_secs_f64();
    }
    assert!(ok >= 990, "{ok} of 1000 succeeded on the shipped defaults");
    assert_eq!(llm.requests(), ok, "every answer came from the provider");
    let (_, m) = gw.get("/metrics", None).await;
    let value = |line: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in:\n{m}"))
    };
    let gw_sum = value("osmen_agent_duration_seconds_sum{agent=\"daily_brief\"}");
    let wait_sum = value("osmen_agent_queue_wait_seconds_sum{agent=\"daily_brief\"}");
    assert!(
        wait_sum > 0.3 * gw_sum,
        "100 in flight through 4 slots: most of the latency is the wait ({wait_sum} of {gw_sum})"
    );
    // The clients' time also holds the HTTP exchange; the gateway's must be most of it.
    let ratio = gw_sum / client_sum;
    assert!(
        (0.85..=1.0).contains(&ratio),
        "gateway latency total {gw_sum:.2}s against the clients' {client_sum:.2}s ({ratio:.3})"
    );
    assert_eq!(
        value("osmen_http_responses_total{code=\"200\"}") as usize,
        ok,
        "every answer is counted by status"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_the_json_error_body() {
    let gw = start(&[], None).await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/agents/daily_brief/execute", gw.url()))
        .header("X-API-Key", "key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.expect("a JSON body, not an empty one");
    assert_eq!(v["error"]["code"], 405, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("POST"),
        "{v}"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/health", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], 405);
    gw.stop().await;
}
