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
