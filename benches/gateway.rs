//! Gateway benchmark (`cargo bench --bench gateway`), bounded in time, loopback only:
//!
//! 1. Added latency: 64 concurrent clients call a stand-in LLM (Ollama's /api/chat, 20 ms
//!    fixed latency) directly, then through the gateway's execute route; the difference of
//!    the P99s is the latency the gateway adds. The gateway runs as its own process
//!    (`osmen gateway`) so its RSS under load is its own.
//! 2. `wrk` (when installed) against GET /api/v1/agents/status with a key, 64 connections.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

mod common;

const CLIENTS: usize = 64;
const PHASE: Duration = Duration::from_secs(10);
const LLM_LATENCY: Duration = Duration::from_millis(20);
const KEY: &str = "bench-key";

struct Result_ {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    secs: f64,
}

async fn load(
    url: String,
    body: impl Fn(u64) -> Value + Send + Sync + 'static,
    key: bool,
) -> Result_ {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let body = Arc::new(body);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut ok, mut failed, mut i) = (0u64, 0u64, 0u64);
            while start.elapsed() < PHASE {
                let mut r = client.post(&url).json(&body(c as u64 * 1_000_000 + i));
                if key {
                    r = r.header("X-API-Key", KEY);
                }
                let t = Instant::now();
                match r.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        ok += 1;
                        let _ = h.record(t.elapsed().as_micros() as u64);
                    }
                    _ => failed += 1,
                }
                i += 1;
            }
            (h, ok, failed)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (h, o, f) = t.await.unwrap();
        hist.add(&h).unwrap();
        ok += o;
        failed += f;
    }
    Result_ {
        hist,
        ok,
        failed,
        secs: start.elapsed().as_secs_f64(),
    }
}

fn report(name: &str, r: &Result_) {
    let ms = |q: f64| r.hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<28} {:>7} ok {:>4} failed {:>8.0} req/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        r.ok,
        r.failed,
        r.ok as f64 / r.secs,
        ms(0.5),
        ms(0.95),
        ms(0.99),
        r.hist.max() as f64 / 1000.0
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let llm = common::standin(LLM_LATENCY).await;
        let dir = std::env::temp_dir().join(format!("osmen-bench-{}", std::process::id()));
        let (mut gw, port) = common::gateway(
            &dir,
            &format!(
                "[gateway]\ncache_entries = 0\n[providers.ollama]\nurl = \"{llm}\"\nconcurrency = 128\nretries = 0\n\
                 [agents.daily_brief]\ndescription = \"bench\"\nprompt = \"content_creator.md\"\nconcurrency = 128\nqueue = 128\n"
            ),
            KEY,
        )
        .await;
        let base = format!("http://127.0.0.1:{port}");
        println!("added latency: {CLIENTS} clients, {}s per phase, stand-in LLM at {} ms", PHASE.as_secs(), LLM_LATENCY.as_millis());
        let direct = load(format!("{llm}/api/chat"), |i| json!({"model": "m", "stream": false, "messages": [{"role": "user", "content": format!("n{i}")}]}), false).await;
        report("stand-in directly", &direct);
        let rss_before = common::status_kib(gw.id(), "VmRSS:");
        let via = load(format!("{base}/api/v1/agents/daily_brief/execute"), |i| json!({"input": format!("n{i}")}), true).await;
        report("through the gateway", &via);
        let p99 = |r: &Result_| r.hist.value_at_quantile(0.99) as f64 / 1000.0;
        let p50 = |r: &Result_| r.hist.value_at_quantile(0.5) as f64 / 1000.0;
        println!(
            "gateway adds: p50 {:+.2} ms, p99 {:+.2} ms",
            p50(&via) - p50(&direct),
            p99(&via) - p99(&direct)
        );
        println!(
            "gateway RSS: {} KiB idle, peak {} KiB under load",
            rss_before,
            common::status_kib(gw.id(), "VmHWM:")
        );
        if Command::new("wrk").arg("--version").output().is_ok() {
            let out = Command::new("wrk")
                .args(["-t2", "-c64", "-d10s", "--latency", "-H", &format!("X-API-Key: {KEY}")])
                .arg(format!("{base}/api/v1/agents/status"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            println!("wrk -t2 -c64 -d10s GET /api/v1/agents/status:");
            for l in text.lines().filter(|l| l.contains("Requests/sec") || l.trim_start().starts_with("99%") || l.trim_start().starts_with("50%") || l.contains("Non-2xx")) {
                println!("  {}", l.trim());
            }
        } else {
            println!("wrk not installed: status-route throughput not measured");
        }
        let _ = gw.kill();
        let _ = gw.wait();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
