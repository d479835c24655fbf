use super::config::percent_decode;
use super::*;
use opentelemetry_sdk::metrics::Temporality;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn nothing_without_an_endpoint_or_when_disabled() {
    assert_eq!(Config::from_env(&env(&[])), Ok(None));
    let others = env(&[
        ("OTEL_SERVICE_NAME", "x"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=b"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
    ]);
    assert_eq!(Config::from_env(&others), Ok(None));
    let disabled = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_SDK_DISABLED", "TRUE"),
    ]);
    assert_eq!(Config::from_env(&disabled), Ok(None));
    let none = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]);
    assert_eq!(Config::from_env(&none), Ok(None));
}

#[test]
fn the_base_endpoint_gets_signal_paths_and_signal_endpoints_are_used_as_is() {
    let c = Config::from_env(&env(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://collector:4318/",
    )]))
    .unwrap()
    .unwrap();
    assert_eq!(c.traces.unwrap().url, "http://collector:4318/v1/traces");
    assert_eq!(c.metrics.unwrap().url, "http://collector:4318/v1/metrics");
    assert_eq!(c.service_name, DEFAULT_SERVICE_NAME);
    assert_eq!(c.metric_interval, DEFAULT_METRIC_INTERVAL);
    assert_eq!(c.temporality, Temporality::Cumulative);
    let c = Config::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gw.example/otel"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://jaeger:4318/custom",
        ),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.traces.unwrap().url, "http://jaeger:4318/custom");
    assert_eq!(c.metrics.unwrap().url, "https://gw.example/otel/v1/metrics");
    // Only a signal's own endpoint: only that signal is exported.
    let c = Config::from_env(&env(&[(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://m:4318/v1/metrics",
    )]))
    .unwrap()
    .unwrap();
    assert!(c.traces.is_none());
    assert_eq!(c.metrics.unwrap().url, "http://m:4318/v1/metrics");
}

#[test]
fn headers_timeouts_resource_and_intervals() {
    let c = Config::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Basic%20cGs6c2s=, x-scope=team%2Ca",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-only=traces"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,service.name=r",
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
    ]))
    .unwrap()
    .unwrap();
    let m = c.metrics.unwrap();
    assert_eq!(
        m.headers,
        vec![
            ("Authorization".to_string(), "Basic cGs6c2s=".to_string()),
            ("x-scope".to_string(), "team,a".to_string()),
        ]
    );
    assert_eq!(m.timeout, Duration::from_millis(700));
    let t = c.traces.unwrap();
    assert_eq!(
        t.headers,
        vec![("x-only".to_string(), "traces".to_string())]
    );
    assert_eq!(t.timeout, Duration::from_millis(2500));
    // service.name from the resource attributes when OTEL_SERVICE_NAME is unset.
    assert_eq!(c.service_name, "r");
    assert_eq!(
        c.resource,
        vec![("deployment.environment".to_string(), "prod".to_string())]
    );
    assert_eq!(c.metric_interval, Duration::from_millis(250));
    assert_eq!(c.span_delay, Duration::from_millis(50));
    assert_eq!(c.temporality, Temporality::Delta);
    let named = Config::from_env(&env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=r"),
        ("OTEL_SERVICE_NAME", "mine"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(named.service_name, "mine");
}

#[test]
fn what_cannot_be_honoured_is_refused_with_a_way_out() {
    let err = |pairs: &[(&str, &str)]| {
        let mut e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        e.extend(env(pairs));
        Config::from_env(&e).unwrap_err().to_string()
    };
    let e = err(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert!(e.contains("http/protobuf") && e.contains("4318"), "{e}");
    let e = err(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")]);
    assert!(e.starts_with("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"), "{e}");
    let e = err(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")]);
    assert!(e.contains("none"), "{e}");
    let e = err(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
    assert!(e.contains("otlp"), "{e}");
    let e = err(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]);
    assert!(e.contains("milliseconds"), "{e}");
    // A header without '=' is named by position; its value (a token) is never quoted.
    let e = err(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=1,Bearer s3cr3t")]);
    assert!(e.contains("entry 2") && !e.contains("s3cr3t"), "{e}");
    let e = err(&[("OTEL_EXPORTER_OTLP_HEADERS", "bad header=s3cr3t")]);
    assert!(e.contains("\"bad header\"") && !e.contains("s3cr3t"), "{e}");
    // A URL's password stays masked in the message.
    let e = Config::from_env(&env(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "grpc://user:hunter22@c:4317",
    )]))
    .unwrap_err()
    .to_string();
    assert!(e.contains("http://") && !e.contains("hunter22"), "{e}");
}

#[test]
fn percent_decoding_leaves_broken_escapes_alone() {
    assert_eq!(percent_decode("a%20b%2Cc"), "a b,c");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
}

#[test]
fn call_errors_name_the_status_or_the_kind() {
    let p = || "openai".to_string();
    let status = LlmError::Status {
        provider: p(),
        status: 429,
        message: "slow down".into(),
    };
    assert_eq!(call_error_type(&status), "429");
    let t = LlmError::Timeout {
        provider: p(),
        after: Duration::from_secs(1),
    };
    assert_eq!(call_error_type(&t), "timeout");
    let u = LlmError::Unavailable {
        provider: p(),
        message: "refused".into(),
    };
    assert_eq!(call_error_type(&u), "provider_unreachable");
}
