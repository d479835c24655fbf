//! Gateway benchmark (`cargo bench --bench gateway`), bounded in time, loopback only:
//!
//! 1. Added latency: 64 concurrent clients call a stand-in LLM (Ollama's /api/chat, 20 ms
//!    fixed latency) directly, and through the gateway's execute route; the difference of
//!    the P99s is the latency the gateway adds. The two are measured in alternating 1 s
//!    slices (direct, gateway, gateway, direct, ...; 10 of each) so that both see the same
//!    machine: on two shared cores a slower minute would otherwise be charged to whichever
//!    ran in it. Reported: the P99s over all slices, and the median of the ten per-pair
//!    differences. The gateway runs as its own process (`osmen gateway`) so its RSS under
//!    load is its own.
//! 2. `wrk` (when installed) against GET /api/v1/agents/status with a key, 64 connections,
//!    and against its Python peer (`benches/peer/status_peer.py`: FastAPI on uvicorn, the
//!    same route shape and answer; `pip install fastapi uvicorn`) in the same run.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

mod common;

const CLIENTS: usize = 64;
const SLICE: Duration = Duration::from_secs(2);
const PAIRS: usize = 10;
const LLM_LATENCY: Duration = Duration::from_millis(20);
const KEY: &str = "bench-key";

struct Result_ {
    hist: Histogram<u64>,
    ok: u64,
    failed: u64,
    secs: f64,
}

type Body = Arc<dyn Fn(u64) -> Value + Send + Sync>;

/// One slice: `CLIENTS` clients sending for `SLICE`, each waiting for its answer.
async fn load(client: &reqwest::Client, url: &str, body: &Body, key: bool, round: u64) -> Result_ {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut ok, mut failed, mut i) = (0u64, 0u64, 0u64);
            while start.elapsed() < SLICE {
                let n = (round * CLIENTS as u64 + c as u64) * 1_000_000 + i;
                let mut r = client.post(&url).json(&body(n));
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

/// `wrk -t2 -c64 -d10s` with the key against `url`: prints its figures and returns the
/// requests per second (None when every answer was not a 2xx or wrk failed).
fn wrk(name: &str, url: &str) -> Option<f64> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            "-d10s",
            "--latency",
            "-H",
            &format!("X-API-Key: {KEY}"),
        ])
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("wrk -t2 -c64 -d10s GET /api/v1/agents/status, {name}:");
    for l in text.lines().filter(|l| {
        l.contains("Requests/sec")
            || l.trim_start().starts_with("99%")
            || l.trim_start().starts_with("50%")
            || l.contains("Non-2xx")
    }) {
        println!("  {}", l.trim());
    }
    if text.contains("Non-2xx") {
        return None;
    }
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
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
                 [agents.daily_brief]\ndescription = \"bench\"\nprompt = \"daily_brief.md\"\ntool = \"system_status\"\nconcurrency = 128\nqueue = 128\n"
            ),
            KEY,
        )
        .await;
        let base = format!("http://127.0.0.1:{port}");
        println!(
            "added latency: {CLIENTS} clients, {PAIRS} alternating slices of {} s each way, stand-in LLM at {} ms",
            SLICE.as_secs(),
            LLM_LATENCY.as_millis()
        );
        let client = || {
            reqwest::Client::builder()
                .pool_max_idle_per_host(CLIENTS)
                .build()
                .unwrap()
        };
        let (to_llm, to_gw) = (client(), client());
        let direct_url = format!("{llm}/api/chat");
        let via_url = format!("{base}/api/v1/agents/daily_brief/execute");
        let direct_body: Body = Arc::new(|i| {
            json!({"model": "m", "stream": false, "messages": [{"role": "user", "content": format!("n{i}")}]})
        });
        let via_body: Body = Arc::new(|i| json!({"input": format!("n{i}")}));
        // Warm: every connection opened and both paths run once before anything counts.
        load(&to_llm, &direct_url, &direct_body, false, 0).await;
        load(&to_gw, &via_url, &via_body, true, 0).await;
        let rss_before = common::status_kib(gw.id(), "VmRSS:");
        let empty = || Result_ {
            hist: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap(),
            ok: 0,
            failed: 0,
            secs: 0.0,
        };
        let (mut direct, mut via) = (empty(), empty());
        let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
        let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1000.0;
        let mut added = Vec::new();
        // The gateway process's own CPU (user + system), charged only over its slices.
        let mut gw_cpu = 0.0;
        for pair in 0..PAIRS {
            let round = 1 + 2 * pair as u64;
            let run_direct = || load(&to_llm, &direct_url, &direct_body, false, round);
            let run_via = || async {
                let before = common::cpu_seconds(gw.id());
                let r = load(&to_gw, &via_url, &via_body, true, round + 1).await;
                (r, common::cpu_seconds(gw.id()) - before)
            };
            let (d, (v, cpu)) = if pair % 2 == 0 {
                let d = run_direct().await;
                (d, run_via().await)
            } else {
                let v = run_via().await;
                (run_direct().await, v)
            };
            gw_cpu += cpu;
            added.push(p99(&v.hist) - p99(&d.hist));
            for (sum, r) in [(&mut direct, d), (&mut via, v)] {
                sum.hist.add(&r.hist).unwrap();
                sum.ok += r.ok;
                sum.failed += r.failed;
                sum.secs += r.secs;
            }
        }
        report("stand-in directly", &direct);
        report("through the gateway", &via);
        added.sort_by(f64::total_cmp);
        println!(
            "gateway adds: p50 {:+.2} ms, p99 {:+.2} ms over all slices; per pair of slices p99 {:+.2} ms median (from {:+.2} to {:+.2} ms)",
            p50(&via.hist) - p50(&direct.hist),
            p99(&via.hist) - p99(&direct.hist),
            (added[PAIRS / 2 - 1] + added[PAIRS / 2]) / 2.0,
            added[0],
            added[PAIRS - 1]
        );
        println!(
            "gateway CPU: {:.0} us per execute (user + system over its slices, {} executes)",
            gw_cpu * 1e6 / via.ok.max(1) as f64,
            via.ok
        );
        println!(
            "gateway RSS: {} KiB idle, peak {} KiB under load",
            rss_before,
            common::status_kib(gw.id(), "VmHWM:")
        );
        if Command::new("wrk").arg("--version").output().is_ok() {
            let ours = wrk("the gateway", &format!("{base}/api/v1/agents/status"));
            // The Python peer (FastAPI on uvicorn) answers the gateway's own status JSON.
            let sample = dir.join("status.json");
            let body = reqwest::Client::new()
                .get(format!("{base}/api/v1/agents/status"))
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            std::fs::write(&sample, body).unwrap();
            let peer_port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/status_peer.py");
            match Command::new("python3")
                .arg(script)
                .arg(peer_port.to_string())
                .arg(&sample)
                .arg(KEY)
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                Ok(mut peer) => {
                    let mut up = false;
                    for _ in 0..100 {
                        if std::net::TcpStream::connect(("127.0.0.1", peer_port)).is_ok() {
                            up = true;
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    if up {
                        let theirs = wrk(
                            "FastAPI on uvicorn (the peer)",
                            &format!("http://127.0.0.1:{peer_port}/api/v1/agents/status"),
                        );
                        if let (Some(a), Some(b)) = (ours, theirs) {
                            println!("status route: the gateway answers {:.1}x the peer's requests/s", a / b);
                        }
                    } else {
                        println!("the Python peer did not start (pip install fastapi uvicorn)");
                    }
                    let _ = peer.kill();
                    let _ = peer.wait();
                }
                Err(e) => println!("python3 not available for the peer: {e}"),
            }
        } else {
            println!("wrk not installed: status-route throughput not measured");
        }
        let _ = gw.kill();
        let _ = gw.wait();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
