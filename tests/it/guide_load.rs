//! The performance guide's own load tests against the `osmen gateway` binary on the
//! shipped `config/gateway.toml`: its `load_test.py` run verbatim (aiohttp, all 1,000
//! requests in flight) and its `ab -n 1000 -c 10` command (Debian's apache2-utils). A
//! stand-in LLM on loopback answers in a known 50 ms, so four provider slots make the
//! clients queue. Reference figures are the clients': ab's percentiles and the script's
//! success rate.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::llm_standin;

const KEY: &str = "test-key";

fn tool_present(cmd: &str, arg: &str, why: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but {why} is missing (.ci/run installs it)"
        );
        eprintln!("skipped: {why} is not installed");
    }
    ok
}

struct Gateway {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `osmen gateway` on the shipped config, its Ollama provider pointed at `llm`.
async fn shipped_gateway(llm: &str, tag: &str) -> Gateway {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("osmen-guide-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::util::free_port();
    let child = crate::util::osmen()
        .current_dir(&dir)
        .env("OSMEN_API_KEYS", KEY)
        .env("OSMEN_RUNTIME_DIR", &dir)
        .env("OLLAMA_URL", llm)
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-config",
        ])
        .arg(root.join("config/gateway.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Gateway { child, port, dir }
}

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sample(m: &str, series: &str) -> f64 {
    crate::gateway::sample(m, series).unwrap_or_else(|| panic!("no {series} in:\n{m}"))
}

/// The script in tests/fixtures/guide is the guide's, byte for byte.
#[test]
fn the_fixture_is_the_guides_script() {
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guide/load_test.py"),
    )
    .unwrap();
    assert!(script.contains("http://localhost:8080/api/v1/agents/daily_brief/execute"));
    let guide = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/reference/osmen-performance-and-scaling-guide.md");
    let Ok(guide) = std::fs::read_to_string(&guide) else {
        eprintln!("the guide is not beside the project here: fixture not compared");
        return;
    };
    assert!(
        guide.contains(&format!("```python\n{script}```")),
        "tests/fixtures/guide/load_test.py differs from the guide's Load Testing Script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_load_test_py_succeeds_on_the_shipped_defaults() {
    if !tool_present("python3", "--version", "python3") {
        return;
    }
    let aiohttp = Command::new("python3")
        .args(["-c", "import aiohttp"])
        .status()
        .is_ok_and(|s| s.success());
    if !aiohttp {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but python3's aiohttp is missing (.ci/run installs it from PyPI)"
        );
        eprintln!("skipped: aiohttp not installed");
        return;
    }
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(50);
    let gw = shipped_gateway(&llm.url, "py").await;
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guide/load_test.py"),
    )
    .unwrap()
    .replace("localhost:8080", &format!("127.0.0.1:{}", gw.port));
    let path = gw.dir.join("load_test.py");
    std::fs::write(&path, script).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("python3").arg(&path).output(),
    )
    .await
    .expect("load_test.py ran past 240 s")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Success rate: "))
        .and_then(|r| r.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no success rate in:\n{text}"));
    eprintln!("load_test.py on the shipped defaults:\n{text}");
    assert!(rate >= 99.0, "success {rate}%:\n{text}");
    let m = metrics(gw.port).await;
    let ok = sample(
        &m,
        "osmen_requests_total{agent=\"daily_brief\",status=\"success\"}",
    );
    assert!(ok >= 990.0, "{ok} successes counted");
    assert_eq!(llm.requests() as f64, ok, "none of them from a cache");
}

/// ab's percentiles: "  50%    123" lines of its "served within a certain time" table.
fn ab_percentile(out: &str, p: u32) -> f64 {
    out.lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix(&format!("{p}%"))?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {p}% line in ab's output:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_ab_command_succeeds_and_the_quantiles_match_abs() {
    if !tool_present("ab", "-V", "ab (apache2-utils)") {
        return;
    }
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(50);
    let gw = shipped_gateway(&llm.url, "ab").await;
    let payload = gw.dir.join("payload.json");
    std::fs::write(&payload, r#"{"input": "Test request"}"#).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/v1/agents/daily_brief/execute",
        gw.port
    );
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("ab")
            .args(["-n", "1000", "-c", "10", "-H", &format!("X-API-Key: {KEY}")])
            .arg("-p")
            .arg(&payload)
            .args(["-T", "application/json"])
            .arg(&url)
            .output(),
    )
    .await
    .expect("ab ran past 240 s")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    let line = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    assert_eq!(line("Complete requests:"), 1000.0, "{text}");
    // ab counts an answer whose length differs from the first as "failed" (Length): the
    // answers carry their own duration and request id. Only connect, receive and
    // exception failures are failures.
    assert!(
        text.contains("(Connect: 0, Receive: 0, Length: ") && text.contains(", Exceptions: 0)")
            || line("Failed requests:") == 0.0,
        "{text}"
    );
    assert!(
        !text.contains("Non-2xx responses"),
        "every answer is a 200:\n{text}"
    );
    // The gateway's quantiles over the same requests (its window is the last minute, and
    // nothing else ran against this gateway), against ab's.
    let m = metrics(gw.port).await;
    let mut report = String::new();
    for (p, q) in [(50, "0.5"), (95, "0.95"), (99, "0.99")] {
        let theirs = ab_percentile(&text, p);
        let ours = sample(
            &m,
            &format!("osmen_request_duration_seconds{{agent=\"daily_brief\",quantile=\"{q}\"}}"),
        ) * 1000.0;
        report.push_str(&format!("P{p}: ab {theirs} ms, gateway {ours:.1} ms\n"));
        // ab prints whole milliseconds, and its time holds the connect and the exchange.
        assert!(
            (ours - theirs).abs() <= 0.05 * theirs + 1.0,
            "P{p} differs by more than 5%:\n{report}"
        );
    }
    eprintln!("{report}");
    assert_eq!(
        sample(
            &m,
            "osmen_requests_total{agent=\"daily_brief\",status=\"success\"}"
        ),
        1000.0
    );
    // Under queueing: ten clients, four slots, 50 ms answers.
    assert!(ab_percentile(&text, 50) >= 80.0, "{text}");
}
