use super::window::new_hist;
use super::*;
use crate::model::agent_error::{
    ErrorKind, LAST_ERROR_INFO_METRIC, LAST_ERROR_TIMESTAMP_METRIC, WINDOW_ERRORS_METRIC,
    WINDOW_REQUESTS_METRIC,
};
use crate::model::metric::PROCESS_HEAP_BYTES;

/// A registry with every family filled: two agents (one with a quote and a
/// backslash in its name), answers from two models, failures, users, a chain.
fn fixed_registry() -> (Metrics, Instant, BTreeMap<String, i64>) {
    let m = Metrics::with_agents(&["chat".into(), "q\"uo\\te".into(), "idle".into()]);
    let t0 = m.started();
    let t = t0 + Duration::from_secs(90);
    m.set_chain(
        "chat",
        vec![
            ("ollama".into(), "llama3:8b".into()),
            ("openai".into(), "gpt-4o".into()),
        ],
    );
    m.saw_user("k1", t);
    m.saw_user("k2", t);
    m.answered_http(200);
    m.answered_http(200);
    m.answered_http(503);
    let answer = |provider, model, cost, cached, ms: u64| Answer {
        provider,
        model,
        prompt_tokens: 100,
        completion_tokens: 40,
        cost,
        cached,
        timing: crate::gateway::llm::Timing {
            ttft: Some(Duration::from_millis(ms)),
            tokens_per_s: Some(25.5),
            load: Some(Duration::from_millis(ms / 2)),
        },
        elapsed: Duration::from_millis(ms * 3),
    };
    m.agent("chat", |s| {
        for (i, ms) in [120u64, 250, 800, 40].iter().enumerate() {
            let at = t0 + Duration::from_secs(50 + i as u64);
            s.observe(at, Duration::from_millis(*ms));
            s.outcomes.record(at, false);
            *s.requests.entry("ok".into()).or_default() += 1;
            s.queue_wait.observe(Duration::from_millis(ms / 10));
            s.execution.observe(Duration::from_millis(*ms));
        }
        s.answered(
            t0 + Duration::from_secs(55),
            1_795_924_855.0,
            &answer("ollama", "llama3:8b", 0.0, false, 300),
        );
        s.answered(
            t0 + Duration::from_secs(80),
            1_795_924_880.25,
            &answer("openai", "gpt-4o", 0.0125, false, 900),
        );
        s.answered(
            t0 + Duration::from_secs(85),
            1_795_924_885.0,
            &answer("openai", "gpt-4o", 0.0, true, 1),
        );
        s.failed(
            t0 + Duration::from_secs(86),
            1_795_924_886.5,
            ErrorKind::Http5xx,
            "upstream \"503\"\nbusy".into(),
        );
        *s.requests.entry("error".into()).or_default() += 1;
        s.saw_user("k1", t);
        s.cpu_seconds = 1.75;
        s.memory_peak = 3 << 20;
        s.inflight = 1;
        s.queued = 2;
    });
    m.agent("q\"uo\\te", |s| {
        s.observe(t0 + Duration::from_secs(70), Duration::from_secs(2));
        s.failed(
            t0 + Duration::from_secs(71),
            1_795_924_871.0,
            ErrorKind::NoProvider,
            "none".into(),
        );
    });
    let live = BTreeMap::from([("chat".to_string(), 4096i64), ("idle".to_string(), -5)]);
    (m, t, live)
}

/// The exposition of a fixed registry, byte for byte as recorded (the process heap,
/// which depends on the allocator, is left out).
#[test]
fn the_exposition_of_a_fixed_registry_is_the_recorded_text() {
    let (m, t, live) = fixed_registry();
    let text = m.render(t, &live);
    let text = match text.find(&format!("# HELP {PROCESS_HEAP_BYTES} ")) {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/prometheus/gateway_render.prom"
    );
    if std::env::var_os("OSMEN_RECORD").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    assert!(text == want, "the /metrics text changed:\n{text}");
}

#[test]
fn last_errors_and_the_window_are_exported_escaped_one_series_per_agent() {
    let m = Metrics::with_agents(&["daily_brief".into(), "quiet".into()]);
    let t = Instant::now();
    m.agent("daily_brief", |s| {
        s.outcomes.record(t, false);
        s.failed(t, 1_795_924_800.0, ErrorKind::Http5xx, "old".into());
        s.failed(
            t,
            1_795_924_805.5,
            ErrorKind::NoProvider,
            "no \"provider\" \\ here".into(),
        );
    });
    let text = m.render(t, &BTreeMap::new());
    let fams = crate::collect::prometheus::parse(&text).unwrap();
    let fam = |n: &str| fams.iter().find(|f| f.name == n).unwrap();
    let ts = fam(LAST_ERROR_TIMESTAMP_METRIC);
    assert_eq!(
        ts.samples.len(),
        1,
        "only the last error, only agents with one"
    );
    assert_eq!(ts.samples[0].label("kind"), Some("no_provider"));
    assert_eq!(ts.samples[0].value, 1_795_924_805.5);
    let info = fam(LAST_ERROR_INFO_METRIC);
    assert_eq!(info.samples.len(), 1);
    assert_eq!(
        info.samples[0].label("message"),
        Some("no \"provider\" \\ here")
    );
    let window = |n: &str, agent: &str| {
        fam(n)
            .samples
            .iter()
            .find(|s| s.label("agent") == Some(agent))
            .map(|s| s.value)
    };
    assert_eq!(window(WINDOW_REQUESTS_METRIC, "daily_brief"), Some(3.0));
    assert_eq!(window(WINDOW_ERRORS_METRIC, "daily_brief"), Some(2.0));
    assert_eq!(window(WINDOW_ERRORS_METRIC, "quiet"), Some(0.0));
    let errs = fam("osmen_errors_total");
    assert_eq!(errs.samples.len(), 2, "one counter per kind: {errs:?}");
    // A minute later the window is empty, the last error stays.
    let later = t + SLOT * SLOTS as u32;
    let text = m.render(later, &BTreeMap::new());
    assert!(text.contains("osmen_agent_window_errors{agent=\"daily_brief\"} 0"));
    assert!(text.contains("osmen_agent_last_error_timestamp_seconds{agent=\"daily_brief\""));
}

#[test]
fn window_quantiles_are_true_quantiles() {
    let mut w = Window::default();
    let t = Instant::now();
    for ms in 1..=1000u64 {
        w.record(t, Duration::from_millis(ms));
    }
    let (q, n) = w.quantiles(t, &[0.5, 0.95, 0.99]);
    assert_eq!(n, 1000);
    for (got, want) in q.iter().zip([0.5, 0.95, 0.99]) {
        assert!((got - want).abs() / want < 0.002, "{got} vs {want}");
    }
    // Past the window everything has expired.
    let (q, n) = w.quantiles(t + SLOT * (SLOTS as u32 + 1), &[0.5]);
    assert!(q[0].is_nan() && n == 0);
}

/// The running total equals a fresh merge of the slots still in the window, read
/// after every step while slots come and go (values from a fixed pseudo-random walk).
#[test]
fn window_total_follows_the_slots_as_they_expire() {
    let mut w = Window::default();
    let t0 = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for step in 0..400u64 {
        let now = t0 + Duration::from_millis(step * 700);
        for _ in 0..(step % 7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.record(now, Duration::from_micros(1 + x % 5_000_000));
        }
        let qs = [0.5, 0.9, 0.99, 1.0];
        let (got, n) = w.quantiles(now, &qs);
        let mut merged = new_hist();
        for (_, h) in &w.slots {
            merged.add(h).unwrap();
        }
        assert_eq!(n, merged.len(), "step {step}");
        for (g, q) in got.iter().zip(qs) {
            if n == 0 {
                assert!(g.is_nan());
            } else {
                assert_eq!(
                    *g,
                    merged.value_at_quantile(q) as f64 / 1e6,
                    "step {step} q {q}"
                );
            }
        }
    }
    // Slots came and went: 400 steps of 0.7 s is 280 s, over four windows.
    assert!(w.slots.len() <= SLOTS);
}

#[test]
fn calls_in_flight_are_one_gauge_series_per_provider_name() {
    let text = super::render_provider_in_flight(&[("ollama", 2), ("openai", 0), ("ollama", 3)]);
    let name = crate::model::metric::PROVIDER_IN_FLIGHT;
    assert_eq!(
        text,
        format!(
            "# HELP {name} Calls to an LLM provider sent and not answered yet (beyond its \
             capacity they wait in its queue).\n# TYPE {name} gauge\n\
             {name}{{provider=\"ollama\"}} 5\n{name}{{provider=\"openai\"}} 0\n"
        )
    );
}
