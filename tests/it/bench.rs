//! `osmen bench` against an in-process server with scripted latencies: the reported
//! percentiles match the script's, injected failures lower the success rate exactly,
//! and --duration and --rate are honoured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use osmen::bench::{self, Plan, Target};

use crate::util::{osmen, text};

/// A server whose n-th request takes script[n % len] ms; every `fail_every`-th is a 500.
async fn server(script: Vec<u64>, fail_every: u64) -> u16 {
    let n = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/work",
        get(move || {
            let n = n.clone();
            let script = script.clone();
            async move {
                let i = n.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(
                    script[(i % script.len() as u64) as usize],
                ))
                .await;
                if fail_every > 0 && (i + 1).is_multiple_of(fail_every) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    port
}

fn plan(port: u16, users: usize, requests: u64) -> Plan {
    Plan {
        target: Target {
            host: "127.0.0.1".into(),
            port,
            path: "/work".into(),
            method: axum::http::Method::GET,
            body: Default::default(),
            headers: vec![],
            numbered_input: None,
        },
        users,
        requests,
        duration: None,
        rate: None,
        timeout: Duration::from_secs(10),
    }
}

/// 200 latencies in four steps far apart, so that a percentile taken at the wrong rank is
/// tens of milliseconds off, more than a busy machine's slack: 110 of 10 ms (ranks 1-110),
/// 84 of 50 ms (111-194), 5 of 150 ms (195-199) and 1 of 300 ms. Nearest rank: P50 is
/// the 100th (10 ms), P95 the 190th (50 ms), P99 the 198th (150 ms), the maximum 300 ms.
fn stepped_script() -> Vec<u64> {
    let mut v = [(110, 10), (84, 50), (5, 150), (1, 300)]
        .iter()
        .flat_map(|&(n, ms)| std::iter::repeat_n(ms, n))
        .collect::<Vec<u64>>();
    // Spread over the users: the slow ones are not all one user's.
    let n = v.len();
    v.rotate_left(n / 3);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentiles_match_the_scripted_latencies_and_failures_count() {
    let port = server(stepped_script(), 10).await;
    let r = bench::run(&plan(port, 10, 20), bench::new_tally(10)).await;
    assert_eq!(r.total_requests, 200);
    assert_eq!(r.successes, 180, "every 10th failed: {r:?}");
    assert!((r.success_rate - 0.9).abs() < 1e-9);
    assert_eq!(r.errors.get("status 500"), Some(&20));
    // Measured time is the script's plus the loopback round trip and the scheduler's
    // slack: never less, and well under the 40 ms to the next step.
    for (got, want) in [
        (r.p50_seconds, 0.010),
        (r.p95_seconds, 0.050),
        (r.p99_seconds, 0.150),
    ] {
        assert!(
            got >= want * 0.999 && got <= want + 0.030,
            "{got} vs {want}: {r:?}"
        );
    }
    assert!(r.max_seconds >= 0.2999 && r.max_seconds <= 0.330, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_and_rate_are_honoured() {
    let port = server(vec![5], 0).await;
    let mut p = plan(port, 4, 1_000_000);
    p.duration = Some(Duration::from_millis(1500));
    let t = Instant::now();
    let r = bench::run(&p, bench::new_tally(4)).await;
    let took = t.elapsed().as_secs_f64();
    assert!(
        (1.5..1.8).contains(&took),
        "ran {took}s for a 1.5s duration"
    );
    assert!(r.total_requests > 100, "{r:?}");
    // Open loop: 200 requests/s for 2 s is 400 requests, started on schedule.
    let mut p = plan(port, 8, 1_000_000);
    p.duration = Some(Duration::from_secs(2));
    p.rate = Some(200.0);
    let r = bench::run(&p, bench::new_tally(8)).await;
    assert_eq!(r.mode, "open");
    assert!((396..=400).contains(&r.total_requests), "{r:?}");
    assert!((1.9..2.3).contains(&r.elapsed_seconds), "{r:?}");
    assert!((r.throughput_rps - 200.0).abs() < 20.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_shows_in_open_loop_latencies() {
    // 8 users, 100 ms per request: at most 80/s. Asked for 160/s, the open loop measures
    // from the intended start, so the queueing shows (a closed loop would hide it).
    let port = server(vec![100], 0).await;
    let mut p = plan(port, 8, 1_000_000);
    p.duration = Some(Duration::from_secs(2));
    p.rate = Some(160.0);
    let r = bench::run(&p, bench::new_tally(8)).await;
    assert!(
        r.p99_seconds > 0.5,
        "coordinated omission hid the backlog: {r:?}"
    );
}

#[test]
fn bad_input_is_a_clear_error_not_a_report() {
    let port = crate::util::free_port();
    let o = osmen()
        .args([
            "bench",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--users",
            "2",
        ])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        out.is_empty() && err.contains("cannot connect to 127.0.0.1"),
        "{err}"
    );
    let o = osmen().args(["bench", "--users", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("--users must be at least 1"));
    let o = osmen()
        .args(["bench", "--url", "https://x/"])
        .output()
        .unwrap();
    assert!(text(&o).1.contains("only http://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_before_the_run() {
    let app = Router::new().route(
        "/api/v1/agents/daily_brief/execute",
        axum::routing::post(|| async { StatusCode::UNAUTHORIZED }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let o = tokio::task::spawn_blocking(move || {
        osmen()
            .args([
                "bench",
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--key",
                "nope",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("refused the API key (401)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_close_each_connection_are_not_errors() {
    // Like the stand-in and many small servers: one answer per connection, then close.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    let r = bench::run(&plan(port, 2, 20), bench::new_tally(2)).await;
    assert_eq!((r.total_requests, r.successes), (40, 40), "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
}
