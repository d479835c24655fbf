//! Docker contexts: a context store in a temporary `DOCKER_CONFIG`, made by the Docker CLI
//! itself (`docker context create` and `use`), pointing at this machine's engine through
//! a `tcp://` socat forward, and a second context pointing at a closed port. osmen must
//! pick the context the Docker CLI picks (`docker context show`), with its precedence
//! (`--context`, then `DOCKER_HOST`, then `DOCKER_CONTEXT`, then `currentContext`), and
//! `doctor` must say which context and endpoint it used.

use std::path::Path;
use std::process::Command;

use crate::remote::{need, round_trip, socat, stack};
use crate::util::{Stack, docker_ready, free_port, text};

fn docker_cli(config: &Path, args: &[&str]) -> String {
    let o = Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "docker {args:?}: {err}");
    out.trim().to_string()
}

/// osmen `args` with `env` (an empty value unsets the variable): (exit code, stdout, stderr).
fn osmen(st: &Stack, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = st.cmd(args);
    for (k, v) in env {
        if v.is_empty() {
            c.env_remove(k);
        } else {
            c.env(k, v);
        }
    }
    let o = c.output().unwrap();
    let (out, err) = text(&o);
    (o.status.code().unwrap_or(-1), out, err)
}

#[test]
fn the_docker_clis_context_with_its_precedence() {
    if !docker_ready() || !need("socat") {
        return;
    }
    let (fwd, port) = socat(format!(
        "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
        free_port()
    ));
    let closed = free_port();
    let st = stack("ctx");
    let config = st.dir.join("docker-config");
    let fwd_host = format!("tcp://127.0.0.1:{port}");
    docker_cli(
        &config,
        &[
            "context",
            "create",
            "osmen-fwd",
            "--docker",
            &format!("host={fwd_host}"),
        ],
    );
    docker_cli(
        &config,
        &[
            "context",
            "create",
            "osmen-cut",
            "--docker",
            &format!("host=tcp://127.0.0.1:{closed}"),
        ],
    );
    docker_cli(&config, &["context", "use", "osmen-fwd"]);
    assert_eq!(docker_cli(&config, &["context", "show"]), "osmen-fwd");
    let cfg = config.display().to_string();
    let base = [
        ("DOCKER_CONFIG", cfg.as_str()),
        ("DOCKER_HOST", ""),
        ("DOCKER_CONTEXT", ""),
    ];

    // The current context: doctor names it and its endpoint, as the Docker CLI has them.
    let (_, out, err) = osmen(&st, &["doctor"], &base);
    let want = format!("context osmen-fwd (chosen by config.json), endpoint {fwd_host}");
    assert!(out.contains(&want), "doctor: {out}{err}");
    assert_eq!(
        docker_cli(
            &config,
            &[
                "context",
                "inspect",
                "--format",
                "{{.Endpoints.docker.Host}}"
            ]
        ),
        fwd_host
    );
    round_trip(
        &st,
        &[
            ("DOCKER_CONFIG", cfg.clone()),
            ("DOCKER_HOST", String::new()),
            ("DOCKER_CONTEXT", String::new()),
        ],
    );

    // DOCKER_CONTEXT wins over the current context: the cut one fails, naming it.
    let mut env = base.to_vec();
    env[2] = ("DOCKER_CONTEXT", "osmen-cut");
    let (code, _, err) = osmen(&st, &["ps"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("tcp://127.0.0.1:{closed} (context osmen-cut)")),
        "{err}"
    );
    // DOCKER_HOST wins over DOCKER_CONTEXT and the current context (the default context).
    let bad_socket = format!("unix://{}/no.sock", st.dir.display());
    env[1] = ("DOCKER_HOST", bad_socket.as_str());
    let (code, _, err) = osmen(&st, &["ps"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no.sock"), "{err}");
    let (_, out, _) = osmen(&st, &["doctor"], &env);
    assert!(
        out.contains("context default (chosen by DOCKER_HOST)"),
        "{out}"
    );
    // --context wins over DOCKER_HOST, as `docker --context` does.
    let (code, _, err) = osmen(&st, &["--context", "osmen-fwd", "ps"], &env);
    assert_eq!(code, 0, "{err}");
    // A context that does not exist is named, with how to list them.
    let (code, _, err) = osmen(&st, &["--context", "nope", "ps"], &base);
    assert_eq!(code, 2);
    assert!(
        err.contains("context \"nope\" (--context): not found")
            && err.contains("docker context ls"),
        "{err}"
    );
    // The forward is the only way in: cut it and the current context fails.
    drop(fwd);
    let (code, _, err) = osmen(&st, &["ps"], &base);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("context osmen-fwd"), "{err}");
}
