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
        // Phase 1: clients that honour Retry-After with jitter (what the header is for);
        // phase 2:
        // clients that ignore it and come back after 50 ms, which saturates this 2-core
        // machine: then each request waits behind the other clients' in the kernel and
        // in both processes' run queues, and its latency is clients / throughput
        // (Little's law) whatever the server does.
        // First, every client opens its connection with one request at once (the storm
        // of 2,000 connects, measured apart), then waits out the Retry-After.
        let storm = {
            let mut t = Vec::new();
            for c in 0..CLIENTS {
                let (client, url) = (client.clone(), url.clone());
                t.push(tokio::spawn(async move {
                    let s = Instant::now();
                    let _ = client
                        .post(&url)
                        .header("X-API-Key", KEY)
                        .json(&json!({"input": format!("open {c}")}))
                        .send()
                        .await
                        .map(|r| r.status());
                    s.elapsed().as_micros() as u64
                }));
            }
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            for x in t {
                let _ = h.record(x.await.unwrap().max(1));
            }
            h
        };
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let honour = phase(&client, &url, Retry::Honour).await;
        let ignore = phase(&client, &url, Retry::After(Duration::from_millis(50))).await;
        let secs = honour.secs + ignore.secs;
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
        // The gateway hands freed memory back once a minute: RSS a minute and more after.
        tokio::time::sleep(Duration::from_secs(63)).await;
        let rss_later = status_kib(pid, "VmRSS:");
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "overload: {CLIENTS} clients for {secs:.1}s (two phases) against an agent limit of {LIMIT} running + {QUEUE} queued, stand-in LLM {} ms",
            LLM_LATENCY.as_millis()
        );
        println!(
            "connect storm: {CLIENTS} first requests at once (new connections): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            ms(&storm, 0.5),
            ms(&storm, 0.99),
            storm.max() as f64 / 1000.0
        );
        for (what, r) in [
            ("clients honouring Retry-After (plus up to 1 s of jitter)", &honour),
            ("clients ignoring it (retry after 50 ms)", &ignore),
        ] {
            println!("{what}, {:.1} s:", r.secs);
            println!(
                "  admitted  {:>7} answers ({:.0}/s)  p50 {:.1} ms  p99 {:.1} ms",
                r.ok.len(),
                r.ok.len() as f64 / r.secs,
                ms(&r.ok, 0.5),
                ms(&r.ok, 0.99)
            );
            println!(
                "  rejected  {:>7} x 429 ({:.0}/s)  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  without Retry-After: {}",
                r.rejected.len(),
                r.rejected.len() as f64 / r.secs,
                ms(&r.rejected, 0.5),
                ms(&r.rejected, 0.95),
                ms(&r.rejected, 0.99),
                r.rejected.max() as f64 / 1000.0,
                r.no_retry
            );
            println!("  other     {:>7} (errors, timeouts, other codes)", r.other);
        }
        println!(
            "gateway RSS: idle {rss_idle} KiB, peak {rss_peak} KiB ({:.2}x), 2 s after {rss_after} KiB, a minute after the recovery {rss_later} KiB; open files: idle {fds_idle}, peak {}, after {fds_after}",
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

enum Retry {
    /// Wait as long as the 429's Retry-After says, plus a random share of a second
    /// ("full jitter"), as well-behaved clients do so that they do not come back as one
    /// herd.
    Honour,
    /// Come back after this pause whatever the answer said.
    After(Duration),
}

/// A pseudo-random number per client and attempt (splitmix64): no RNG crate needed.
fn jitter(client: u64, attempt: u64) -> u64 {
    let mut z = client
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(attempt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Phase {
    ok: Histogram<u64>,
    rejected: Histogram<u64>,
    other: u64,
    no_retry: u64,
    secs: f64,
}

/// `CLIENTS` clients sending for `PHASE`, each waiting for its answer before the next.
async fn phase(client: &reqwest::Client, url: &str, retry: Retry) -> Phase {
    let retry = Arc::new(retry);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, retry) = (client.clone(), url.to_string(), retry.clone());
        tasks.push(tokio::spawn(async move {
            // Each client got a 429 with Retry-After in the connect storm and has waited
            // that out; an honouring client also waits its own share of a second before it
            // comes back, so the phase does not begin with all 2,000 at one instant.
            if let Retry::Honour = *retry {
                tokio::time::sleep(Duration::from_millis(jitter(c as u64, u64::MAX) % 1000)).await;
            }
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
                        let after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        let _ = resp.bytes().await;
                        let us = t.elapsed().as_micros() as u64;
                        match code {
                            200 => {
                                let _ = ok.record(us.max(1));
                            }
                            429 => {
                                let _ = rejected.record(us.max(1));
                                if after.is_none() {
                                    no_retry_after += 1;
                                }
                                let pause = match *retry {
                                    Retry::Honour => {
                                        Duration::from_secs(after.unwrap_or(1))
                                            + Duration::from_millis(jitter(c as u64, i) % 1000)
                                    }
                                    Retry::After(d) => d,
                                };
                                tokio::time::sleep(pause).await;
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
    Phase {
        ok,
        rejected,
        other,
        no_retry,
        secs: start.elapsed().as_secs_f64(),
    }
}
