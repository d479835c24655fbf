//! The command line as an operator types it: parsing, help, exit codes and messages.

use clap::Parser;
use osmen::cli::{Cli, Command};

use crate::util::{osmen, root, text};

#[test]
fn global_options_come_before_the_subcommand() {
    let cli = Cli::parse_from([
        "osmen",
        "-f",
        "x.yml",
        "-p",
        "demo",
        "--profile",
        "ollama",
        "--profile",
        "scale",
        "--read-only",
        "up",
        "--wait",
        "redis",
        "postgres",
    ]);
    assert_eq!(cli.global.file, vec![std::path::PathBuf::from("x.yml")]);
    assert_eq!(cli.global.project.as_deref(), Some("demo"));
    assert_eq!(cli.global.profiles, vec!["ollama", "scale"]);
    assert!(cli.global.read_only);
    match cli.command {
        Some(Command::Up(a)) => {
            assert!(a.wait);
            assert_eq!(a.services, vec!["redis", "postgres"]);
        }
        other => panic!("{other:?}"),
    }
    let cli = Cli::parse_from(["osmen", "logs", "redis", "-f", "--tail", "5"]);
    match cli.command {
        Some(Command::Logs(a)) => assert!(a.follow && a.tail == Some(5)),
        other => panic!("{other:?}"),
    }
    assert!(
        Cli::try_parse_from(["osmen", "up", "-p", "x"]).is_err(),
        "-p is global only"
    );
}

#[test]
fn bare_osmen_prints_help() {
    let o = osmen().output().unwrap();
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("Usage:") && out.contains("up") && out.contains("supervise"),
        "{out}"
    );
}

#[test]
fn a_bad_compose_file_is_exit_2_with_the_position() {
    let f = root().join("tests/fixtures/compose/invalid/bad-duration.yml");
    let o = osmen().arg("-f").arg(&f).arg("up").output().unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("bad-duration.yml:7:17: services.redis.healthcheck.interval"),
        "{err}"
    );
}

#[test]
fn a_missing_compose_file_says_how_to_point_at_one() {
    let o = osmen()
        .args(["-f", "/nonexistent/compose.yml", "ps"])
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("/nonexistent/compose.yml") && err.contains("-f"),
        "{err}"
    );
}

#[test]
fn no_engine_is_a_plain_message_not_a_trace() {
    let f = root().join("tests/fixtures/compose/valid/minimal.yml");
    let o = osmen()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("-f")
        .arg(&f)
        .arg("ps")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"));
    assert!(err.contains("DOCKER_HOST"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let o = osmen()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .arg("-f")
        .arg(&f)
        .arg("ps")
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("cannot reach the Docker engine at tcp://127.0.0.1:1"),
        "{err}"
    );
}

/// Issue 23: `--default-authentication-plugin=mysql_native_password` and
/// `MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db` were printed as `********`.
#[test]
fn config_masks_secrets_not_words_that_look_secret() {
    let f = root().join("tests/fixtures/compose/valid/masking-mysql.yml");
    let o = osmen()
        .arg("-f")
        .arg(&f)
        .args(["config", "--json"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    for secret in [
        "inline-pw-4d1e",
        "env-pw-77ab",
        "health-pw-0c9f",
        "url-pw-5e2a",
        "tok-91f0",
        "hdr-tok-3b7c",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let db = &v["services"]["db"];
    assert_eq!(
        db["command"],
        serde_json::json!([
            "--default-authentication-plugin=mysql_native_password",
            "--password",
            "********"
        ])
    );
    assert_eq!(
        db["environment"]["MYSQL_ROOT_PASSWORD_FILE"],
        "/run/secrets/db_root"
    );
    assert_eq!(db["environment"]["MYSQL_ALLOW_EMPTY_PASSWORD"], "no");
    assert_eq!(db["environment"]["MYSQL_PASSWORD"], "********");
    assert_eq!(db["healthcheck"]["test"][4], "-p********");
    let app = &v["services"]["app"];
    assert_eq!(
        app["environment"]["DATABASE_URL"],
        "mysql://app:********@db:3306/app"
    );
    assert_eq!(
        app["command"][2],
        "curl -fsS -H 'Authorization: Bearer ********' http://db/ && exec nginx"
    );
}

#[test]
fn config_masks_secrets() {
    let f = root().join("docker-compose.yml");
    let o = osmen()
        .env("POSTGRES_PASSWORD", "hunter2-very-secret")
        .arg("-f")
        .arg(&f)
        .args(["config", "--json"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.contains("hunter2"), "a secret leaked:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pg = &v["services"]["postgres"]["environment"];
    assert_eq!(pg["POSTGRES_PASSWORD"], "********");
    assert_eq!(pg["POSTGRES_USER"], "postgres");
    let url = v["services"]["langflow"]["environment"]["LANGFLOW_DATABASE_URL"]
        .as_str()
        .unwrap();
    assert_eq!(url, "postgresql://postgres:********@postgres:5432/osmen");
    let o = osmen()
        .env("POSTGRES_PASSWORD", "hunter2-very-secret")
        .arg("-f")
        .arg(&f)
        .arg("config")
        .output()
        .unwrap();
    let (yaml, _) = text(&o);
    assert!(
        yaml.contains("name: osmen") && !yaml.contains("hunter2"),
        "{yaml}"
    );
}

#[test]
fn probe_answers_with_exit_codes() {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for (i, s) in l.incoming().take(2).enumerate() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let status = if i == 0 {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = format!("http://127.0.0.1:{port}/health");
    assert_eq!(
        osmen().args(["probe", &url]).status().unwrap().code(),
        Some(0)
    );
    assert_eq!(
        osmen().args(["probe", &url]).status().unwrap().code(),
        Some(1)
    );
    server.join().unwrap();
    assert_eq!(
        osmen().args(["probe", &url]).status().unwrap().code(),
        Some(1)
    );
    assert_eq!(
        osmen()
            .args(["probe", "https://x"])
            .status()
            .unwrap()
            .code(),
        Some(2)
    );
}

#[test]
fn metrics_shows_every_family_and_quantiles() {
    use std::io::{Read, Write};
    let corpus =
        std::fs::read_to_string(root().join("tests/fixtures/prometheus/corpus.txt")).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{corpus}",
            corpus.len()
        );
        s.write_all(resp.as_bytes()).unwrap();
    });
    let o = osmen()
        .args(["metrics", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    server.join().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("8 families, 20 samples"), "{out}");
    assert!(out.contains("vllm:num_requests_running (gauge)"), "{out}");
    assert!(out.contains("msg=\"say \\\"hi\\\", then go\""), "{out}");
    assert!(
        out.contains("temperature_celsius{sensor=\"gpu1\"} +Inf"),
        "{out}"
    );
    assert!(
        out.contains("=> p50 0.300000 p95 0.750000 p99 0.950000"),
        "{out}"
    );
    let o = osmen().args(["metrics", "ftp://x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let o = osmen().args(["completions", shell]).output().unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        assert!(
            out.contains("osmen") && out.contains("supervise"),
            "{shell}: {out}"
        );
    }
    let o = osmen().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = osmen().arg("man").output().unwrap();
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.starts_with(".ie") || out.contains(".TH osmen"), "{out}");
    assert!(
        out.contains("no\\-up") && out.contains("read\\-only"),
        "{out}"
    );
}

#[test]
fn console_flags_parse_and_the_console_refuses_a_pipe() {
    let cli = Cli::parse_from(["osmen", "--no-up", "--ascii", "--read-only"]);
    assert!(cli.no_up && cli.ascii && cli.global.read_only && cli.command.is_none());
    // Without a terminal, bare osmen explains itself instead of drawing into a pipe.
    let o = osmen().arg("--no-up").output().unwrap();
    let (out, _) = text(&o);
    assert!(o.status.success() && out.contains("Usage:"), "{out}");
}

#[test]
fn file_is_repeatable_in_merge_order() {
    let cli = Cli::parse_from([
        "osmen", "-f", "a.yml", "--file", "b.yml", "-f", "c.yml", "config",
    ]);
    let files: Vec<String> = cli
        .global
        .file
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(files, ["a.yml", "b.yml", "c.yml"]);
    assert_eq!(cli.global.compose_file(), std::path::PathBuf::from("a.yml"));
}
