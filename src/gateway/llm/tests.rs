use super::*;

#[test]
fn ollamas_answer_gives_its_text_tokens_and_counters() {
    let read = |b: &str| {
        serde_json::from_str::<OllamaAnswer>(b)
            .unwrap()
            .completion("asked")
    };
    let c = read(
            r#"{"model":"llama3.2","created_at":"2026-12-01T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":true,"total_duration":5000000,"load_duration":1000000,"prompt_eval_count":11,"prompt_eval_duration":2000000,"eval_count":7,"eval_duration":3500000}"#,
        )
        .unwrap();
    assert_eq!(
        (
            c.text.as_str(),
            c.model.as_str(),
            c.prompt_tokens,
            c.completion_tokens
        ),
        ("hi", "llama3.2", 11, 7)
    );
    // First token: load (1 ms) plus the prompt's evaluation (2 ms); 7 tokens in 3.5 ms.
    assert_eq!(c.timing.ttft, Some(Duration::from_millis(3)));
    assert_eq!(c.timing.load, Some(Duration::from_millis(1)));
    assert!((c.timing.tokens_per_s.unwrap() - 2000.0).abs() < 1e-9);
    // No counters: the asked model, no figures.
    let c = read(r#"{"message":{"role":"assistant","content":"x"},"done":true}"#).unwrap();
    assert_eq!((c.model.as_str(), c.prompt_tokens), ("asked", 0));
    assert_eq!(c.timing, Timing::default());
    // Zero evaluated tokens or time give no speed; a load alone is the first token.
    let c =
        read(r#"{"message":{"content":"z"},"eval_count":0,"eval_duration":0,"load_duration":5}"#)
            .unwrap();
    assert_eq!(c.timing.tokens_per_s, None);
    assert_eq!(c.timing.ttft, Some(Duration::from_nanos(5)));
    assert!(
        read(r#"{"done":true}"#).is_none(),
        "no message: no completion"
    );
    assert!(serde_json::from_str::<OllamaAnswer>(r#"{"message":{"content":3}}"#).is_err());
}

#[test]
fn retry_after_is_honoured_and_capped() {
    assert_eq!(retry_delay(1, Some("2")), Duration::from_secs(2));
    assert_eq!(retry_delay(1, Some("600")), Duration::from_secs(30));
    assert_eq!(retry_delay(1, Some("NaN")), Duration::from_millis(250));
    assert_eq!(retry_delay(1, Some("inf")), Duration::from_millis(250));
    assert_eq!(retry_delay(1, Some("-5")), Duration::ZERO);
    assert_eq!(retry_delay(1, None), Duration::from_millis(250));
    assert_eq!(retry_delay(3, None), Duration::from_millis(1000));
    assert_eq!(
        retry_delay(2, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
        Duration::from_millis(500)
    );
}

#[test]
fn cache_evicts_least_recent() {
    let c = Cache::new(2);
    let comp = |t: &str| Completion {
        text: t.into(),
        model: "m".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        cached: false,
        timing: Timing::default(),
    };
    let hour = Duration::from_secs(3600);
    c.put("a".into(), comp("a"));
    c.put("b".into(), comp("b"));
    assert!(c.get("a", hour).is_some());
    c.put("c".into(), comp("c"));
    assert!(c.get("b", hour).is_none(), "b was least recently used");
    assert!(c.get("a", hour).is_some() && c.get("c", hour).is_some());
    // An entry older than the agent's cache_ttl is no answer, and is dropped.
    std::thread::sleep(Duration::from_millis(5));
    assert!(c.get("a", Duration::from_millis(1)).is_none());
    assert!(c.get("a", hour).is_none());
}

/// A provider whose server takes the request and never answers.
fn silent_provider(base_url: String, timeout: Duration) -> Provider {
    Provider::new(ProviderConfig {
        kind: Kind::Ollama,
        base_url,
        api_key: None,
        model: "m".into(),
        timeout,
        retries: 0,
        concurrency: 4,
        breaker_failures: 5,
        breaker_cooldown: Duration::from_secs(30),
    })
}

#[tokio::test]
async fn calls_in_flight_are_counted_until_answered_timed_out_or_cancelled() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accepts and holds every connection without a word.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c);
        }
    });
    let p = Arc::new(silent_provider(url, Duration::from_millis(400)));
    let until = |p: Arc<Provider>, n: u64| async move {
        for _ in 0..200 {
            if p.in_flight() == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    };
    // Two calls: one cancelled, one left to time out.
    let (a, b) = (p.clone(), p.clone());
    let cancelled = tokio::spawn(async move { a.chat("m", "s", "u").await });
    let timed_out = tokio::spawn(async move { b.chat("m", "s", "u").await });
    assert!(
        until(p.clone(), 2).await,
        "both calls count: {}",
        p.in_flight()
    );
    cancelled.abort();
    assert!(until(p.clone(), 1).await, "a cancelled call stops counting");
    let r = timed_out.await.unwrap();
    assert!(matches!(r, Err(LlmError::Timeout { .. })), "{r:?}");
    assert_eq!(p.in_flight(), 0, "a timed-out call stops counting");
    held.abort();
}
