//! OpenTelemetry export: an OTLP/HTTP receiver on loopback decodes (with
//! `opentelemetry-proto`) what the gateway sends, and checks the GenAI histograms, the
//! execution traces, and that no user text or key reaches an attribute. Without an endpoint,
//! nothing is installed and nothing is sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, metric};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message as _;

use crate::gateway::start;
use crate::llm_standin;
use crate::util::root;

/// What an OTLP collector received: path, headers, body.
type Requests = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

struct Receiver {
    url: String,
    got: Requests,
}

impl Receiver {
    async fn bind(addr: &str) -> std::io::Result<Receiver> {
        let got: Requests = Default::default();
        let store = got.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .unwrap()
                    .push((uri.path().to_string(), headers, body));
                // An empty Export*ServiceResponse: full success.
                (
                    StatusCode::OK,
                    [("content-type", "application/x-protobuf")],
                    Bytes::new(),
                )
            }
        });
        let l = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", l.local_addr()?);
        tokio::spawn(async move {
            axum::serve(l, app).await.unwrap();
        });
        Ok(Receiver { url, got })
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn bodies(&self, path: &str) -> Vec<Bytes> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.bodies("/v1/metrics")
            .iter()
            .map(|b| ExportMetricsServiceRequest::decode(b.as_ref()).unwrap())
            .collect()
    }

    fn spans(&self) -> Vec<Span> {
        self.bodies("/v1/traces")
            .iter()
            .map(|b| ExportTraceServiceRequest::decode(b.as_ref()).unwrap())
            .flat_map(|r| r.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Every attribute of a metrics export (resource, scope, data points), as text.
fn metric_attr_texts(r: &ExportMetricsServiceRequest) -> Vec<String> {
    let mut out = Vec::new();
    for rm in &r.resource_metrics {
        if let Some(res) = &rm.resource {
            out.extend(res.attributes.iter().map(|kv| format!("{kv:?}")));
        }
        for sm in &rm.scope_metrics {
            if let Some(s) = &sm.scope {
                out.extend(s.attributes.iter().map(|kv| format!("{kv:?}")));
            }
            for m in &sm.metrics {
                if let Some(metric::Data::Histogram(h)) = &m.data {
                    for p in &h.data_points {
                        out.extend(p.attributes.iter().map(|kv| format!("{kv:?}")));
                    }
                }
            }
        }
    }
    out
}

/// One histogram of the last metrics export: (unit, points).
fn histogram(
    r: &ExportMetricsServiceRequest,
    name: &str,
) -> Option<(String, Vec<HistogramDataPoint>)> {
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == name)
        .and_then(|m| match &m.data {
            Some(metric::Data::Histogram(h)) => Some((m.unit.clone(), h.data_points.clone())),
            _ => None,
        })
}

fn total(points: &[HistogramDataPoint]) -> u64 {
    points.iter().map(|p| p.count).sum()
}

const USER_TEXT: &str = "private-question-about-q3-7f3a";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn an_otlp_receiver_gets_the_genai_histograms_and_a_trace_per_execution() {
    let rx = Receiver::bind("127.0.0.1:0").await.unwrap();
    let llm = llm_standin::start().await;
    let llm_port = llm.url.rsplit(':').next().unwrap().parse::<i64>().unwrap();
    let gw = start(
        &[
            ("OLLAMA_URL", &llm.url),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "osmen-otel-test"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20collector-token",
            ),
        ],
        None,
    )
    .await;
    // Three answers, one more under a client's trace, one the provider refuses (400).
    for i in 0..3 {
        let (s, v) = gw
            .exec_as("daily_brief", "key-one", &format!("{USER_TEXT} {i}"))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/agents/daily_brief/execute", gw.url()))
        .header("X-API-Key", "key-two")
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&serde_json::json!({"input": format!("{USER_TEXT} traced")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    {
        let mut s = llm.script();
        s.fail_next = 1;
        s.fail_status = 400;
    }
    let (s, v) = gw
        .exec_as("daily_brief", "key-one", &format!("{USER_TEXT} refused"))
        .await;
    assert_eq!(s, 502, "{v}");

    // Metrics arrive on the export interval, while the gateway runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let got = rx.metrics().into_iter().rev().find(|m| {
            histogram(m, "gen_ai.client.operation.duration").is_some_and(|(_, p)| total(&p) == 5)
        });
        if let Some(m) = got {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no metrics export with 5 operations within 10s ({} requests)",
            rx.count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The gateway's own account of the exports, in /metrics.
    let (_, m) = gw.get("/metrics", None).await;
    let ok = m
        .lines()
        .find(|l| l.starts_with("osmen_otel_exports_total{signal=\"metrics\",outcome=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no export counter in {m}"));
    assert!(ok >= 1, "{m}");
    assert!(
        m.contains("osmen_otel_exports_total{signal=\"metrics\",outcome=\"failed\"} 0"),
        "{m}"
    );
    gw.stop().await;

    // The OTLP request itself: protobuf, with the configured (decoded) header.
    {
        let got = rx.got.lock().unwrap();
        let (_, h, _) = got.iter().find(|(p, _, _)| p == "/v1/metrics").unwrap();
        assert_eq!(h["content-type"], "application/x-protobuf");
        assert_eq!(h["authorization"], "Bearer collector-token");
    }
    let res = last.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        text(&res.attributes, "service.name").as_deref(),
        Some("osmen-otel-test")
    );

    // gen_ai.client.operation.duration: 4 answers and 1 failure with its error.type.
    let (unit, points) = histogram(&last, "gen_ai.client.operation.duration").unwrap();
    assert_eq!(unit, "s");
    for p in &points {
        assert_eq!(
            text(&p.attributes, "gen_ai.operation.name").as_deref(),
            Some("chat")
        );
        assert_eq!(
            text(&p.attributes, "gen_ai.provider.name").as_deref(),
            Some("ollama")
        );
        assert_eq!(
            text(&p.attributes, "gen_ai.request.model").as_deref(),
            Some("llama3.2")
        );
        assert_eq!(
            text(&p.attributes, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(int(&p.attributes, "server.port"), Some(llm_port));
        assert_eq!(
            p.explicit_bounds,
            osmen::gateway::otel::DURATION_BUCKETS.to_vec()
        );
        assert!(p.sum.unwrap() > 0.0);
    }
    let ok: Vec<_> = points
        .iter()
        .filter(|p| attr(&p.attributes, "error.type").is_none())
        .collect();
    assert_eq!(ok.len(), 1, "{points:?}");
    assert_eq!(ok[0].count, 4);
    assert_eq!(
        text(&ok[0].attributes, "gen_ai.response.model").as_deref(),
        Some("llama3.2")
    );
    let failed: Vec<_> = points
        .iter()
        .filter(|p| text(&p.attributes, "error.type").as_deref() == Some("400"))
        .collect();
    assert_eq!(failed.len(), 1, "{points:?}");
    assert_eq!(failed[0].count, 1);

    // gen_ai.client.token.usage: input and output apart, the stand-in's 11 and 7 each time.
    let (unit, points) = histogram(&last, "gen_ai.client.token.usage").unwrap();
    assert_eq!(unit, "{token}");
    assert_eq!(points.len(), 2, "{points:?}");
    for (kind, each) in [("input", 11.0), ("output", 7.0)] {
        let p = points
            .iter()
            .find(|p| text(&p.attributes, "gen_ai.token.type").as_deref() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} tokens: {points:?}"));
        assert_eq!(p.count, 4);
        assert_eq!(p.sum, Some(each * 4.0));
        assert_eq!(
            text(&p.attributes, "gen_ai.operation.name").as_deref(),
            Some("chat")
        );
        assert_eq!(
            text(&p.attributes, "gen_ai.provider.name").as_deref(),
            Some("ollama")
        );
        assert_eq!(
            text(&p.attributes, "gen_ai.request.model").as_deref(),
            Some("llama3.2")
        );
        assert_eq!(
            p.explicit_bounds,
            osmen::gateway::otel::TOKEN_BUCKETS.to_vec()
        );
    }

    // The model's speed, for the answers.
    for (name, bounds) in [
        (
            "gen_ai.server.time_to_first_token",
            osmen::gateway::otel::TTFT_BUCKETS.to_vec(),
        ),
        (
            "gen_ai.server.time_per_output_token",
            osmen::gateway::otel::TPOT_BUCKETS.to_vec(),
        ),
    ] {
        let (unit, points) = histogram(&last, name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(unit, "s", "{name}");
        assert_eq!(total(&points), 4, "{name}: {points:?}");
        for p in &points {
            assert_eq!(
                text(&p.attributes, "gen_ai.operation.name").as_deref(),
                Some("chat")
            );
            assert_eq!(
                text(&p.attributes, "gen_ai.provider.name").as_deref(),
                Some("ollama")
            );
            assert_eq!(
                text(&p.attributes, "gen_ai.request.model").as_deref(),
                Some("llama3.2")
            );
            assert_eq!(p.explicit_bounds, bounds, "{name}");
        }
    }

    // Spans: one invoke_agent per execution, the tool and the provider call as children.
    let spans = rx.spans();
    let executions: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "invoke_agent daily_brief")
        .collect();
    assert_eq!(
        executions.len(),
        5,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let mut traced = 0;
    let mut failed = 0;
    for e in &executions {
        assert_eq!(e.kind, span::SpanKind::Internal as i32);
        assert_eq!(
            text(&e.attributes, "gen_ai.operation.name").as_deref(),
            Some("invoke_agent")
        );
        assert_eq!(
            text(&e.attributes, "gen_ai.agent.name").as_deref(),
            Some("daily_brief")
        );
        assert_eq!(
            text(&e.attributes, "gen_ai.provider.name").as_deref(),
            Some("ollama")
        );
        assert_eq!(
            text(&e.attributes, "gen_ai.request.model").as_deref(),
            Some("llama3.2")
        );
        if e.trace_id == hex(CLIENT_TRACE) {
            // The client's traceparent makes the execution part of the client's trace.
            assert_eq!(e.parent_span_id, hex(CLIENT_SPAN));
            traced += 1;
        } else {
            assert!(e.parent_span_id.is_empty(), "a root span: {e:?}");
        }
        let children: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == e.span_id)
            .collect();
        for c in &children {
            assert_eq!(c.trace_id, e.trace_id, "{c:?}");
        }
        let tool = children
            .iter()
            .find(|c| c.name == "execute_tool system_status")
            .unwrap_or_else(|| panic!("no tool span under {e:?}"));
        assert_eq!(tool.kind, span::SpanKind::Internal as i32);
        assert_eq!(
            text(&tool.attributes, "gen_ai.tool.name").as_deref(),
            Some("system_status")
        );
        let calls: Vec<&&Span> = children
            .iter()
            .filter(|c| c.name == "chat llama3.2")
            .collect();
        assert_eq!(calls.len(), 1, "one LLM call under {e:?}");
        let call = calls[0];
        assert_eq!(call.kind, span::SpanKind::Client as i32);
        assert_eq!(
            text(&call.attributes, "gen_ai.operation.name").as_deref(),
            Some("chat")
        );
        assert_eq!(
            text(&call.attributes, "gen_ai.provider.name").as_deref(),
            Some("ollama")
        );
        assert_eq!(
            text(&call.attributes, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(int(&call.attributes, "server.port"), Some(llm_port));
        assert!(call.start_time_unix_nano >= e.start_time_unix_nano);
        assert!(call.end_time_unix_nano <= e.end_time_unix_nano);
        let code = |s: &Span| s.status.as_ref().map(|s| s.code).unwrap_or(0);
        match text(&e.attributes, "error.type").as_deref() {
            None => {
                assert_eq!(
                    text(&e.attributes, "gen_ai.response.model").as_deref(),
                    Some("llama3.2")
                );
                assert_eq!(int(&e.attributes, "gen_ai.usage.input_tokens"), Some(11));
                assert_eq!(int(&e.attributes, "gen_ai.usage.output_tokens"), Some(7));
                assert_eq!(int(&call.attributes, "gen_ai.usage.input_tokens"), Some(11));
                assert_eq!(int(&call.attributes, "gen_ai.usage.output_tokens"), Some(7));
                assert_ne!(code(e), status::StatusCode::Error as i32);
            }
            Some(kind) => {
                assert_eq!(kind, "provider_4xx");
                assert_eq!(code(e), status::StatusCode::Error as i32);
                assert_eq!(text(&call.attributes, "error.type").as_deref(), Some("400"));
                assert_eq!(code(call), status::StatusCode::Error as i32);
                failed += 1;
            }
        }
    }
    assert_eq!((traced, failed), (1, 1));

    // No user text, key or key id anywhere: not in an attribute, not in the bytes at all.
    let forbidden = [
        USER_TEXT.to_string(),
        "key-one".to_string(),
        "key-two".to_string(),
        osmen::gateway::key_id(b"key-one"),
        osmen::gateway::key_id(b"key-two"),
    ];
    let mut attrs: Vec<String> = rx.metrics().iter().flat_map(metric_attr_texts).collect();
    for s in &spans {
        attrs.extend(s.attributes.iter().map(|kv| format!("{kv:?}")));
        for ev in &s.events {
            attrs.extend(ev.attributes.iter().map(|kv| format!("{kv:?}")));
        }
    }
    assert!(attrs.len() > 100, "{}", attrs.len());
    // Each key once per span and per data point (the SDK appends what is set twice).
    let unique = |kvs: &[KeyValue], what: &str| {
        let mut keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "a key twice in {what}: {kvs:?}");
    };
    for s in &spans {
        unique(&s.attributes, &s.name);
    }
    for name in [
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.server.time_to_first_token",
        "gen_ai.server.time_per_output_token",
    ] {
        for p in histogram(&last, name).unwrap().1 {
            unique(&p.attributes, name);
        }
    }
    for f in &forbidden {
        assert!(
            !attrs.iter().any(|a| a.contains(f.as_str())),
            "{f} in an attribute"
        );
        for (path, _, body) in rx.got.lock().unwrap().iter() {
            assert!(
                !body.windows(f.len()).any(|w| w == f.as_bytes()),
                "{f} in a {path} export"
            );
        }
    }
}

#[tokio::test]
async fn without_an_otlp_endpoint_nothing_is_installed_and_nothing_is_sent() {
    // Every other OpenTelemetry variable set: only the endpoint turns export on.
    let others = [
        ("OTEL_SERVICE_NAME", "osmen-otel-off"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "50"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ];
    let dir = std::env::temp_dir().join(format!("osmen-otel-off-{}", std::process::id()));
    let build = |extra: &[(&str, &str)]| {
        let mut env: BTreeMap<String, String> = others
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert("OSMEN_API_KEYS".into(), "key-one".into());
        osmen::gateway::Gateway::build(&osmen::gateway::Options {
            assets_dir: root().join("assets"),
            runtime_dir: dir.join("runtime"),
            listen: Some("127.0.0.1:0".into()),
            env,
            ..Default::default()
        })
        .unwrap()
    };
    assert!(build(&[]).otel.is_none());
    assert!(build(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).otel.is_none());
    // The same settings with an endpoint do install it (so the checks above can fail).
    let on = build(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")]);
    assert!(on.otel.is_some());
    tokio::task::spawn_blocking(move || on.otel.unwrap().shutdown())
        .await
        .unwrap();

    // A receiver on OTLP/HTTP's default port, where an exporter without an endpoint would
    // send, while a gateway without the variable answers.
    let default_port = Receiver::bind("127.0.0.1:4318").await.ok();
    let llm = llm_standin::start().await;
    let mut env = others.to_vec();
    env.push(("OLLAMA_URL", &llm.url));
    let gw = start(&env, None).await;
    for i in 0..3 {
        let (s, v) = gw.exec_as("daily_brief", "key-one", &format!("q{i}")).await;
        assert_eq!(s, 200, "{v}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    gw.stop().await;
    match default_port {
        Some(d) => assert_eq!(d.count(), 0, "something was sent to localhost:4318"),
        None => eprintln!("port 4318 is taken here: the default-endpoint check was skipped"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn exports_a_collector_does_not_take_are_counted_as_failed() {
    // A port where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let llm = llm_standin::start().await;
    let endpoint = format!("http://{closed}");
    let gw = start(
        &[
            ("OLLAMA_URL", &llm.url),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
        None,
    )
    .await;
    // The collector being down costs the client nothing.
    let (s, v) = gw.exec_as("daily_brief", "key-one", "q").await;
    assert_eq!(s, 200, "{v}");
    let failed = |m: &str, signal: &str| {
        let series = format!("osmen_otel_exports_total{{signal=\"{signal}\",outcome=\"failed\"}}");
        m.lines()
            .find(|l| l.starts_with(&series))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {series} in {m}"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = gw.get("/metrics", None).await;
        if failed(&m, "metrics") >= 1 && failed(&m, "traces") >= 1 {
            assert!(m.contains("osmen_otel_exports_total{signal=\"metrics\",outcome=\"ok\"} 0"));
            break;
        }
        assert!(Instant::now() < deadline, "no failed exports counted: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}
