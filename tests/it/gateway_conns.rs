//! Connections cannot be held hostage: slow request heads, stalled bodies and idle
//! kept-alive connections are cut within their timeouts, the connection cap sheds the
//! connection idle the longest, and a gateway started under a 1,024 descriptor limit
//! still answers a normal request within a second while 500 slow-header clients and
//! 1,100 idle sockets press on it. Real HTTP on loopback, written by hand where a client
//! library would hide what the socket does.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gateway::start;
use crate::util::{free_port, osmen, root, wait_until};

/// Reads one HTTP/1.1 answer (head and a Content-Length body): status and body.
async fn read_answer(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((
        status,
        String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned(),
    ))
}

/// How long after `since` the peer closed the connection (EOF or reset), reading and
/// dropping whatever it sends; None when it is still open at `limit`.
async fn closed_after(s: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut chunk = [0u8; 4096];
    let end = since + limit;
    loop {
        match tokio::time::timeout_at(end.into(), s.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

const GET_AGENTS: &str = "GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nX-API-Key: key-one\r\n\r\n";

fn search_head(len: usize) -> String {
    format!(
        "POST /api/v1/memory/search HTTP/1.1\r\nHost: t\r\nX-API-Key: key-one\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// A GET on a connection of its own, closed after the answer: the body.
async fn get_fresh(at: &str, path: &str) -> String {
    let mut s = TcpStream::connect(at).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    read_answer(&mut s).await.unwrap().1
}

/// The `osmen_http_connections_closed_total` counter for one reason.
fn closed(metrics: &str, reason: &str) -> u64 {
    let series = format!("osmen_http_connections_closed_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_stalled_bodies_and_idle_connections_are_cut_within_their_timeouts() {
    let gw = start(
        &[],
        Some(
            "[gateway]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"1s\"\n\
             idle_timeout = \"3s\"\n",
        ),
    )
    .await;
    let at = addr(gw.url());
    let slack = Duration::from_millis(1500);

    // Connects and sends nothing: cut by the header timeout, counted from the accept.
    let silent = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            closed_after(&mut s, Instant::now(), Duration::from_secs(1) + slack).await
        })
    };
    // Drips one byte of a head every 200 ms: the head is late however lively the client.
    let dripping = {
        let at = at.clone();
        tokio::spawn(async move {
            let s = TcpStream::connect(&at).await.unwrap();
            let t0 = Instant::now();
            let (mut r, mut w) = s.into_split();
            let writer = tokio::spawn(async move {
                for b in b"GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaaaaa"
                {
                    if w.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            let mut chunk = [0u8; 256];
            let cut = tokio::time::timeout(Duration::from_secs(1) + slack, async {
                while let Ok(n) = r.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                }
                t0.elapsed()
            })
            .await
            .ok();
            writer.abort();
            cut
        })
    };
    // A head sent in pieces over 600 ms, inside the timeout: served.
    let slow_but_in_time = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            for piece in GET_AGENTS.as_bytes().chunks(GET_AGENTS.len() / 6 + 1) {
                s.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            read_answer(&mut s).await.map(|(c, _)| c).ok()
        })
    };
    // Served once, then idle: cut by the idle timeout (3 s), not the header timeout (1 s).
    let idle = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            s.write_all(GET_AGENTS.as_bytes()).await.unwrap();
            let (code, _) = read_answer(&mut s).await.unwrap();
            assert_eq!(code, 200);
            let answered = Instant::now();
            closed_after(&mut s, answered, Duration::from_secs(3) + slack).await
        })
    };
    // Kept alive across idle gaps longer than the header timeout and shorter than the
    // idle timeout: every request answered on the one connection.
    let kept_alive = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            let mut codes = Vec::new();
            for i in 0..3 {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(1600)).await;
                }
                if s.write_all(GET_AGENTS.as_bytes()).await.is_err() {
                    break;
                }
                match read_answer(&mut s).await {
                    Ok((c, _)) => codes.push(c),
                    Err(_) => break,
                }
            }
            codes
        })
    };
    // A body that stops after 20 of its 200 bytes: 408 with the JSON error, then closed.
    let stalled_body = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            let t0 = Instant::now();
            s.write_all(search_head(200).as_bytes()).await.unwrap();
            s.write_all(br#"{"query": "tea", "to"#).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(1) + slack, read_answer(&mut s))
                .await
                .ok()
                .and_then(Result::ok);
            let answered = t0.elapsed();
            let closed = closed_after(&mut s, Instant::now(), Duration::from_secs(1)).await;
            (answer, answered, closed)
        })
    };
    // A body dripped in four pieces over 600 ms, inside the body timeout: served.
    let body_in_time = {
        let at = at.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&at).await.unwrap();
            let body = br#"{"query": "tea", "top_k": 3}"#;
            s.write_all(search_head(body.len()).as_bytes())
                .await
                .unwrap();
            for piece in body.chunks(body.len() / 4 + 1) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                s.write_all(piece).await.unwrap();
            }
            read_answer(&mut s).await.ok()
        })
    };

    // Meanwhile a normal request is answered at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let (code, _) = gw.get("/api/v1/agents/status", Some("key-one")).await;
    let took = t.elapsed();
    assert_eq!(code, 200);
    assert!(
        took < Duration::from_secs(1),
        "a normal request took {took:?}"
    );

    let window = Duration::from_millis(900)..Duration::from_secs(1) + slack;
    let silent = silent.await.unwrap();
    assert!(
        silent.is_some_and(|d| window.contains(&d)),
        "a silent connection was cut after {silent:?} (header_read_timeout 1s)"
    );
    let dripping = dripping.await.unwrap();
    assert!(
        dripping.is_some_and(|d| window.contains(&d)),
        "a head dripped a byte every 200 ms was cut after {dripping:?} (header_read_timeout 1s)"
    );
    assert_eq!(slow_but_in_time.await.unwrap(), Some(200));
    let idle = idle.await.unwrap();
    // From the client's reading of the answer, a little after the gateway produced it.
    let idle_window = Duration::from_millis(2500)..Duration::from_secs(3) + slack;
    assert!(
        idle.is_some_and(|d| idle_window.contains(&d)),
        "an idle kept-alive connection was cut {idle:?} after its answer (idle_timeout 3s)"
    );
    assert_eq!(kept_alive.await.unwrap(), vec![200, 200, 200]);
    let (answer, answered, closed_after_408) = stalled_body.await.unwrap();
    let (code, body) = answer.expect("a stalled body got no answer");
    assert_eq!(code, 408, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], 408, "{body}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("gateway.body_read_timeout"), "{message}");
    assert!(
        window.contains(&answered),
        "the 408 came {answered:?} after the head (body_read_timeout 1s)"
    );
    assert!(
        closed_after_408.is_some(),
        "the connection stayed open after the 408"
    );
    let (code, body) = body_in_time.await.unwrap().expect("no answer");
    assert_eq!(code, 200, "a body that came in time: {body}");
    assert!(body.contains("\"results\""), "{body}");

    // On a fresh connection: the client's pooled one may be closing for being idle.
    let m = get_fresh(&at, "/metrics").await;
    assert_eq!(closed(&m, "header_timeout"), 2, "{m}");
    assert_eq!(closed(&m, "body_timeout"), 1, "{m}");
    assert!(closed(&m, "idle_timeout") >= 1, "{m}");
    assert_eq!(closed(&m, "shed"), 0, "{m}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_connection_idle_the_longest_is_shed_and_busy_ones_are_kept() {
    let gw = start(&[], Some("[gateway]\nmax_connections = 4\n")).await;
    let at = addr(gw.url());
    let connect = || TcpStream::connect(at.clone());
    // Time for the gateway to see what the client did (generous on a busy machine).
    let pause = || tokio::time::sleep(Duration::from_millis(300));
    // The oldest: connected, silent.
    let mut oldest = connect().await.unwrap();
    pause().await;
    // Served, then idle since its answer (later than the oldest's accept).
    let mut served = connect().await.unwrap();
    served.write_all(GET_AGENTS.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut served).await.unwrap().0, 200);
    // Two busy ones: their requests wait for bodies still on the way.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = connect().await.unwrap();
        s.write_all(search_head(100).as_bytes()).await.unwrap();
        s.write_all(b"{").await.unwrap();
        busy.push(s);
    }
    pause().await;

    // A newcomer at the cap: the oldest goes, the newcomer is served.
    let mut newcomer = connect().await.unwrap();
    newcomer.write_all(GET_AGENTS.as_bytes()).await.unwrap();
    let t = Instant::now();
    assert_eq!(read_answer(&mut newcomer).await.unwrap().0, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let cut = closed_after(&mut oldest, Instant::now(), Duration::from_secs(1)).await;
    assert!(cut.is_some(), "the oldest idle connection was not shed");
    // The served connection and the busy ones stay.
    served.write_all(GET_AGENTS.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut served).await.unwrap().0, 200);
    for s in &mut busy {
        let open = closed_after(s, Instant::now(), Duration::from_millis(200)).await;
        assert!(open.is_none(), "a busy connection was shed");
    }
    drop((served, newcomer));
    pause().await;

    // Every connection busy: a newcomer is told why (503, JSON) and closed.
    for _ in 0..2 {
        let mut s = connect().await.unwrap();
        s.write_all(search_head(100).as_bytes()).await.unwrap();
        s.write_all(b"{").await.unwrap();
        busy.push(s);
    }
    pause().await;
    let mut refused = connect().await.unwrap();
    let (code, body) = read_answer(&mut refused).await.unwrap();
    assert_eq!(code, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 4 connections"),
        "{body}"
    );
    assert!(
        closed_after(&mut refused, Instant::now(), Duration::from_secs(1))
            .await
            .is_some()
    );
    for s in &mut busy {
        let open = closed_after(s, Instant::now(), Duration::from_millis(100)).await;
        assert!(
            open.is_none(),
            "a busy connection was closed for the newcomer"
        );
    }
    drop(busy);
    pause().await;
    let (_, m) = gw.get("/metrics", None).await;
    assert_eq!(closed(&m, "shed"), 1, "{m}");
    assert_eq!(closed(&m, "refused"), 1, "{m}");
    assert_eq!(gauge(&m, "osmen_http_connections_max"), 4, "{m}");
    assert!(
        m.contains("osmen_http_responses_total{code=\"503\"} 1"),
        "{m}"
    );
    gw.stop().await;
}

/// `osmen gateway` on the shipped settings with RLIMIT_NOFILE set to soft/hard before
/// it starts; stopped (killed) when dropped.
struct Spawned {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Spawned {
    fn start(soft: u64, hard: u64) -> Spawned {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("osmen-conns-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let err = std::fs::File::create(dir.join("stderr")).unwrap();
        let mut cmd = osmen();
        cmd.current_dir(root())
            .env("OSMEN_API_KEYS", "key-one")
            .env("OSMEN_RUNTIME_DIR", &dir)
            .env("OLLAMA_URL", "http://127.0.0.1:9")
            .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(err);
        // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let l = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            }),
            "the gateway did not listen"
        );
        Spawned { child, port, dir }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Soft and hard "Max open files" of the running gateway.
    fn limits(&self) -> (u64, u64) {
        let text = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[0], n[1])
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A GET on a connection that closes after the answer (no async runtime needed).
fn get_closing(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Raises this test process's own descriptor soft limit to its hard limit (it holds
/// 1,600 sockets); returns the hard limit.
fn raise_own_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on a struct that lives on this stack.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    l.rlim_max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_1024_descriptor_limit_500_slow_heads_and_1100_idle_sockets_leave_a_request_answered_in_a_second()
 {
    let own_hard = raise_own_limit();
    assert!(
        own_hard >= 4096,
        "this test needs a descriptor hard limit of 4096 or more (ulimit -Hn says {own_hard})"
    );
    let gw = Spawned::start(1024, 1024);
    assert_eq!(gw.limits(), (1024, 1024));
    let at = format!("127.0.0.1:{}", gw.port);
    let stop = Arc::new(AtomicBool::new(false));

    // 500 clients that drip a request head a byte every 2 s, and reconnect when cut.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let (at, stop) = (at.clone(), stop.clone());
        slow.push(tokio::spawn(async move {
            let head = b"GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&at).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                for b in head {
                    if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 1,100 idle sockets, without any key.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        if let Ok(s) = TcpStream::connect(&at).await {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), 1100, "the kernel refused some connects");
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Normal requests, each on a fresh connection, while the attack goes on.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = format!("http://{at}");
    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = client
            .get(format!("{url}/api/v1/agents/status"))
            .header("X-API-Key", "key-one")
            .send()
            .await;
        let code = r.map(|r| r.status().as_u16());
        took.push(t.elapsed());
        assert!(
            matches!(code, Ok(200)),
            "a normal request under attack: {code:?} after {:?}\n{}",
            t.elapsed(),
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let worst = took.iter().max().copied().unwrap_or_default();
    eprintln!(
        "500 slow heads + 1,100 idle sockets under soft=hard=1024: {} normal requests, worst \
         {worst:?} ({took:?}); the gateway held {} descriptors",
        took.len(),
        gw.open_fds()
    );
    assert!(worst < Duration::from_secs(1), "{took:?}");
    assert!(gw.open_fds() <= 1024);

    let m = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(gauge(&m, "osmen_http_connections_max"), 768, "{m}");
    assert!(gauge(&m, "osmen_http_connections_open") <= 768, "{m}");
    assert!(closed(&m, "shed") > 0, "{m}");
    assert!(
        gw.stderr().contains("connections: up to 768"),
        "{}",
        gw.stderr()
    );
    stop.store(true, Ordering::Relaxed);
    for t in slow {
        t.abort();
    }
}

#[test]
fn the_descriptor_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let own_hard = raise_own_limit();
    assert!(
        own_hard > 1024,
        "this test needs a descriptor hard limit above 1024 (ulimit -Hn says {own_hard})"
    );
    let hard = own_hard.min(8192);
    let gw = Spawned::start(1024, hard);
    assert_eq!(
        gw.limits(),
        (hard, hard),
        "/proc/<pid>/limits of the gateway"
    );
    let err = gw.stderr();
    assert!(
        err.contains(&format!(
            "descriptor limit raised from 1024 to {hard}, the hard limit"
        )),
        "{err}"
    );
    let m = get_closing(gw.port, "/metrics");
    assert_eq!(gauge(&m, "osmen_process_max_fds"), hard, "{m}");
    assert_eq!(
        gauge(&m, "osmen_http_connections_max"),
        4096.min(hard - 256),
        "{m}"
    );
}
