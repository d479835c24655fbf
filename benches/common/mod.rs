//! What the gateway benchmarks share: a stand-in LLM speaking Ollama's `/api/chat`, the
//! gateway started as its own process, and its memory and open files from `/proc`.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// An Ollama stand-in answering every chat after `latency`.
pub async fn standin(latency: Duration) -> String {
    let app = Router::new().route(
        "/api/chat",
        post(move |Json(b): Json<Value>| async move {
            tokio::time::sleep(latency).await;
            Json(json!({
                "model": b["model"], "done": true,
                "message": {"role": "assistant", "content": "ok"},
                "prompt_eval_count": 10, "eval_count": 2
            }))
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let l = axum::serve::ListenerExt::tap_io(l, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

/// `osmen gateway` on a free loopback port with `gateway.toml` text and one key; the
/// per-key rate limit is off (one key stands for every client). Returns once it listens.
pub async fn gateway(dir: &std::path::Path, config: &str, key: &str) -> (Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("gateway.toml");
    std::fs::write(&cfg, config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_osmen"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("OSMEN_API_KEYS", key)
        .env("OSMEN_RATE_LIMIT_PER_KEY", "0")
        .env("OSMEN_RUNTIME_DIR", dir)
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-config",
        ])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("start osmen gateway");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, port)
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A process's CPU time so far (user + system), in seconds, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}
