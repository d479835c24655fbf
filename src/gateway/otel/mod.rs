//! OpenTelemetry export, opt-in: with `OTEL_EXPORTER_OTLP_ENDPOINT` (or a signal's own
//! endpoint) set, the gateway sends the GenAI semantic conventions over OTLP http/protobuf:
//! the client histograms `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`,
//! the model-speed histograms `gen_ai.server.time_to_first_token` and
//! `gen_ai.server.time_per_output_token`, and a trace per execution (`invoke_agent {agent}`,
//! with `execute_tool {tool}` and one `chat {model}` span per provider call as children).
//!
//! Without the variable [`Otel::from_env`] answers None: no provider, no exporter thread, and
//! the request path only tests an `Option`. Attributes name agents, providers, models, servers
//! and error kinds; never a user's text, an API key or its key id.
//!
//! The SDK exports from its own threads (one for metrics, one for spans) and blocks there on
//! the export, so the HTTP client cannot be the gateway's async one as is. [`Transport`] runs
//! the project's reqwest on a small current-thread runtime owned by that exporter thread:
//! no second reqwest, no gRPC stack, and an export never waits for (or blocks) the gateway's
//! runtime, whichever runtime the gateway runs on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span as SdkSpan};

use super::llm::{Completion, Kind, LlmError, Provider};
use crate::model::agent_error::ErrorKind;
use crate::model::secret::mask_url_credentials;

mod config;
pub use config::{
    Config, DEFAULT_EXPORT_TIMEOUT, DEFAULT_METRIC_INTERVAL, DEFAULT_SERVICE_NAME,
    DEFAULT_SPAN_DELAY, OtelConfigError, Signal,
};

// Attribute keys of the GenAI and general semantic conventions.
const OPERATION: &str = "gen_ai.operation.name";
const PROVIDER: &str = "gen_ai.provider.name";
const REQUEST_MODEL: &str = "gen_ai.request.model";
const RESPONSE_MODEL: &str = "gen_ai.response.model";
const TOKEN_TYPE: &str = "gen_ai.token.type";
const INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
const OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
const AGENT_NAME: &str = "gen_ai.agent.name";
const AGENT_DESCRIPTION: &str = "gen_ai.agent.description";
const TOOL_NAME: &str = "gen_ai.tool.name";
const TOOL_TYPE: &str = "gen_ai.tool.type";
const ERROR_TYPE: &str = "error.type";
const SERVER_ADDRESS: &str = "server.address";
const SERVER_PORT: &str = "server.port";
// osmen's own, in its namespace as the conventions ask.
const CACHE_HIT: &str = "osmen.cache.hit";
const QUEUE_WAIT: &str = "osmen.queue.wait_seconds";

/// The bucket boundaries the GenAI metric conventions say the histograms SHOULD use.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
pub const TTFT_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
pub const TPOT_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// The most of an OTLP answer read (a collector answers with a small status message).
const ANSWER_LIMIT: usize = 1 << 20;

/// OTLP requests of one signal: answered with 2xx, and failed (unreachable, timed out,
/// or answered otherwise). The SDK's own diagnostics are compiled out; these say in
/// `/metrics` whether the collector takes what the gateway sends.
#[derive(Debug, Default)]
pub struct Exports {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// Sends OTLP requests for one exporter with the project's reqwest client, on a
/// current-thread runtime of its own driven by the exporter's thread (see the module doc).
struct Transport {
    client: reqwest::Client,
    rt: Option<tokio::runtime::Runtime>,
    exports: Arc<Exports>,
}

/// Why the exporters the environment asks for cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error(transparent)]
    Config(#[from] OtelConfigError),
    #[error("cannot start the OpenTelemetry exporter's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot set up the OTLP {signal} exporter: {source}")]
    Exporter {
        signal: &'static str,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

impl Transport {
    fn new(timeout: Duration, exports: Arc<Exports>) -> Result<Transport, OtelError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(OtelError::Runtime)?;
        Ok(Transport {
            client: crate::http::client(|b| b.timeout(timeout)),
            rt: Some(rt),
            exports,
        })
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("osmen OTLP transport")
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // The last exporter reference may go on any thread, a runtime's included, where a
        // runtime may not be dropped by blocking.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Transport {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<bytes::Bytes>,
    ) -> Result<opentelemetry_http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // The SDK calls this from its exporter threads; on a runtime's thread block_on
        // would panic, so say what happened instead.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("the OTLP transport was called on an async runtime's thread".into());
        }
        let rt = self.rt.as_ref().ok_or("the OTLP transport is shut down")?;
        let request = reqwest::Request::try_from(request)?;
        let answer = rt.block_on(async {
            let mut r = self.client.execute(request).await?;
            let status = r.status();
            let headers = std::mem::take(r.headers_mut());
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = r.chunk().await? {
                if body.len() + chunk.len() > ANSWER_LIMIT {
                    return Err("the collector's answer is larger than 1 MiB".into());
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = opentelemetry_http::Response::builder()
                .status(status)
                .body(body.freeze())?;
            *out.headers_mut() = headers;
            Ok(out)
        });
        let ok = answer.as_ref().is_ok_and(|r| r.status().is_success());
        let counter = if ok {
            &self.exports.ok
        } else {
            &self.exports.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }
}

/// The four GenAI histograms.
struct Instruments {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    ttft: Histogram<f64>,
    tpot: Histogram<f64>,
}

/// The installed providers and instruments, shared by the gateway's request handlers.
pub struct Otel {
    config: Config,
    meters: Option<SdkMeterProvider>,
    tracers: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
    instruments: Option<Instruments>,
    /// `server.address` and `server.port` per provider kind (from its base URL).
    servers: HashMap<Kind, (String, i64)>,
    trace_exports: Arc<Exports>,
    metric_exports: Arc<Exports>,
}

fn headers_map(s: &Signal) -> HashMap<String, String> {
    s.headers.iter().cloned().collect()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("osmen")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// `error.type` of a failed provider call: the provider's status code when it answered
/// one (as the conventions suggest), else the gateway's error kind.
pub fn call_error_type(e: &LlmError) -> String {
    match e {
        LlmError::Status { status, .. } => status.to_string(),
        LlmError::Timeout { .. } => "timeout".to_string(),
        other => other.kind().label().to_string(),
    }
}

impl Otel {
    /// Installs the exporters the environment asks for; None without an OTLP endpoint.
    pub fn from_env(
        env: &BTreeMap<String, String>,
        providers: &[Arc<Provider>],
    ) -> Result<Option<Otel>, OtelError> {
        match Config::from_env(env)? {
            Some(c) => Otel::new(c, providers).map(Some),
            None => Ok(None),
        }
    }

    pub fn new(config: Config, providers: &[Arc<Provider>]) -> Result<Otel, OtelError> {
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let trace_exports = Arc::new(Exports::default());
        let metric_exports = Arc::new(Exports::default());
        let mut tracers = None;
        if let Some(s) = &config.traces {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(Transport::new(s.timeout, trace_exports.clone())?)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(s.url.clone())
                .with_timeout(s.timeout)
                .with_headers(headers_map(s))
                .build()
                .map_err(|source| OtelError::Exporter {
                    signal: "trace",
                    source,
                })?;
            let batch = BatchSpanProcessor::builder(exporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_scheduled_delay(config.span_delay)
                        .build(),
                )
                .build();
            tracers = Some(
                SdkTracerProvider::builder()
                    .with_span_processor(batch)
                    .with_resource(resource.clone())
                    .build(),
            );
        }
        let mut meters = None;
        if let Some(s) = &config.metrics {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(Transport::new(s.timeout, metric_exports.clone())?)
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(s.url.clone())
                .with_timeout(s.timeout)
                .with_headers(headers_map(s))
                .with_temporality(config.temporality)
                .build()
                .map_err(|source| OtelError::Exporter {
                    signal: "metric",
                    source,
                })?;
            let reader = PeriodicReader::builder(exporter)
                .with_interval(config.metric_interval)
                .build();
            meters = Some(
                SdkMeterProvider::builder()
                    .with_reader(reader)
                    .with_resource(resource)
                    .build(),
            );
        }
        let instruments = meters.as_ref().map(|m| {
            let meter = m.meter_with_scope(scope());
            Instruments {
                duration: meter
                    .f64_histogram("gen_ai.client.operation.duration")
                    .with_unit("s")
                    .with_description("GenAI operation duration.")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                tokens: meter
                    .u64_histogram("gen_ai.client.token.usage")
                    .with_unit("{token}")
                    .with_description("Number of input and output tokens used.")
                    .with_boundaries(TOKEN_BUCKETS.to_vec())
                    .build(),
                ttft: meter
                    .f64_histogram("gen_ai.server.time_to_first_token")
                    .with_unit("s")
                    .with_description("Time to generate first token for successful responses.")
                    .with_boundaries(TTFT_BUCKETS.to_vec())
                    .build(),
                tpot: meter
                    .f64_histogram("gen_ai.server.time_per_output_token")
                    .with_unit("s")
                    .with_description(
                        "Time per output token generated after the first token for \
                         successful responses.",
                    )
                    .with_boundaries(TPOT_BUCKETS.to_vec())
                    .build(),
            }
        });
        let tracer = tracers.as_ref().map(|t| t.tracer_with_scope(scope()));
        let servers = providers
            .iter()
            .filter_map(|p| {
                let u = reqwest::Url::parse(&p.cfg.base_url).ok()?;
                let host = u.host_str()?.trim_matches(['[', ']']).to_string();
                Some((p.cfg.kind, (host, i64::from(u.port_or_known_default()?))))
            })
            .collect();
        Ok(Otel {
            config,
            meters,
            tracers,
            tracer,
            instruments,
            servers,
            trace_exports,
            metric_exports,
        })
    }

    /// `osmen_otel_exports_total{signal,outcome}` for `/metrics`, per exported signal.
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut o = String::from(
            "# HELP osmen_otel_exports_total OTLP export requests to the collector: ok (2xx) \
             or failed (unreachable, timed out, or another answer).\n\
             # TYPE osmen_otel_exports_total counter\n",
        );
        for (signal, on, e) in [
            ("traces", self.config.traces.is_some(), &self.trace_exports),
            (
                "metrics",
                self.config.metrics.is_some(),
                &self.metric_exports,
            ),
        ] {
            if !on {
                continue;
            }
            for (outcome, n) in [("ok", &e.ok), ("failed", &e.failed)] {
                let _ = writeln!(
                    o,
                    "osmen_otel_exports_total{{signal=\"{signal}\",outcome=\"{outcome}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        o
    }

    /// One line for the operator: where each signal goes (URL credentials masked).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.config.traces {
            parts.push(format!("traces to {}", mask_url_credentials(&s.url)));
        }
        if let Some(s) = &self.config.metrics {
            parts.push(format!(
                "metrics to {} every {}s",
                mask_url_credentials(&s.url),
                self.config.metric_interval.as_secs_f64()
            ));
        }
        format!(
            "OpenTelemetry: {} (service.name {})",
            parts.join(", "),
            self.config.service_name
        )
    }

    /// Whether spans are exported (an incoming `traceparent` is worth reading).
    pub fn traces(&self) -> bool {
        self.tracer.is_some()
    }

    /// The trace context a client sent in `traceparent` (W3C Trace Context), or an empty
    /// context: the execution span then starts a trace of its own.
    pub fn parent(&self, headers: &axum::http::HeaderMap) -> Context {
        TraceContextPropagator::new().extract_with_context(
            &Context::new(),
            &opentelemetry_http::HeaderExtractor(headers),
        )
    }

    /// Starts the span of one execution of `agent`, dated from the request's arrival.
    pub fn execution(
        &self,
        parent: &Context,
        agent: &AgentIdentity<'_>,
        arrived: Instant,
    ) -> Option<Execution> {
        let tracer = self.tracer.as_ref()?;
        let start = SystemTime::now()
            .checked_sub(arrived.elapsed())
            .unwrap_or_else(SystemTime::now);
        let mut attrs = vec![
            KeyValue::new(OPERATION, "invoke_agent"),
            KeyValue::new(AGENT_NAME, agent.name.to_string()),
        ];
        if !agent.description.is_empty() {
            attrs.push(KeyValue::new(
                AGENT_DESCRIPTION,
                agent.description.to_string(),
            ));
        }
        let span = tracer
            .span_builder(format!("invoke_agent {}", agent.name))
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(tracer, parent);
        Some(Execution {
            cx: parent.with_span(span),
            // Which provider serves is known at the end (the chain falls back on outages),
            // and the SDK appends attributes rather than replacing them: both are set once.
            models: agent.models.clone(),
        })
    }

    /// A span for the agent's context tool (`execute_tool {tool}`), a child of the
    /// execution; None for an agent without a tool.
    pub fn tool(&self, parent: &Execution, tool: &str) -> Option<ToolSpan> {
        let tracer = self.tracer.as_ref()?;
        let kind = match tool {
            "" | "none" => return None,
            // Searches the memory store; the others read the host and the stack.
            "memory_search" => "datastore",
            _ => "extension",
        };
        Some(ToolSpan(
            tracer
                .span_builder(format!("execute_tool {tool}"))
                .with_kind(SpanKind::Internal)
                .with_attributes([
                    KeyValue::new(OPERATION, "execute_tool"),
                    KeyValue::new(TOOL_NAME, tool.to_string()),
                    KeyValue::new(TOOL_TYPE, kind),
                ])
                .start_with_context(tracer, &parent.cx),
        ))
    }

    /// Starts timing one provider call (`chat {model}`, a CLIENT span under the execution).
    pub fn call(&self, parent: Option<&Execution>, provider: &Provider, model: &str) -> Call<'_> {
        let mut attrs = vec![
            KeyValue::new(OPERATION, "chat"),
            KeyValue::new(PROVIDER, provider.name()),
            KeyValue::new(REQUEST_MODEL, model.to_string()),
        ];
        if let Some((host, port)) = self.servers.get(&provider.cfg.kind) {
            attrs.push(KeyValue::new(SERVER_ADDRESS, host.clone()));
            attrs.push(KeyValue::new(SERVER_PORT, *port));
        }
        let span = match (&self.tracer, parent) {
            (Some(t), Some(p)) => Some(
                t.span_builder(format!("chat {model}"))
                    .with_kind(SpanKind::Client)
                    .with_attributes(attrs.clone())
                    .start_with_context(t, &p.cx),
            ),
            _ => None,
        };
        Call {
            otel: self,
            span,
            attrs,
            started: Instant::now(),
        }
    }

    /// Exports what is left and stops the exporter threads. Blocks up to the exporters'
    /// timeouts: call it off the async runtime (`spawn_blocking`).
    pub fn shutdown(&self) {
        // Errors here mean the collector did not take the last batch; nothing to retry.
        if let Some(t) = &self.tracers {
            let _ = t.shutdown();
        }
        if let Some(m) = &self.meters {
            let _ = m.shutdown();
        }
    }

    /// How long a shutdown may take at most: the longest export timeout, and a little.
    pub fn shutdown_limit(&self) -> Duration {
        let t = |s: &Option<Signal>| s.as_ref().map(|s| s.timeout).unwrap_or_default();
        t(&self.config.traces).max(t(&self.config.metrics)) + Duration::from_secs(1)
    }
}

/// What an execution's span says of its agent: its name and description, and the
/// (provider, model) of each link of its chain.
pub struct AgentIdentity<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub models: Vec<(&'static str, String)>,
}

/// The trace of one execution: its span, as the parent context of the calls within it.
pub struct Execution {
    cx: Context,
    /// (provider, model requested from it) for the agent's chain.
    models: Vec<(&'static str, String)>,
}

impl Execution {
    fn provider(&self, span: &opentelemetry::trace::SpanRef<'_>, provider: &str) {
        if let Some((name, model)) = self.models.iter().find(|(p, _)| *p == provider) {
            span.set_attribute(KeyValue::new(PROVIDER, *name));
            span.set_attribute(KeyValue::new(REQUEST_MODEL, model.clone()));
        }
    }

    /// Ends the span of an execution that produced an answer: `c`, from `provider`.
    pub fn answered(self, provider: &str, c: &Completion, waited: Duration) {
        let span = self.cx.span();
        self.provider(&span, provider);
        span.set_attribute(KeyValue::new(QUEUE_WAIT, waited.as_secs_f64()));
        span.set_attribute(KeyValue::new(RESPONSE_MODEL, c.model.clone()));
        span.set_attribute(KeyValue::new(CACHE_HIT, c.cached));
        if !c.cached {
            span.set_attribute(KeyValue::new(INPUT_TOKENS, c.prompt_tokens as i64));
            span.set_attribute(KeyValue::new(OUTPUT_TOKENS, c.completion_tokens as i64));
        }
        span.end();
    }

    /// Ends the span of an execution that failed: the provider that failed last (None
    /// when none was asked), the kind, and how long it waited for a slot.
    pub fn failed(self, provider: Option<&str>, kind: ErrorKind, waited: Option<Duration>) {
        let span = self.cx.span();
        if let Some(p) = provider {
            self.provider(&span, p);
        }
        if let Some(w) = waited {
            span.set_attribute(KeyValue::new(QUEUE_WAIT, w.as_secs_f64()));
        }
        span.set_attribute(KeyValue::new(ERROR_TYPE, kind.label()));
        // The kind only: a provider's message may quote the prompt.
        span.set_status(Status::error(kind.describe()));
        span.end();
    }
}

/// The span of a tool gathering an execution's facts.
pub struct ToolSpan(SdkSpan);

impl ToolSpan {
    pub fn end(mut self) {
        self.0.end();
    }
}

/// One provider call being timed; [`Call::end`] records the histograms and ends its span.
pub struct Call<'a> {
    otel: &'a Otel,
    span: Option<SdkSpan>,
    attrs: Vec<KeyValue>,
    started: Instant,
}

impl Call<'_> {
    pub fn end(self, r: &Result<Completion, LlmError>) {
        let secs = self.started.elapsed().as_secs_f64();
        let mut attrs = self.attrs;
        let mut span = self.span;
        match r {
            Ok(c) => {
                attrs.push(KeyValue::new(RESPONSE_MODEL, c.model.clone()));
                if let Some(m) = &self.otel.instruments {
                    m.duration.record(secs, &attrs);
                    // A provider that reports no usage reports 0: not a measurement.
                    for (kind, n) in [("input", c.prompt_tokens), ("output", c.completion_tokens)] {
                        if n > 0 {
                            attrs.push(KeyValue::new(TOKEN_TYPE, kind));
                            m.tokens.record(n, &attrs);
                            attrs.pop();
                        }
                    }
                    if let Some(t) = c.timing.ttft {
                        m.ttft.record(t.as_secs_f64(), &attrs);
                    }
                    if let Some(tps) = c.timing.tokens_per_s.filter(|t| t.is_finite() && *t > 0.0) {
                        m.tpot.record(1.0 / tps, &attrs);
                    }
                }
                if let Some(s) = &mut span {
                    s.set_attribute(KeyValue::new(RESPONSE_MODEL, c.model.clone()));
                    s.set_attribute(KeyValue::new(INPUT_TOKENS, c.prompt_tokens as i64));
                    s.set_attribute(KeyValue::new(OUTPUT_TOKENS, c.completion_tokens as i64));
                }
            }
            Err(e) => {
                let error_type = call_error_type(e);
                attrs.push(KeyValue::new(ERROR_TYPE, error_type.clone()));
                if let Some(m) = &self.otel.instruments {
                    m.duration.record(secs, &attrs);
                }
                if let Some(s) = &mut span {
                    s.set_attribute(KeyValue::new(ERROR_TYPE, error_type));
                    s.set_status(Status::error(e.kind().describe()));
                }
            }
        }
        if let Some(mut s) = span {
            s.end();
        }
    }
}

#[cfg(test)]
mod tests;
