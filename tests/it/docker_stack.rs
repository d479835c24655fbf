//! The supervisor against the real Docker engine, on the test stack of
//! `tests/fixtures/stacks/basic` (a Debian-built Redis and three stand-ins chained by
//! service_healthy, with a named volume, limits and a published port). Each test runs
//! its own project and takes it down, volumes included, when it ends.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Stack, docker, docker_ready, inspect, wait_until};

fn started_at(name: &str) -> String {
    inspect(name, "{{.State.StartedAt}}")
}

/// An RFC 3339 UTC time as a number that orders like the time (for comparisons only).
fn instant(ts: &str) -> f64 {
    let n = |a: usize, b: usize| ts[a..b].parse::<f64>().unwrap();
    let day = n(0, 4) * 372.0 + n(5, 7) * 31.0 + n(8, 10);
    let secs: f64 = ts[17..].trim_end_matches('Z').parse().unwrap();
    day * 86_400.0 + n(11, 13) * 3600.0 + n(14, 16) * 60.0 + secs
}

fn http_status(port: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace().nth(1).unwrap_or("").to_string()
}

/// Positions of the journal's entries for (service, action), in order.
fn journal_index(journal: &str, service: &str, action: &str) -> Option<usize> {
    journal.lines().position(|l| {
        let v: Value = serde_json::from_str(l).unwrap();
        v["service"] == service && v["action"] == action
    })
}

#[test]
fn up_orders_by_health_applies_limits_and_labels_and_is_idempotent() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "order");
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    for svc in ["redis", "db", "api", "worker"] {
        assert!(out.contains(&format!("{svc:<20} created")), "{out}");
        let c = st.container(svc);
        assert_eq!(inspect(&c, "{{.State.Health.Status}}"), "healthy", "{svc}");
    }
    // service_healthy chain: each started only after the one before was healthy.
    let j = st.journal();
    let pos = |s| journal_index(&j, s, "start").unwrap_or_else(|| panic!("{s} start: {j}"));
    assert!(pos("redis") < pos("db") && pos("db") < pos("api"), "{j}");
    // The first health check that passed ended before db started.
    let redis_healthy_at = inspect(
        &st.container("redis"),
        "{{range .State.Health.Log}}{{if eq .ExitCode 0}}{{json .End}} {{end}}{{end}}",
    );
    let first_ok = redis_healthy_at
        .split_whitespace()
        .next()
        .unwrap()
        .trim_matches('"');
    assert!(
        instant(&started_at(&st.container("db"))) > instant(first_ok),
        "{first_ok}"
    );
    assert!(instant(&started_at(&st.container("api"))) > instant(&started_at(&st.container("db"))));

    // Limits and labels as `docker inspect` sees them.
    let redis = st.container("redis");
    assert_eq!(inspect(&redis, "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(
        inspect(&redis, "{{.HostConfig.Memory}}"),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        inspect(&st.container("api"), "{{.HostConfig.NanoCpus}}"),
        "250000000"
    );
    assert_eq!(
        inspect(&st.container("worker"), "{{.HostConfig.Memory}}"),
        (32u64 << 20).to_string()
    );
    let labels: Value = serde_json::from_str(&inspect(&redis, "{{json .Config.Labels}}")).unwrap();
    assert_eq!(labels["com.docker.compose.project"], st.project.as_str());
    assert_eq!(labels["com.docker.compose.service"], "redis");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(
        labels["com.docker.compose.config-hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let mounts = inspect(&redis, "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}");
    assert_eq!(mounts, format!("{}_redisdata:/data", st.project));
    assert_eq!(
        inspect(
            &redis,
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"
        ),
        format!("{}_default", st.project)
    );

    // The published port is on loopback and reaches the service.
    let (code, ps, _) = st.run(&["ps", "--json"]);
    assert_eq!(code, 0);
    let rows: Vec<Value> = serde_json::from_str(&ps).unwrap();
    assert_eq!(rows.len(), 4, "{ps}");
    let api = rows.iter().find(|r| r["service"] == "api").unwrap();
    assert_eq!(api["ports"][0]["host_ip"], "127.0.0.1");
    let port = api["ports"][0]["host_port"].to_string();
    assert_eq!(http_status(&port, "/health"), "200");
    assert!(
        rows.iter()
            .all(|r| r["health"] == "healthy" && r["state"] == "running")
    );

    // `docker compose ps` (or docker-compose v1) lists osmen's containers as its own.
    let v1 = st.path("v1.yml");
    let src = std::fs::read_to_string(st.path("docker-compose.yml")).unwrap();
    std::fs::write(&v1, src.replace("name: osmen-it-basic\n", "")).unwrap();
    let v1s = v1.to_str().unwrap();
    let listed = match std::process::Command::new("docker-compose")
        .args(["-p", &st.project, "-f", v1s, "ps"])
        .output()
    {
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(_) => docker(&["compose", "-p", &st.project, "-f", v1s, "ps"])
            .0
            .then(|| docker(&["compose", "-p", &st.project, "-f", v1s, "ps"]).1),
    };
    match listed {
        Some(text) => {
            for svc in ["redis", "db", "api", "worker"] {
                assert!(
                    text.contains(&st.container(svc)),
                    "compose ps misses {svc}:\n{text}"
                );
            }
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but neither docker-compose nor `docker compose` is installed")
        }
        None => eprintln!("docker compose CLI not installed: compose-ps check skipped"),
    }

    // A second `up` recreates nothing.
    let ids = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={}", st.project),
    ])
    .1;
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    for svc in ["redis", "db", "api", "worker"] {
        assert!(out.contains(&format!("{svc:<20} unchanged")), "{out}");
    }
    let ids2 = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={}", st.project),
    ])
    .1;
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.split_whitespace().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&ids), sorted(&ids2));

    // A changed service (its environment) is recreated; the others are left alone.
    let o = st
        .cmd(&["up", "--wait"])
        .env("DB_PASSWORD", "changed")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(out.contains(&format!("{:<20} recreated", "db")), "{out}");
    assert!(out.contains(&format!("{:<20} unchanged", "redis")), "{out}");
}

#[test]
fn kill_9_is_restarted_and_a_crash_loop_is_held() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "crash");
    let (code, _, err) = st.run(&["up", "worker"]);
    assert_eq!(code, 0, "{err}");
    let mut sup = st
        .cmd(&["--profile", "crash", "supervise"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the supervisor time to subscribe to the events stream.
    std::thread::sleep(Duration::from_secs(1));

    let worker = st.container("worker");
    let before = started_at(&worker);
    let pid = inspect(&worker, "{{.State.Pid}}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let restarted = wait_until(Duration::from_secs(20), || {
        inspect(&worker, "{{.State.Running}}") == "true" && started_at(&worker) != before
    });
    assert!(
        restarted,
        "worker not restarted after kill -9; journal:\n{}",
        st.journal()
    );
    let j = st.journal();
    assert!(j.contains("exited unexpectedly with code 137"), "{j}");
    assert!(
        journal_index(&j, "worker", "schedule-restart") < journal_index(&j, "worker", "restart")
    );

    // A service that exits every 300 ms: restarted with backoff, then held.
    let (code, _, err) = st.run(&["--profile", "crash", "up", "crasher"]);
    assert_eq!(code, 0, "{err}");
    let held = wait_until(Duration::from_secs(30), || {
        journal_index(&st.journal(), "crasher", "crash-loop").is_some()
    });
    assert!(held, "no crash loop flagged; journal:\n{}", st.journal());
    let j = st.journal();
    let restarts = j
        .lines()
        .filter(|l| l.contains("\"crasher\"") && l.contains("\"action\":\"restart\""))
        .count();
    assert_eq!(restarts, 2, "3 failures = 2 restarts, then the hold:\n{j}");
    std::thread::sleep(Duration::from_secs(3));
    let crasher = st.container("crasher");
    assert_eq!(inspect(&crasher, "{{.State.Status}}"), "exited");
    assert_eq!(
        inspect(&crasher, "{{.HostConfig.RestartPolicy.Name}}"),
        "no"
    );
    let after = st.journal();
    assert_eq!(
        after
            .lines()
            .filter(|l| l.contains("\"crasher\"") && l.contains("\"action\":\"restart\""))
            .count(),
        2,
        "restarted while held:\n{after}"
    );

    // A service that turns unhealthy is restarted (a fresh process is healthy again).
    let (code, _, err) = st.run(&["--profile", "crash", "up", "--wait", "flaky"]);
    assert_eq!(code, 0, "{err}");
    let flaky = st.container("flaky");
    let before = started_at(&flaky);
    let (ok, out) = docker(&[
        "exec",
        &flaky,
        "/standin",
        "probe",
        "http://127.0.0.1:8080/unhealthy",
    ]);
    assert!(ok, "{out}");
    let healed = wait_until(Duration::from_secs(30), || {
        started_at(&flaky) != before && inspect(&flaky, "{{.State.Health.Status}}") == "healthy"
    });
    let j = st.journal();
    assert!(healed, "flaky not restarted after turning unhealthy:\n{j}");
    assert!(
        j.contains("turned unhealthy; last check said") && j.contains("500"),
        "{j}"
    );

    // Stopping the supervisor (as a lost terminal or a quit would) leaves the stack up.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &sup.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sup.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the supervisor"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &sup.id().to_string()])
        .status();
    let status = sup.wait().unwrap();
    let mut log = String::new();
    sup.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("CRASH LOOP"), "{log}");
    assert_eq!(inspect(&worker, "{{.State.Running}}"), "true");
}

#[test]
fn down_then_up_keeps_redis_data_and_down_volumes_drops_it() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "data");
    let (code, _, err) = st.run(&["up", "--wait", "redis"]);
    assert_eq!(code, 0, "{err}");
    let redis = st.container("redis");
    let (ok, out) = docker(&["exec", &redis, "redis-cli", "SET", "osmen:test", "kept"]);
    assert!(ok && out == "OK", "{out}");

    let (code, _, err) = st.run(&["down"]);
    assert_eq!(code, 0, "{err}");
    let filter = format!("label=com.docker.compose.project={}", st.project);
    assert_eq!(docker(&["ps", "-aq", "--filter", &filter]).1, "");
    assert!(docker(&["volume", "inspect", &format!("{}_redisdata", st.project)]).0);
    assert!(!docker(&["network", "inspect", &format!("{}_default", st.project)]).0);
    let j = st.journal();
    assert!(
        journal_index(&j, "redis", "stop") < journal_index(&j, "redis", "remove"),
        "{j}"
    );

    let (code, _, err) = st.run(&["up", "--wait", "redis"]);
    assert_eq!(code, 0, "{err}");
    let (_, got) = docker(&["exec", &redis, "redis-cli", "GET", "osmen:test"]);
    assert_eq!(got, "kept");

    let (code, _, _) = st.run(&["down", "--volumes"]);
    assert_eq!(code, 0);
    assert!(!docker(&["volume", "inspect", &format!("{}_redisdata", st.project)]).0);
}

#[test]
fn down_stops_dependents_first() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "downorder");
    let (code, _, err) = st.run(&["up", "api"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = st.run(&["down"]);
    assert_eq!(code, 0, "{err}");
    let j = st.journal();
    let stop = |s| journal_index(&j, s, "stop").unwrap();
    assert!(
        stop("api") < stop("db") && stop("db") < stop("redis"),
        "{j}"
    );
}

#[test]
fn logs_restart_and_blocked_dependency_report() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "logs");
    let (code, _, err) = st.run(&["up", "worker"]);
    assert_eq!(code, 0, "{err}");
    let worker = st.container("worker");
    assert!(wait_until(Duration::from_secs(10), || {
        st.run(&["logs", "worker", "--tail", "5"])
            .1
            .contains("worker: listening")
    }));
    let (_, out, _) = st.run(&["logs", "worker"]);
    assert!(out.starts_with(&format!("{worker} | ")), "{out}");

    let before = started_at(&worker);
    let (code, _, err) = st.run(&["restart", "worker"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(started_at(&worker), before);
    assert!(journal_index(&st.journal(), "worker", "restart").is_some());
    let (code, _, err) = st.run(&["restart", "nosuch"]);
    assert_eq!(code, 2);
    assert!(err.contains("nosuch"), "{err}");

    // A dependency that never turns healthy: `up` says who blocks and why, then gives up.
    std::fs::write(
        st.path("docker-compose.yml"),
        "services:\n  slow:\n    image: osmen-standin:test\n    environment:\n      \
         STANDIN_READY_AFTER_MS: \"600000\"\n    healthcheck:\n      test: [\"CMD\", \
         \"/standin\", \"probe\", \"http://127.0.0.1:8080/health\"]\n      interval: 1s\n      \
         retries: 1000\n  \
         app:\n    image: osmen-standin:test\n    depends_on:\n      slow: {condition: \
         service_healthy}\n",
    )
    .unwrap();
    st.set_config("[supervisor]\nhealth_timeout = \"6s\"\nstop_grace = \"1s\"\n");
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("app waits for slow (service_healthy)"),
        "{err}"
    );
    assert!(
        err.contains("503"),
        "the last health-check output should be quoted: {err}"
    );
    assert!(err.contains("slow did not become ready within 6s"), "{err}");
    // app was created ahead (to take `create` off the critical path) but never started.
    assert_eq!(
        inspect(&st.container("app"), "{{.State.Status}}"),
        "created"
    );
}

#[test]
fn adopts_containers_that_compose_started() {
    if !docker_ready() {
        return;
    }
    let Ok(_) = std::process::Command::new("docker-compose")
        .arg("version")
        .output()
    else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but docker-compose is not installed"
        );
        eprintln!("docker-compose not installed: adoption check skipped");
        return;
    };
    let st = Stack::new("basic", "adopt");
    let src = std::fs::read_to_string(st.path("docker-compose.yml")).unwrap();
    std::fs::write(st.path("v1.yml"), src.replace("name: osmen-it-basic\n", "")).unwrap();
    let o = std::process::Command::new("docker-compose")
        .current_dir(&st.dir)
        .args(["-p", &st.project, "-f", "v1.yml", "up", "-d", "worker"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let filter = format!("label=com.docker.compose.project={}", st.project);
    let before = docker(&["ps", "-q", "--filter", &filter]).1;
    assert_eq!(before.lines().count(), 1);
    let (code, out, err) = st.run(&["up", "worker"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("adopted"), "{out}");
    assert_eq!(
        docker(&["ps", "-q", "--filter", &filter]).1,
        before,
        "no second container"
    );
    let (code, ps, _) = st.run(&["ps"]);
    assert_eq!(code, 0);
    assert!(ps.contains("worker"), "{ps}");
}

#[test]
fn replicas_scale_up_and_down() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "replicas");
    let compose = |n: u32| {
        format!("services:\n  web:\n    image: osmen-standin:test\n    deploy: {{replicas: {n}}}\n")
    };
    std::fs::write(st.path("docker-compose.yml"), compose(3)).unwrap();
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 0, "{err}");
    let (_, ps, _) = st.run(&["ps", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&ps).unwrap();
    let numbers: Vec<i64> = rows.iter().map(|r| r["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    // Every replica answers to the service name on the project network.
    let aliases = inspect(
        &format!("{}-web-2", st.project),
        "{{range .NetworkSettings.Networks}}{{.Aliases}}{{end}}",
    );
    assert!(aliases.contains("web"), "{aliases}");
    let first = inspect(&format!("{}-web-1", st.project), "{{.Id}}");
    std::fs::write(st.path("docker-compose.yml"), compose(1)).unwrap();
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 0, "{err}");
    let (_, ps, _) = st.run(&["ps", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&ps).unwrap();
    assert_eq!(rows.len(), 1, "{ps}");
    assert!(st.journal().contains("scaled down to 1 replicas"));
    // Regression: the replica count was part of the configuration hash, so scaling
    // recreated the replicas that stay.
    assert_eq!(
        inspect(&format!("{}-web-1", st.project), "{{.Id}}"),
        first,
        "scaling down recreated web-1"
    );
    assert!(!err.contains("recreated"), "{err}");
}

#[test]
fn service_healthy_on_a_service_without_a_check_fails_fast() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("basic", "nocheck");
    std::fs::write(
        st.path("docker-compose.yml"),
        "services:\n  plain:\n    image: osmen-standin:test\n  app:\n    image: osmen-standin:test\n    \
         depends_on:\n      plain: {condition: service_healthy}\n",
    )
    .unwrap();
    let t = std::time::Instant::now();
    let (code, _, err) = st.run(&["up"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("plain is running but has no health check"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "must not wait out the health timeout"
    );
}
