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
    t.wait_for("services (4)", Duration::from_secs(10));
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
