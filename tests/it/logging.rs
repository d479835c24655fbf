//! The operator's log, `runtime/osmen.log`: headless commands and the console write their
//! events there at the level `--log-level` selects, never to the terminal, and no secret
//! reaches it.

use std::time::Duration;

use crate::console::Tmux;
use crate::util::{Stack, docker_ready, free_port, osmen, wait_until};

/// Words only a log line holds: its level and the events osmen logs.
const LOG_WORDS: &[&str] = &[
    " INFO ",
    " DEBUG ",
    " WARN ",
    "engine connected",
    "source up",
    "osmen started",
    "gateway listening",
];

fn log_of(st: &Stack) -> String {
    std::fs::read_to_string(st.path("runtime/osmen.log")).unwrap_or_default()
}

fn assert_no_log_line(what: &str, text: &str) {
    for w in LOG_WORDS {
        assert!(
            !text.contains(w),
            "{what} shows a log line ({w:?}):\n{text}"
        );
    }
}

#[test]
fn headless_commands_log_to_the_runtime_file_and_not_the_terminal() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("secrets", "log");
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=file-secret-4242\n").unwrap();
    let (code, out, err) = st.run(&["--log-level", "debug", "up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_no_log_line("up", &format!("{out}{err}"));
    let (code, out, err) = st.run(&["--log-level", "debug", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_no_log_line("status", &format!("{out}{err}"));

    let log = log_of(&st);
    for want in [
        "osmen started",
        "command=up",
        "command=status",
        "engine connected",
        // Every supervisor action, as the journal has it.
        "action",
        "service=\"cache\"",
        // Each collector source as the hub first hears from it (debug).
        "source up",
        "source=\"host\"",
        "source=\"containers\"",
    ] {
        assert!(log.contains(want), "the log lacks {want:?}:\n{log}");
    }
    assert!(
        log.contains(" DEBUG "),
        "--log-level debug logs debug:\n{log}"
    );
    for secret in [
        "cmd-secret-7f3a",
        "env-secret-91bc",
        "url-secret-d00d",
        "file-secret-4242",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }

    // The default level, info, leaves the debug events out.
    let _ = std::fs::remove_file(st.path("runtime/osmen.log"));
    let (code, _, err) = st.run(&["ps"]);
    assert_eq!(code, 0, "{err}");
    let log = log_of(&st);
    assert!(
        log.contains("engine connected") && !log.contains(" DEBUG "),
        "{log}"
    );

    // A level that is none is refused with what to write.
    let (code, _, err) = st.run(&["--log-level", "loud", "ps"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error, warn, info, debug, trace"), "{err}");
}

/// The console owns the terminal: with `--log-level debug` nothing of the log reaches the
/// pane, and the log has the engine, the embedded gateway's address and its stop.
#[test]
fn the_console_writes_its_log_to_the_file_and_nothing_to_the_pane() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("secrets", "logtui");
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=x\n").unwrap();
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let port = free_port();
    let exit_file = st.path("console.exit");
    let script = format!(
        "cd {dir} && OSMEN_API_KEYS=gw-secret-5e11aa OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} \
         {bin} --log-level debug -p {project}; echo $? > {exit}; sleep 60",
        dir = st.dir.display(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = st.project,
        exit = exit_file.display(),
    );
    let t = Tmux::start(
        format!("osmen-log-{}", std::process::id()),
        120,
        40,
        &script,
    );
    t.wait_for("1 running  1 healthy", Duration::from_secs(60));
    // A few refreshes: sources report, the gateway serves.
    std::thread::sleep(Duration::from_secs(3));
    assert_no_log_line("the console's pane", &t.screen());
    t.keys(&["q"]);
    assert!(
        wait_until(Duration::from_secs(15), || exit_file.exists()),
        "the console did not exit on q; screen:\n{}",
        t.screen()
    );
    // What the pane holds once the console has left its screen.
    assert_no_log_line("the pane after the console", &t.screen());

    let log = log_of(&st);
    for want in [
        "command=console",
        "engine connected",
        "gateway listening",
        &format!("127.0.0.1:{port}"),
        "console's gateway",
        "source up",
        "gateway stopped",
    ] {
        assert!(log.contains(want), "the log lacks {want:?}:\n{log}");
    }
    assert!(!log.contains("gw-secret-5e11aa"), "{log}");
}

/// An LLM provider's failure is logged with the provider and the reason, and neither the
/// gateway's API key nor the password in the provider's URL is in the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_are_logged_without_a_secret() {
    let dir = std::env::temp_dir().join(format!("osmen-log-llm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let down = free_port();
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[providers.ollama]\nurl = \"http://osmen:llm-pass-77@127.0.0.1:{down}\"\n\
             retries = 0\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = osmen()
        .current_dir(&dir)
        .env("OSMEN_API_KEYS", "gw-key-secret-123")
        .env("OPENAI_API_KEY", "sk-never-logged-456")
        .env("OSMEN_RUNTIME_DIR", &dir)
        .args(["--log-level", "debug", "gateway", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--gateway-config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .post(format!("{base}/api/v1/agents/daily_brief/execute"))
        .header("X-API-Key", "gw-key-secret-123")
        .header("content-type", "application/json")
        .body(r#"{"input":"x"}"#)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let _ = r.text().await;
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("osmen.log")).unwrap_or_default();
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(!status.is_success(), "the provider is down: {status}");
    assert!(
        log.contains("LLM call failed") && log.contains("provider=\"ollama\""),
        "{log}"
    );
    assert!(log.contains("gateway stopped"), "{log}");
    for secret in ["gw-key-secret-123", "sk-never-logged-456", "llm-pass-77"] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    assert!(!stderr.contains("LLM call failed"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
