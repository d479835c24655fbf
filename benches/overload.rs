//! Overload benchmark (`cargo bench --bench overload`), bounded, loopback only: 2,000
//! concurrent clients against an agent limited to 64 running and 64 queued (10x its
//! capacity and more), for 15 s, through `osmen gateway` in its own process, with a
//! stand-in LLM that takes 200 ms per answer. Reports what was admitted and what was
//! rejected, the latency of the rejections (goal: P99 under 5 ms), that every 429 carries
//! Retry-After, the gateway's RSS and open files idle, at peak and after, and whether it
//! serves normally once the load stops. The per-key rate limit is off here (one key for
//! every client): the agent's own admission is what is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

mod common;
use common::{fds, status_kib};

const CLIENTS: usize = 2000;
const LIMIT: usize = 64;
const QUEUE: usize = 64;
const PHASE: Duration = Duration::from_secs(15);
const LLM_LATENCY: Duration = Duration::from_millis(200);
const KEY: &str = "overload-key";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let llm = common::standin(LLM_LATENCY).await;
        let dir = std::env::temp_dir().join(format!("osmen-overload-{}", std::process::id()));
        let (mut gw, port) = common::gateway(
            &dir,
            &format!(
                "[gateway]\ncache_entries = 0\n[providers.ollama]\nurl = \"{llm}\"\n\
                 concurrency = {LIMIT}\nretries = 0\n[agents.daily_brief]\ndescription = \
                 \"overload\"\nprompt = \"content_creator.md\"\nconcurrency = {LIMIT}\n\
                 queue = {QUEUE}\n"
            ),
            KEY,
        )
        .await;
        let pid = gw.id();
        let url = format!("http://127.0.0.1:{port}/api/v1/agents/daily_brief/execute");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        // Warm: one answer, then the idle figures.
        let _ = client.post(&url).header("X-API-Key", KEY).json(&json!({"input": "warm"})).send().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (rss_idle, fds_idle) = (status_kib(pid, "VmRSS:"), fds(pid));

        let peak_fds = Arc::new(AtomicU64::new(0));
        let sampling = {
            let peak = peak_fds.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(fds(pid) as u64, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut rejected = ok.clone();
                let (mut other, mut no_retry_after, mut i) = (0u64, 0u64, 0u64);
                while start.elapsed() < PHASE {
                    let t = Instant::now();
                    let r = client
                        .post(&url)
                        .header("X-API-Key", KEY)
                        .json(&json!({"input": format!("c{c} n{i}")}))
                        .send()
                        .await;
                    i += 1;
                    match r {
                        Ok(resp) => {
                            let code = resp.status().as_u16();
                            let has_retry = resp.headers().contains_key("retry-after");
                            let _ = resp.bytes().await;
                            let us = t.elapsed().as_micros() as u64;
                            match code {
                                200 => {
                                    let _ = ok.record(us.max(1));
                                }
                                429 => {
                                    let _ = rejected.record(us.max(1));
                                    if !has_retry {
                                        no_retry_after += 1;
                                    }
                                    // A client that honours Retry-After would wait; this
                                    // one comes back after a short pause to keep the
                                    // pressure at 2,000 clients.
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                _ => other += 1,
                            }
                        }
                        Err(_) => other += 1,
                    }
                }
                (ok, rejected, other, no_retry_after)
            }));
        }
        let mut ok = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut rejected = ok.clone();
        let (mut other, mut no_retry) = (0, 0);
        for t in tasks {
            let (o, r, x, n) = t.await.unwrap();
            ok.add(&o).unwrap();
            rejected.add(&r).unwrap();
            other += x;
            no_retry += n;
        }
        let secs = start.elapsed().as_secs_f64();
        sampling.abort();
        let rss_peak = status_kib(pid, "VmHWM:");
        // The clients go away (their kept-alive connections with them).
        drop(client);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let client = reqwest::Client::new();
        let (rss_after, fds_after) = (status_kib(pid, "VmRSS:"), fds(pid));
        // Recovery: 20 requests one after another, each must be answered normally.
        let mut rec = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut rec_ok = 0;
        for i in 0..20 {
            let t = Instant::now();
            if let Ok(r) = client.post(&url).header("X-API-Key", KEY).json(&json!({"input": format!("after {i}")})).send().await
                && r.status().as_u16() == 200
            {
                rec_ok += 1;
                let _ = rec.record(t.elapsed().as_micros() as u64);
            }
        }
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "overload: {CLIENTS} clients for {secs:.1}s against an agent limit of {LIMIT} running + {QUEUE} queued, stand-in LLM {} ms",
            LLM_LATENCY.as_millis()
        );
        println!(
            "admitted  {:>7} answers ({:.0}/s)  p50 {:.1} ms  p99 {:.1} ms",
            ok.len(),
            ok.len() as f64 / secs,
            ms(&ok, 0.5),
            ms(&ok, 0.99)
        );
        println!(
            "rejected  {:>7} x 429 ({:.0}/s)  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  without Retry-After: {no_retry}",
            rejected.len(),
            rejected.len() as f64 / secs,
            ms(&rejected, 0.5),
            ms(&rejected, 0.95),
            ms(&rejected, 0.99),
            rejected.max() as f64 / 1000.0
        );
        println!("other     {other:>7} (errors, timeouts, other codes)");
        println!(
            "gateway RSS: idle {rss_idle} KiB, peak {rss_peak} KiB ({:.2}x), 2 s after {rss_after} KiB; open files: idle {fds_idle}, peak {}, after {fds_after}",
            rss_peak as f64 / rss_idle.max(1) as f64,
            peak_fds.load(Ordering::Relaxed)
        );
        println!(
            "recovery: {rec_ok}/20 answered after the load, p50 {:.1} ms p99 {:.1} ms (the stand-in takes {} ms)",
            ms(&rec, 0.5),
            ms(&rec, 0.99),
            LLM_LATENCY.as_millis()
        );
        let _ = gw.kill();
        let _ = gw.wait();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
