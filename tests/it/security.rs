//! Security, proven: secrets never leave osmen in clear (every command's output, the
//! journal, the runtime files, the console's screens and the gateway's own output), the
//! gateway limits each API key's rate and reaches nothing on the host by path, and osmen's
//! source never starts a process (so no user string can reach a shell).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::console::Tmux;
use crate::util::{Stack, docker_ready, free_port, osmen, root, text, wait_until};

const SECRETS: [&str; 5] = [
    "cmd-secret-7f3a",
    "env-secret-91bc",
    "url-secret-d00d",
    "file-secret-c0de",
    "gw-secret-5e11",
];

fn found(what: &str, body: &str, hits: &mut Vec<String>) {
    for s in SECRETS {
        if body.contains(s) {
            hits.push(format!("{what}: {s}"));
        }
    }
}

#[test]
fn secrets_never_appear_in_any_output() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("secrets", "secrets");
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=file-secret-c0de\n").unwrap();
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut hits = Vec::new();
    let mut outputs = 0;
    found("up", &(out + &err), &mut hits);
    for args in [
        &["config"][..],
        &["config", "--json"],
        &["ps", "--json"],
        &["ps"],
        &["status", "--json"],
        &["status"],
        &["logs", "cache", "-n", "50"],
    ] {
        let (_, out, err) = st.run(args);
        outputs += 1;
        if args == ["config"] {
            // The sweep reads real output: the names are there, their values masked.
            for name in [
                "--requirepass",
                "APP_API_KEY",
                "DB_TOKEN",
                "postgresql://app:",
            ] {
                assert!(out.contains(name), "{name} missing from config:\n{out}");
            }
        }
        found(&args.join(" "), &(out + &err), &mut hits);
    }
    // The journal and every other file osmen wrote.
    for e in std::fs::read_dir(st.path("runtime")).unwrap().flatten() {
        let body = std::fs::read_to_string(e.path()).unwrap_or_default();
        outputs += 1;
        found(&e.path().display().to_string(), &body, &mut hits);
    }
    // The console, with the embedded gateway holding a key: overview, services (the
    // cache's detail and its probe), events and logs.
    let script = format!(
        "cd {dir} && OSMEN_API_KEYS=gw-secret-5e11 OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} {bin} \
         -p {project}; sleep 30",
        dir = st.dir.display(),
        port = free_port(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = st.project,
    );
    let t = Tmux::start(
        format!("osmen-sec-{}", std::process::id()),
        160,
        48,
        &script,
    );
    t.wait_for("1 running  1 healthy", Duration::from_secs(60));
    t.keys(&["2"]);
    let s = t.wait_for("probe", Duration::from_secs(15));
    outputs += 1;
    found("console services", &s, &mut hits);
    for (key, view) in [
        ("1", "overview"),
        ("7", "events"),
        ("5", "logs"),
        ("3", "agents"),
    ] {
        t.keys(&[key]);
        std::thread::sleep(Duration::from_millis(700));
        outputs += 1;
        found(&format!("console {view}"), &t.screen(), &mut hits);
    }
    t.keys(&["q"]);
    eprintln!("{outputs} outputs read, {} secrets found", hits.len());
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
}

#[test]
fn the_gateway_never_prints_a_key_it_was_given_or_shown() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("osmen-sec-gw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let gw = osmen()
        .current_dir(root())
        .env("OSMEN_API_KEYS", "gw-secret-5e11")
        .env("OSMEN_RUNTIME_DIR", &dir)
        .env("OLLAMA_URL", "http://127.0.0.1:9")
        .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    assert!(wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        for key in ["gw-secret-5e11", "wrong-secret-aaaa"] {
            let r = c
                .post(format!("{url}/api/v1/agents/daily_brief/execute"))
                .header("X-API-Key", key)
                .body(r#"{"input":"hello"}"#)
                .send()
                .await
                .unwrap();
            let body = r.text().await.unwrap();
            assert!(!body.contains(key), "{body}");
        }
        let m = c.get(format!("{url}/metrics")).send().await.unwrap();
        let body = m.text().await.unwrap();
        assert!(!body.contains("gw-secret-5e11"));
    });
    unsafe {
        libc::kill(gw.id() as i32, libc::SIGTERM);
    }
    let out = gw.wait_with_output().unwrap();
    let (o, e) = text(&out);
    for s in ["gw-secret-5e11", "wrong-secret-aaaa"] {
        assert!(!o.contains(s) && !e.contains(s), "{s} printed:\n{o}\n{e}");
    }
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let body = std::fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!body.contains("gw-secret-5e11"), "{}", e.path().display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_api_key_is_rate_limited_on_its_own() {
    let gw = crate::gateway::start(&[("OSMEN_RATE_LIMIT_PER_KEY", "5")], None).await;
    // Burst 10 at 5/s: of 30 immediate requests about 10 pass, the rest get 429 with a
    // Retry-After; the other key is untouched. A busy machine takes longer over the 30,
    // and the bucket refills meanwhile: at most 5 more for each second they took.
    let (mut ok, mut limited) = (0, 0);
    let started = std::time::Instant::now();
    for _ in 0..30 {
        let (code, body) = gw.get("/api/v1/agents", Some("key-one")).await;
        match code {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(
                    body.contains("requests/s") && !body.contains("key-one"),
                    "{body}"
                );
            }
            c => panic!("unexpected {c}: {body}"),
        }
    }
    let most = 11 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        (10..=most).contains(&ok) && limited == 30 - ok && limited > 0,
        "{ok} ok, {limited} limited (at most {most} could pass)"
    );
    let (code, _) = gw.get("/api/v1/agents", Some("key-one")).await;
    let (other, _) = gw.get("/api/v1/agents", Some("key-two")).await;
    assert_eq!(
        other, 200,
        "another key has its own bucket (key-one: {code})"
    );
    // A refusal's Retry-After, asked until one comes (the bucket refills while asking).
    let client = reqwest::Client::new();
    let mut retry = None;
    for _ in 0..50 {
        let r = client
            .get(format!("{}/api/v1/agents", gw.url()))
            .header("X-API-Key", "key-one")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 429 {
            retry = Some(
                r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
            break;
        }
    }
    let retry = retry.expect("key-one was refused again");
    assert!((1..=2).contains(&retry), "{retry}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, _) = gw.get("/api/v1/agents", Some("key-one")).await;
    assert_eq!(code, 200, "the bucket refills at the rate");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_path_reaches_the_host_filesystem() {
    let gw = crate::gateway::start(&[("N8N_URL", "http://127.0.0.1:9")], None).await;
    let c = reqwest::Client::new();
    for (method, path, want) in [
        (
            "POST",
            "/api/v1/agents/..%2F..%2F..%2Fetc%2Fpasswd/execute",
            404,
        ),
        ("POST", "/api/v1/agents/%2Fetc%2Fpasswd/execute", 404),
        (
            "POST",
            "/api/v1/workflows/..%2F..%2Frest%2Fusers/trigger",
            400,
        ),
        ("GET", "/../../../../etc/passwd", 404),
        ("GET", "/assets/../../etc/passwd", 404),
        ("GET", "/api/v1/agents/../../../etc/passwd", 404),
        ("GET", "/var/run/docker.sock", 404),
        ("GET", "/v1.41/containers/json", 404),
    ] {
        let r = c
            .request(method.parse().unwrap(), format!("{}{path}", gw.url()))
            .header("X-API-Key", "key-one")
            .body(r#"{"input":"x"}"#)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(!body.contains("root:x:0:0"), "{path}: {body}");
        assert!(!body.contains("\"Containers\""), "{path}: {body}");
        assert!(
            code == want || (want == 404 && code == 400),
            "{method} {path}: {code} {body}"
        );
    }
    gw.stop().await;
}

#[test]
fn a_bad_rate_limit_setting_is_refused_with_its_name() {
    let o = osmen()
        .current_dir(root())
        .env("OSMEN_API_KEYS", "k")
        .env("OSMEN_RATE_LIMIT_PER_KEY", "fast")
        .args(["gateway", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("OSMEN_RATE_LIMIT_PER_KEY=\"fast\""), "{err}");
}

#[test]
fn read_only_refuses_every_mutating_command() {
    let f = root().join("tests/fixtures/compose/valid/minimal.yml");
    let mut refused = 0;
    for cmd in [
        &["up"][..],
        &["up", "--wait", "web"],
        &["down"],
        &["down", "--volumes"],
        &["restart", "web"],
        &["supervise"],
        &["pull"],
        &["build"],
        &["suggest", "--apply", "cpu:web"],
    ] {
        let o = osmen()
            .arg("-f")
            .arg(&f)
            .arg("--read-only")
            .args(cmd)
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {out}{err}");
        assert!(err.contains("--read-only"), "{cmd:?}: {err}");
        refused += 1;
    }
    // Reading stays allowed.
    let o = osmen()
        .arg("-f")
        .arg(&f)
        .args(["--read-only", "config", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let _: Value = serde_json::from_slice(&o.stdout).unwrap();
    eprintln!("{refused} mutating commands refused under --read-only");
}
