//! The console tells the truth about a stack that changes underneath it: the real binary
//! in tmux, open for 30 s before the first change (the live path from the engine's events
//! to the rows once died after the first seconds), then each change made with the Docker
//! CLI or osmen itself, each seen on screen within 5 s, and `status --json` agreeing with
//! `docker inspect` after each.

use std::time::Duration;

use crate::console::Tmux;
use crate::util::{Stack, docker, docker_ready, free_port, inspect, wait_until};

/// Each change must be on screen within this.
const SEEN_WITHIN: Duration = Duration::from_secs(5);

/// The Services row of `name` (first cell exactly `name`), if shown.
fn row(screen: &str, name: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| {
            l.trim_start_matches('│')
                .split_whitespace()
                .next()
                .is_some_and(|first| first == name)
        })
        .map(str::to_string)
}

/// Waits until the row of `name` satisfies `ok`; fails with the screen otherwise.
fn see(t: &Tmux, name: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let seen = wait_until(SEEN_WITHIN, || {
        last = t.screen();
        row(&last, name).is_some_and(|r| ok(&r))
    });
    assert!(
        seen,
        "within {SEEN_WITHIN:?} the console did not show {name} {what}; screen:\n{last}"
    );
    row(&last, name).unwrap()
}

/// `status --json` against `docker inspect`: every container's state, health, ports,
/// limits and restarts as the engine has them.
fn status_agrees_with_inspect(stack: &Stack) {
    let (code, out, err) = stack.run(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let rows = v["services"].as_array().expect("services");
    for r in rows.iter().filter(|r| r["container"].as_str() != Some("")) {
        let name = r["container"].as_str().unwrap();
        let state = inspect(name, "{{.State.Status}}");
        assert_eq!(r["state"], state.as_str(), "{name}: {r}");
        let health = inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}");
        let want = if state == "running" {
            health.as_str()
        } else {
            ""
        };
        assert_eq!(
            r["health"], want,
            "{name}: a stopped container has no health: {r}"
        );
        let nano: f64 = inspect(name, "{{.HostConfig.NanoCpus}}").parse().unwrap();
        let cpu = r["cpu_limit"].as_f64();
        assert_eq!(cpu, (nano > 0.0).then_some(nano / 1e9), "{name}: {r}");
        let mem: u64 = inspect(name, "{{.HostConfig.Memory}}").parse().unwrap();
        assert_eq!(
            r["memory_limit"].as_u64(),
            (mem > 0).then_some(mem),
            "{name}"
        );
        let restarts: i64 = inspect(name, "{{.RestartCount}}").parse().unwrap();
        assert!(r["restarts"].as_i64().unwrap() >= restarts, "{name}: {r}");
        let ports = inspect(
            name,
            "{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}}:{{.HostPort}}->{{$p}} {{end}}{{end}}",
        );
        let mut want: Vec<&str> = ports.split_whitespace().collect();
        want.sort();
        let mut got: Vec<&str> = r["ports"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        got.sort();
        assert_eq!(got, want, "{name}: ports");
    }
    let containers = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", stack.project),
    ])
    .1;
    let n = containers.lines().filter(|l| !l.is_empty()).count();
    let shown = rows
        .iter()
        .filter(|r| r["container"].as_str() != Some(""))
        .count();
    assert_eq!(shown, n, "one row per container: {rows:?}");
}

/// Seconds of UP as the row shows them (`4s`, `1m2s`), when under a minute.
fn up_seconds(row: &str) -> Option<u64> {
    row.split_whitespace()
        .filter_map(|w| w.strip_suffix('s'))
        .filter_map(|w| w.parse::<u64>().ok())
        .next()
}

#[test]
fn console_rows_follow_the_engine() {
    if !docker_ready() {
        return;
    }
    let stack = Stack::new("basic", "truth");
    let (code, _, err) = stack.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let script = format!(
        "cd {dir} && OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} {bin} --no-up -p {project} \
         2>{dir}/console.err; sleep 60",
        dir = stack.dir.display(),
        port = free_port(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = stack.project,
    );
    let t = Tmux::start(
        format!("osmen-truth-{}", std::process::id()),
        160,
        48,
        &script,
    );
    t.wait_for("4/4 running", Duration::from_secs(30));
    t.keys(&["2"]);
    t.wait_for("services (4,", Duration::from_secs(10));
    // The console has been open a while before anything changes.
    std::thread::sleep(Duration::from_secs(30));
    see(&t, "api", "running and healthy", |r| {
        r.contains("running") && r.contains("healthy")
    });
    status_agrees_with_inspect(&stack);

    // docker kill: not running, not healthy, exit code 137, no figures.
    let api = stack.container("api");
    assert!(docker(&["kill", &api]).0);
    let r = see(&t, "api", "exited (137)", |r| r.contains("exited (137)"));
    assert!(!r.contains("healthy") && !r.contains("0B"), "{r}");
    status_agrees_with_inspect(&stack);

    // docker start: running again, UP counted from this start.
    assert!(docker(&["start", &api]).0);
    let r = see(&t, "api", "running again with a fresh UP", |r| {
        r.contains("running") && up_seconds(r).is_some_and(|s| s < 15)
    });
    assert!(!r.contains("exited"), "{r}");
    // Stop and start: UP restarts too.
    let worker = stack.container("worker");
    assert!(docker(&["stop", "-t", "1", &worker]).0);
    see(&t, "worker", "exited", |r| r.contains("exited ("));
    assert!(docker(&["start", &worker]).0);
    see(&t, "worker", "running from a new start", |r| {
        r.contains("running") && up_seconds(r).is_some_and(|s| s < 15)
    });
    status_agrees_with_inspect(&stack);

    // docker restart: a new start.
    std::thread::sleep(Duration::from_secs(16));
    assert!(docker(&["restart", "-t", "1", &worker]).0);
    see(&t, "worker", "restarted", |r| {
        r.contains("running") && up_seconds(r).is_some_and(|s| s < 15)
    });

    // docker update: the new memory limit is the one shown and measured against.
    assert!(docker(&["update", "--memory", "48m", "--memory-swap", "96m", &worker]).0);
    see(&t, "worker", "against its new 48MiB limit", |r| {
        r.contains("/ 48MiB")
    });
    assert!(docker(&["update", "--cpus", "0.5", &worker]).0);
    status_agrees_with_inspect(&stack);

    // Recreated on another host port: the new port.
    let old_port = inspect(
        &api,
        "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
    );
    let (code, _, err) = stack.run(&["up", "--force-recreate", "api"]);
    assert_eq!(code, 0, "{err}");
    let new_port = inspect(
        &api,
        "{{(index (index .NetworkSettings.Ports \"8080/tcp\") 0).HostPort}}",
    );
    assert_ne!(
        old_port, new_port,
        "the engine gave the same ephemeral port again"
    );
    see(&t, "api", "on its new port", |r| {
        r.contains(&format!("127.0.0.1:{new_port}->8080/tcp"))
    });
    status_agrees_with_inspect(&stack);

    // A service added to the file: shown as not created, then running once started.
    let compose = stack.path("docker-compose.yml");
    let mut text = std::fs::read_to_string(&compose).unwrap();
    let at = text.find("\nvolumes:").unwrap();
    text.insert_str(
        at,
        "\n  burner:\n    image: osmen-standin:test\n    restart: \"no\"\n    \
         environment:\n      STANDIN_NAME: burner\n",
    );
    std::fs::write(&compose, text).unwrap();
    see(&t, "burner", "as not created", |r| {
        r.contains("not created")
    });
    let (code, _, err) = stack.run(&["up", "burner"]);
    assert_eq!(code, 0, "{err}");
    see(&t, "burner", "running", |r| r.contains("running"));
    status_agrees_with_inspect(&stack);

    // Scaled from the console: one row per replica, and back down.
    t.keys(&["/", "w", "o", "r", "k", "e", "r", "Enter", "+"]);
    t.wait_for("Scale worker to 2 replicas?", SEEN_WITHIN);
    t.keys(&["y"]);
    let seen = wait_until(Duration::from_secs(30), || {
        row(&t.screen(), "worker#2").is_some_and(|r| r.contains("running"))
    });
    assert!(seen, "no worker#2 row; screen:\n{}", t.screen());
    assert!(row(&t.screen(), "worker").is_some());
    status_agrees_with_inspect(&stack);
    t.keys(&["-"]);
    t.wait_for("Scale worker to 1 replicas?", SEEN_WITHIN);
    t.keys(&["y"]);
    let gone = wait_until(Duration::from_secs(30), || {
        row(&t.screen(), "worker#2").is_none()
    });
    assert!(gone, "worker#2 still shown; screen:\n{}", t.screen());
    status_agrees_with_inspect(&stack);
    t.keys(&["Escape"]);
}

/// One HTTP/1.1 request on loopback with std alone: (status, body).
fn http(port: u16, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let key = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

/// The stack's Ollama (a stand-in speaking Ollama's API on 11434), published on an
/// ephemeral loopback port: only the running container says where.
const OLLAMA_STACK: &str = "services:
  ollama:
    image: osmen-standin:test
    restart: \"no\"
    environment:
      PORT: \"11434\"
      STANDIN_NAME: ollama
    ports:
      - \"127.0.0.1::11434\"
    healthcheck:
      test: [\"CMD\", \"/standin\", \"probe\", \"http://127.0.0.1:11434/health\"]
      interval: 1s
      timeout: 2s
      retries: 30
";

#[test]
fn one_gateway_key_one_gateway_and_the_stacks_ollama() {
    use std::os::unix::fs::PermissionsExt;
    if !docker_ready() {
        return;
    }
    let stack = Stack::new("basic", "gwkey");
    std::fs::write(stack.path("docker-compose.yml"), OLLAMA_STACK).unwrap();
    let (code, _, err) = stack.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let console = |tag: &str| {
        let script = format!(
            "cd {dir} && env -u OLLAMA_URL -u OSMEN_API_KEYS OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} \
             {bin} --no-up -p {project} 2>>{dir}/console.err; echo $? > {dir}/exit.{tag}; sleep 60",
            dir = stack.dir.display(),
            bin = env!("CARGO_BIN_EXE_osmen"),
            project = stack.project,
        );
        Tmux::start(
            format!("osmen-gw-{tag}-{}", std::process::id()),
            140,
            40,
            &script,
        )
    };
    let key_file = stack.path("runtime/gateway.key");
    let addr_file = stack.path("runtime/gateway.addr");

    // The console's gateway: its key written once, its address recorded.
    let first = console("a");
    first.wait_for("1/1 running", Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || addr_file.exists()),
        "no runtime/gateway.addr; screen:\n{}",
        first.screen()
    );
    assert_eq!(
        std::fs::read_to_string(&addr_file).unwrap().trim(),
        format!("127.0.0.1:{port}")
    );
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_string();
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // OLLAMA_URL unset: the agents run on the stack's Ollama, found in the stack.
    let (status, body) = http(
        port,
        "POST",
        "/api/v1/agents/daily_brief/execute",
        Some(&key),
        r#"{"input":"today"}"#,
    );
    assert_eq!(status, 200, "the stack's Ollama was not used: {body}");
    first.keys(&["3"]);
    first.wait_for("(the stack's)", Duration::from_secs(5));

    // Headless twins find the console's gateway through runtime/gateway.addr.
    let o = stack
        .cmd(&["status", "--json"])
        .env_remove("OSMEN_GATEWAY_LISTEN")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
    let brief = v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["agent"] == "daily_brief"))
        .unwrap_or_else(|| panic!("status did not scrape the console's gateway: {v}"));
    let served: f64 = brief
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("requests_") && *k != "requests_per_s")
        .filter_map(|(_, v)| v.as_f64())
        .sum();
    assert!(
        served >= 1.0,
        "the console's gateway counted no request: {brief}"
    );

    // A second console on the same project shows the running gateway, and quitting it
    // stops nothing.
    let second = console("b");
    second.wait_for("another osmen console's gateway", Duration::from_secs(30));
    second.keys(&["q"]);
    assert!(wait_until(Duration::from_secs(10), || stack
        .path("exit.b")
        .exists()));
    assert_eq!(http(port, "GET", "/health", None, "").0, 200);
    assert!(
        addr_file.exists(),
        "the second console removed the first one's address"
    );

    // Quitting the first asks, since a client was served minutes ago; no keeps it.
    first.keys(&["q"]);
    first.wait_for("stops with the console", Duration::from_secs(5));
    first.keys(&["n"]);
    first.wait_for(
        "stayed: the agents API keeps running",
        Duration::from_secs(5),
    );
    assert_eq!(http(port, "GET", "/health", None, "").0, 200);
    first.keys(&["q"]);
    first.wait_for("stops with the console", Duration::from_secs(5));
    first.keys(&["y"]);
    assert!(wait_until(Duration::from_secs(10), || stack
        .path("exit.a")
        .exists()));
    assert!(!addr_file.exists(), "the address outlived its gateway");

    // The next start reuses the key clients have (its mode repaired), and refuses a link.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let third = console("c");
    third.wait_for("1/1 running", Duration::from_secs(30));
    assert!(wait_until(Duration::from_secs(10), || addr_file.exists()));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file's mode was not repaired");
    assert_eq!(http(port, "GET", "/api/v1/agents", Some(&key), "").0, 200);
    drop(third);
}
