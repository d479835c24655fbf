//! Faults the console and the supervisor must survive, on the real engine.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Stack, docker_ready, inspect, wait_until};

/// The one-service stack of `tests/fixtures/stacks/secrets` (a real Redis), up.
fn one_service_stack(tag: &str) -> Stack {
    let st = Stack::new("secrets", tag);
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=x\n").unwrap();
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    st
}

/// `runtime/` cannot be written (here: a file stands where the directory should be).
/// Every action is journaled before it is taken, so none is taken: `restart` fails naming
/// the journal and the container keeps running untouched; `status` reports the journal
/// as failing, and as ok again once `runtime/` is back.
#[test]
fn an_unwritable_runtime_refuses_actions_and_says_so() {
    if !docker_ready() {
        return;
    }
    let st = one_service_stack("unwritable");
    let c = st.container("cache");
    let started = inspect(&c, "{{.State.StartedAt}}");
    std::fs::rename(st.path("runtime"), st.path("runtime.away")).unwrap();
    std::fs::write(st.path("runtime"), "not a directory").unwrap();

    let (code, _, err) = st.run(&["restart", "cache"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("journal"), "{err}");
    assert_eq!(
        inspect(&c, "{{.State.StartedAt}}"),
        started,
        "acted unjournaled"
    );
    let (code, _, err) = st.run(&["down"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(inspect(&c, "{{.State.Status}}"), "running");

    let (_, out, _) = st.run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let j = &v["sources"]["journal"];
    assert!(
        j["status"].as_str().unwrap().starts_with("error since")
            && j["status"]
                .as_str()
                .unwrap()
                .contains("actions are refused"),
        "{j}"
    );
    let (_, text, _) = st.run(&["status"]);
    assert!(text.contains("journal error since"), "{text}");

    std::fs::remove_file(st.path("runtime")).unwrap();
    std::fs::rename(st.path("runtime.away"), st.path("runtime")).unwrap();
    let (_, out, _) = st.run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sources"]["journal"]["status"], "ok");
    let (code, _, err) = st.run(&["restart", "cache"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(Duration::from_secs(20), || {
        inspect(&c, "{{.State.StartedAt}}") != started
    }));
}

/// An LLM provider that is down, then answers garbage, then recovers: 502s within the
/// timeouts, the circuit opens after `breaker_failures` and then fails fast without
/// calling the provider, /metrics and /health say so, and it closes after a good trial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_opens_its_circuit_and_closes_when_it_recovers() {
    let llm = crate::llm_standin::start().await;
    {
        let mut s = llm.script();
        s.fail_next = 1000;
        s.fail_status = 503;
        s.retry_after = Some("0".into());
    }
    let cfg = format!(
        "[providers.ollama]\nurl = \"{}\"\nretries = 0\ntimeout = \"2s\"\nbreaker_failures = 3\n\
         breaker_cooldown = \"700ms\"\n",
        llm.url
    );
    let gw = crate::gateway::start(&[], Some(&cfg)).await;
    for i in 0..3 {
        let (s, v) = gw
            .exec_as("content_creator", "key-one", &format!("q{i}"))
            .await;
        assert_eq!(s, 502, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("answered 503"),
            "{v}"
        );
    }
    assert_eq!(llm.requests(), 3);
    // Its /api/version still answers, but an open circuit cannot serve: not ready, and why.
    let (s, r) = gw.get("/ready", None).await;
    assert_eq!(s, 503, "{r}");
    assert!(
        r.contains("every LLM provider's circuit is open (ollama)"),
        "{r}"
    );
    // Open: refused at once, the provider is not called.
    let t = std::time::Instant::now();
    let (s, v) = gw.exec_as("content_creator", "key-one", "q3").await;
    let fast = t.elapsed();
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{v}"
    );
    assert_eq!(
        llm.requests(),
        3,
        "an open circuit does not call the provider"
    );
    assert!(fast < Duration::from_millis(500), "{fast:?}");
    let (_, m) = gw.get("/metrics", None).await;
    assert!(
        m.contains("osmen_provider_circuit_state{provider=\"ollama\"} 2"),
        "{m}"
    );
    let (_, h) = gw.get("/health", None).await;
    assert!(h.contains("circuit open after"), "{h}");
    // The console's reading of the scrape marks the provider as failing.
    let fams = osmen::collect::prometheus::parse(&m).unwrap();
    let agents = osmen::collect::prometheus::agents_from(&fams);
    let cc = agents
        .iter()
        .find(|a| a.agent == "content_creator")
        .map(|a| serde_json::to_value(a).unwrap())
        .unwrap();
    assert_eq!(
        cc["providers_failing"],
        serde_json::json!(["ollama"]),
        "{cc}"
    );

    // After the cooldown a trial goes out; the provider is back: closed again.
    llm.script().fail_next = 0;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (s, v) = gw.exec_as("content_creator", "key-one", "q4").await;
    assert_eq!(s, 200, "{v}");
    let (_, m) = gw.get("/metrics", None).await;
    assert!(
        m.contains("osmen_provider_circuit_state{provider=\"ollama\"} 0"),
        "{m}"
    );
    gw.stop().await;
}

/// A provider that answers 200 with something that is not its wire format: 502 naming
/// the unreadable answer, never a panic, and it counts toward the circuit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_garbage_is_a_502() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = c.read(&mut buf).await;
                let body = "<html>\u{0}\u{1}not json at all";
                let _ = c
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let cfg = format!(
        "[providers.ollama]\nurl = \"{url}\"\nretries = 0\ntimeout = \"2s\"\nbreaker_failures = 2\n"
    );
    let gw = crate::gateway::start(&[], Some(&cfg)).await;
    for _ in 0..2 {
        let (s, v) = gw.exec_as("content_creator", "key-one", "x").await;
        assert_eq!(s, 502, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unreadable"),
            "{v}"
        );
    }
    let (_, m) = gw.get("/metrics", None).await;
    assert!(
        m.contains("osmen_provider_circuit_state{provider=\"ollama\"} 2"),
        "{m}"
    );
    gw.stop().await;
}

/// A Unix-socket proxy to the engine that can be cut (every connection dropped, the socket
/// removed) and restored: the engine connection lost mid-run.
struct EngineProxy {
    path: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineProxy {
    fn start(path: &std::path::Path) -> EngineProxy {
        let engine = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(String::from))
            .unwrap_or_else(|| "/var/run/docker.sock".into());
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::UnixListener::from_std(listener).unwrap();
                let accept = async {
                    while let Ok((mut c, _)) = l.accept().await {
                        let engine = engine.clone();
                        tokio::spawn(async move {
                            if let Ok(mut e) = tokio::net::UnixStream::connect(&engine).await {
                                let _ = tokio::io::copy_bidirectional(&mut c, &mut e).await;
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = rx => {}
                    _ = accept => {}
                }
            });
            // Dropping the runtime drops every proxied connection: streams are cut too.
        });
        EngineProxy {
            path: path.to_path_buf(),
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn cut(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The engine connection cut mid-run: `status --watch` stays alive and says "engine
/// unreachable" with since when; a container stopped meanwhile is seen as exited once
/// the connection is back, and the seconds to reconnect are measured.
#[test]
fn status_watch_survives_the_engine_going_away_and_resynchronises() {
    if !docker_ready() {
        return;
    }
    let st = one_service_stack("enginecut");
    let sock = st.path("engine.sock");
    let proxy = EngineProxy::start(&sock);
    let watch = crate::util::Watch::start(
        st.cmd(&["status", "--watch"])
            .env("DOCKER_HOST", format!("unix://{}", sock.display())),
    );
    let frame = || watch.frame();
    assert!(
        wait_until(Duration::from_secs(20), || frame()
            .contains("containers ok")),
        "{}",
        frame()
    );
    // The console too, watching only (--no-up), through the same proxy.
    let script = format!(
        "cd {} && DOCKER_HOST=unix://{} OSMEN_GATEWAY_LISTEN=127.0.0.1:{} {} --no-up -p {}; \
         sleep 60",
        st.dir.display(),
        sock.display(),
        crate::util::free_port(),
        env!("CARGO_BIN_EXE_osmen"),
        st.project
    );
    let t = crate::console::Tmux::start(
        format!("osmen-cut-{}", std::process::id()),
        120,
        40,
        &script,
    );
    t.wait_for("1/1 running", Duration::from_secs(30));
    proxy.cut();
    let cut_at = std::time::Instant::now();
    // The stack changes while osmen cannot see it.
    let c = st.container("cache");
    assert!(crate::util::docker(&["stop", "-t", "1", &c]).0);
    assert!(
        wait_until(Duration::from_secs(15), || {
            let f = frame();
            f.contains("engine unreachable") && f.contains("since")
        }),
        "{}",
        frame()
    );
    assert!(watch.alive(), "status --watch died");
    let console = t.wait_for("engine unreachable", Duration::from_secs(15));
    assert!(console.contains("since"), "{console}");
    while cut_at.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let proxy = EngineProxy::start(&sock);
    let back = std::time::Instant::now();
    let resynced = wait_until(Duration::from_secs(20), || {
        let f = frame();
        f.contains("containers ok") && f.lines().any(|l| l.contains(&c) && l.contains("exited"))
    });
    let secs = back.elapsed().as_secs_f64();
    assert!(resynced, "not resynchronised:\n{}", frame());
    // The console, alive all along, sees the stopped container once it is back.
    t.wait_for("0/1 running", Duration::from_secs(20));
    t.keys(&["q"]);
    eprintln!("engine cut for 30 s: reconnected and resynchronised {secs:.1} s after it returned");
    assert!(watch.alive(), "status --watch died");
    drop(watch);
    proxy.cut();
}

/// kill -9 of a service's main process 50 times in a row under `osmen supervise`: every
/// one of the first 49 is restarted after at least its backoff, the 50th is flagged as a
/// crash loop and held, and the supervisor stays alive throughout.
#[test]
fn fifty_kills_are_each_restarted_with_backoff_then_held_as_a_crash_loop() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("secrets", "kill50");
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=x\n").unwrap();
    // Its own supervisor settings before it comes up.
    st.set_config(
        "[supervisor]\nbackoff_initial = \"50ms\"\nbackoff_max = \"400ms\"\n\
         crash_loop_restarts = 50\ncrash_loop_window = \"10m\"\nhealth_timeout = \"60s\"\n\
         stop_grace = \"1s\"\n",
    );
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut sup = st
        .cmd(&["supervise"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Give the supervisor time to subscribe to the engine's events.
    std::thread::sleep(Duration::from_secs(2));
    let c = st.container("cache");
    let backoff = |n: u32| Duration::from_millis((50u64 << (n - 1).min(10)).min(400));
    let (mut restarts, mut too_early) = (0, Vec::new());
    let mut last_start = inspect(&c, "{{.State.StartedAt}}");
    for n in 1..=50u32 {
        let pid: i32 = inspect(&c, "{{.State.Pid}}").parse().unwrap_or(0);
        assert!(pid > 0, "kill {n}: the container is not running");
        // SAFETY: a plain kill(2) of the container's main process, as `kill -9` does.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let killed = std::time::Instant::now();
        if n == 50 {
            break;
        }
        let restarted = wait_until(Duration::from_secs(20), || {
            inspect(&c, "{{.State.Running}}") == "true"
                && inspect(&c, "{{.State.StartedAt}}") != last_start
        });
        assert!(
            restarted,
            "kill {n}: not restarted; journal:\n{}",
            st.journal()
        );
        let gap = killed.elapsed();
        if gap < backoff(n) {
            too_early.push(format!(
                "restart {n} after {gap:?} < backoff {:?}",
                backoff(n)
            ));
        }
        restarts += 1;
        last_start = inspect(&c, "{{.State.StartedAt}}");
        assert!(
            sup.try_wait().unwrap().is_none(),
            "the supervisor died at kill {n}"
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || st
            .journal()
            .contains("\"action\":\"crash-loop\"")),
        "no crash loop flagged:\n{}",
        st.journal()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        inspect(&c, "{{.State.Running}}"),
        "false",
        "a held crash loop restarted"
    );
    assert!(sup.try_wait().unwrap().is_none(), "the supervisor died");
    let scheduled = st
        .journal()
        .matches("\"action\":\"schedule-restart\"")
        .count();
    eprintln!(
        "50 kills: {restarts} restarts observed, {scheduled} scheduled with backoff, crash \
         loop flagged at the 50th, supervisor alive"
    );
    assert_eq!(restarts, 49);
    assert_eq!(scheduled, 49);
    assert!(too_early.is_empty(), "{}", too_early.join("\n"));
    let _ = sup.kill();
    let _ = sup.wait();
}
