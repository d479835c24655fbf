//! Failing agents look failing: the gateway in-process on loopback, with no provider, with
//! a stand-in LLM answering 500, and with a provider that is down (behind a URL holding a
//! password). Its status JSON and /metrics carry the error share, FAILING, the last error
//! and its kind, with the password masked everywhere; the rows the collector parses from
//! /metrics, fed to the hub as the console feeds them, make the advisor's error-rate rule
//! name the cause and the fix.

use std::time::Duration;

use osmen::collect::prometheus;
use osmen::hub::{Hub, Update};
use osmen::model::config::AdvisorConfig;
use serde_json::Value;

use crate::gateway::{Gw, start};
use crate::llm_standin;

async fn status(gw: &Gw, agent: &str) -> Value {
    let (code, body) = gw.get("/api/v1/agents/status", Some("key-one")).await;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["agents"][agent].clone()
}

/// The /metrics text and the agent's row as the collector parses it.
async fn scraped(gw: &Gw, agent: &str) -> (String, Value) {
    let (_, text) = gw.get("/metrics", None).await;
    let rows = prometheus::agents_from(&prometheus::parse(&text).unwrap());
    let row = rows
        .into_iter()
        .find(|r| r.agent == agent)
        .unwrap_or_else(|| panic!("no row for {agent}:\n{text}"));
    // The row as `status --json` prints it.
    (text, serde_json::to_value(row).unwrap())
}

async fn fail(gw: &Gw, agent: &str, n: usize, want: u16) -> Value {
    let mut last = Value::Null;
    for i in 0..n {
        let (code, v) = gw.exec_as(agent, "key-one", &format!("request {i}")).await;
        assert_eq!(code, want, "{v}");
        last = v;
    }
    last
}

/// Failing requests between scrapes for a few seconds, each scrape handed to a hub whose
/// advisor looks at a 3 s window, as the console's loop does; then the hub's advice.
async fn advise(gw: &Gw, agent: &str, want: u16) -> Hub {
    let cfg = AdvisorConfig {
        window: Duration::from_secs(3),
        ..Default::default()
    };
    let mut hub = Hub::new("t", None).with_advisor(cfg);
    for _ in 0..16 {
        fail(gw, agent, 2, want).await;
        let (_, row) = scraped(gw, agent).await;
        hub.apply(Update::Agents(vec![serde_json::from_value(row).unwrap()]));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    hub.advise();
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_every_request_fails_and_the_advisor_says_set_ollama_url() {
    let gw = start(&[], None).await;
    let body = fail(&gw, "daily_brief", 8, 503).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set OLLAMA_URL"),
        "{body}"
    );
    let st = status(&gw, "daily_brief").await;
    assert_eq!(st["last_error_kind"], "no_provider", "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("no LLM provider"),
        "{st}"
    );
    assert!(st["last_error_at"].as_f64().unwrap() > 1.7e9, "{st}");
    assert_eq!(st["window_errors"], 8, "{st}");
    assert_eq!(st["error_percent"], 100.0, "{st}");
    assert_eq!(st["failing"], true, "{st}");
    assert!(st["errors_per_second"].as_f64().unwrap() > 0.0, "{st}");
    // An agent nobody called is neither failing nor erring.
    let quiet = status(&gw, "content_creator").await;
    assert_eq!(quiet["failing"], false, "{quiet}");
    assert_eq!(quiet["last_error_kind"], Value::Null, "{quiet}");

    let (text, row) = scraped(&gw, "daily_brief").await;
    assert!(
        text.contains(
            "osmen_agent_last_error_timestamp_seconds{agent=\"daily_brief\",kind=\"no_provider\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("osmen_errors_total{agent=\"daily_brief\",kind=\"no_provider\"} 8"),
        "{text}"
    );
    assert_eq!(row["last_error_kind"], "no_provider", "{row}");
    assert_eq!(row["window_error_percent"], 100.0, "{row}");
    assert_eq!(row["failing"], true, "{row}");
    assert!(
        row["last_error"].as_str().unwrap().contains("OLLAMA_URL"),
        "{row}"
    );

    let hub = advise(&gw, "daily_brief", 503).await;
    let a = &serde_json::to_value(&hub.snapshot.agents[0]).unwrap();
    assert_eq!(a["error_percent"], 100.0, "rates from two scrapes: {a}");
    assert!(a["errors_per_s"].as_f64().unwrap() > 0.0, "{a}");
    let pts = &hub.history.series["agent:daily_brief:error_percent"];
    assert!(pts.fine.len() >= 10, "{pts:?}");
    let s = hub
        .snapshot
        .suggestions
        .iter()
        .find(|s| s.id == "agent-errors:daily_brief")
        .unwrap_or_else(|| panic!("{:?}", hub.snapshot.suggestions));
    assert_eq!(s.rule, "agent-errors");
    assert_eq!(s.severity, "critical");
    assert_eq!(s.action.kind, "config");
    assert!(
        s.evidence.contains("last error (no provider)") && s.evidence.contains("100%"),
        "{}",
        s.evidence
    );
    assert!(s.command.contains("OLLAMA_URL"), "{}", s.command);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_500_is_counted_as_5xx_and_a_few_failures_are_not_failing() {
    let llm = llm_standin::start().await;
    let cfg = format!(
        "[providers.ollama]\nurl = \"{}\"\nretries = 0\nbreaker_failures = 100\n",
        llm.url
    );
    let gw = start(&[], Some(&cfg)).await;
    // One failure in eight: an error share, not FAILING.
    llm.script().fail_next = 1;
    llm.script().fail_status = 500;
    fail(&gw, "content_creator", 1, 502).await;
    for i in 0..7 {
        let (code, v) = gw
            .exec_as("content_creator", "key-one", &format!("fine {i}"))
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let st = status(&gw, "content_creator").await;
    assert_eq!(st["error_percent"], 12.5, "{st}");
    assert_eq!(st["failing"], false, "{st}");
    assert_eq!(st["last_error_kind"], "provider_5xx", "{st}");
    let (_, row) = scraped(&gw, "content_creator").await;
    assert_eq!(row["failing"], false, "{row}");
    assert_eq!(row["window_error_percent"], 12.5, "{row}");
    // Then most requests fail: FAILING.
    llm.script().fail_next = 10;
    let body = fail(&gw, "content_creator", 10, 502).await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("ollama answered 500"), "{msg}");
    let st = status(&gw, "content_creator").await;
    assert_eq!(st["failing"], true, "{st}");
    assert_eq!(st["window_errors"], 11, "{st}");
    let (text, row) = scraped(&gw, "content_creator").await;
    assert_eq!(row["failing"], true, "{row}");
    assert_eq!(row["last_error_kind"], "provider_5xx", "{row}");
    assert!(
        row["last_error"]
            .as_str()
            .unwrap()
            .contains("ollama answered 500"),
        "{row}"
    );
    assert!(
        text.contains("osmen_errors_total{agent=\"content_creator\",kind=\"provider_5xx\"} 11"),
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_is_unreachable_then_circuit_open_and_its_password_never_shows() {
    let port = crate::util::free_port();
    let cfg = format!(
        "[providers.ollama]\nurl = \"http://osmen:s3cret-pass@127.0.0.1:{port}\"\nretries = 0\n\
         breaker_failures = 3\nbreaker_cooldown = \"10m\"\n"
    );
    let gw = start(&[], Some(&cfg)).await;
    let body = fail(&gw, "daily_brief", 3, 502).await;
    let msg = body["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("cannot reach"), "{msg}");
    let st = status(&gw, "daily_brief").await;
    assert_eq!(st["last_error_kind"], "provider_unreachable", "{st}");
    let last = st["last_error"].as_str().unwrap();
    assert!(last.contains("osmen:********@127.0.0.1"), "{last}");
    // The circuit is open now: calls fail at once.
    fail(&gw, "daily_brief", 3, 502).await;
    let st = status(&gw, "daily_brief").await;
    assert_eq!(st["last_error_kind"], "circuit_open", "{st}");
    assert_eq!(st["failing"], true, "{st}");
    let (text, row) = scraped(&gw, "daily_brief").await;
    assert_eq!(row["last_error_kind"], "circuit_open", "{row}");
    assert!(
        text.contains("osmen_errors_total{agent=\"daily_brief\",kind=\"provider_unreachable\"} 3"),
        "{text}"
    );

    let hub = advise(&gw, "daily_brief", 502).await;
    let s = hub
        .snapshot
        .suggestions
        .iter()
        .find(|s| s.id == "agent-errors:daily_brief")
        .unwrap_or_else(|| panic!("{:?}", hub.snapshot.suggestions));
    assert!(
        s.evidence.contains("last error (circuit open)"),
        "{}",
        s.evidence
    );
    assert!(s.command.contains("circuit is open"), "{}", s.command);

    let (_, all) = gw.get("/api/v1/agents/status", Some("key-one")).await;
    let (_, health) = gw.get("/health", None).await;
    for (what, t) in [
        ("error answer", msg.as_str()),
        ("/metrics", text.as_str()),
        ("status JSON", all.as_str()),
        ("evidence", s.evidence.as_str()),
        ("/health", health.as_str()),
    ] {
        assert!(
            !t.contains("s3cret-pass"),
            "{what} shows the password:\n{t}"
        );
    }
    gw.stop().await;
}

/// Every route and the gateway's own log, with passwords in the provider's URL, Qdrant's
/// URL and the embedding model's URL: the `osmen gateway` binary as an operator runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_passwords_show_in_no_route_and_no_log_line() {
    let dir = std::env::temp_dir().join(format!("osmen-mask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The LLM answers (and embeds), Qdrant and n8n are down: each URL carries a password.
    let llm = llm_standin::start().await;
    let with_pw = llm.url.replacen("http://", "http://osmen:llm-pass-77@", 1);
    let down = crate::util::free_port();
    let cfg = dir.join("gateway.toml");
    std::fs::write(
        &cfg,
        format!("[providers.ollama]\nurl = \"{with_pw}\"\nretries = 0\n"),
    )
    .unwrap();
    let port = crate::util::free_port();
    let log = dir.join("stderr.log");
    let mut child = crate::util::osmen()
        .current_dir(&dir)
        .env("OSMEN_API_KEYS", "key-one")
        .env("OSMEN_RUNTIME_DIR", &dir)
        .env(
            "QDRANT_URL",
            format!("http://qd:qdrant-pass-88@127.0.0.1:{down}"),
        )
        .env(
            "N8N_URL",
            format!("http://n8n:n8n-pass-99@127.0.0.1:{down}"),
        )
        .args([
            "gateway",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-config",
        ])
        .arg(&cfg)
        .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
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
    let mut seen = Vec::new();
    let mut call = async |method: &str, path: &str, body: Option<&str>| {
        let mut r = match method {
            "GET" => http.get(format!("{base}{path}")),
            _ => http.post(format!("{base}{path}")),
        }
        .header("X-API-Key", "key-one");
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        seen.push((format!("{method} {path} ({status})"), text));
    };
    call(
        "POST",
        "/api/v1/agents/daily_brief/execute",
        Some(r#"{"input":"x"}"#),
    )
    .await;
    call("POST", "/api/v1/memory", Some(r#"{"text":"a note"}"#)).await;
    call("POST", "/api/v1/memory/search", Some(r#"{"query":"note"}"#)).await;
    for path in [
        "/health",
        "/ready",
        "/api/v1/agents/status",
        "/metrics",
        "/api/v1/agents",
    ] {
        call("GET", path, None).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    seen.push(("stderr".into(), std::fs::read_to_string(&log).unwrap()));
    seen.push((
        "stdout".into(),
        std::fs::read_to_string(dir.join("stdout.log")).unwrap(),
    ));
    let all: String = seen.iter().map(|(w, t)| format!("{w}: {t}\n")).collect();
    // The routes did report the failures, with the URLs masked.
    for shown in ["qd:********@127.0.0.1", "\"n8n\":\"down"] {
        assert!(all.contains(shown), "{shown} not in:\n{all}");
    }
    assert!(all.contains("execute (200)"), "the LLM answered:\n{all}");
    for (what, text) in &seen {
        for pw in ["llm-pass-77", "qdrant-pass-88", "n8n-pass-99"] {
            assert!(!text.contains(pw), "{what} shows {pw}:\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
