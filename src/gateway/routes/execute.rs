//! `POST /api/v1/agents/{name}/execute`: admission, the execution, and what it is counted
//! as (metrics, the trace) and answered with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Caller, Gw, error, json_body};
use crate::gateway::Gateway;
use crate::gateway::accounting::{Accounted, Usage};
use crate::gateway::agents::{Agent, ExecError, Outcome};
use crate::gateway::llm::LlmError;
use crate::gateway::otel::Execution;
use crate::model::agent_error::ErrorKind;

static REQUESTS: AtomicU64 = AtomicU64::new(1);

fn request_id() -> String {
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("req-{t:x}-{n:06}")
}

/// The trace context a client sent (`traceparent`), read only while spans are exported
/// (None otherwise: the headers are not looked at).
pub(super) struct TraceParent(Option<opentelemetry::Context>);

impl axum::extract::FromRequestParts<Arc<Gateway>> for TraceParent {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        gw: &Arc<Gateway>,
    ) -> Result<Self, Self::Rejection> {
        Ok(TraceParent(
            gw.otel
                .as_deref()
                .filter(|o| o.traces())
                .map(|o| o.parent(&parts.headers)),
        ))
    }
}

pub(super) async fn execute(
    State(gw): Gw,
    Path(name): Path<String>,
    caller: axum::Extension<Caller>,
    parent: TraceParent,
    arrival: Option<axum::Extension<crate::gateway::connections::Arrival>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // From the first byte of the request (the router alone, without the gateway's
    // connections, starts the clock here).
    let arrived = arrival.map(|a| a.0.0).unwrap_or_else(Instant::now);
    let Some(agent) = gw.agents.get(&name) else {
        let known: Vec<&String> = gw.agents.keys().collect();
        return (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": {"code": 404, "message": format!("unknown agent {name:?}")},
                "agents": known,
            })),
        )
            .into_response();
    };
    // Every request counts in the window; failures (and their kind) are counted where
    // they are known, below.
    let count = |status: &str| {
        gw.metrics.agent(&name, |s| {
            *s.requests.entry(status.to_string()).or_default() += 1;
            if status != "rejected" && status != "error" {
                s.outcomes.record(Instant::now(), false);
            }
        })
    };
    let v = match json_body(body, gw.body_limit) {
        Ok(v) => v,
        Err(r) => {
            count("invalid");
            return r;
        }
    };
    let Some(input) = v.get("input").and_then(Value::as_str) else {
        count("invalid");
        return error(
            StatusCode::BAD_REQUEST,
            "missing \"input\": send {\"input\": \"...\"} (a string), with an optional \"context\" object",
        );
    };
    let context = v.get("context").filter(|c| !c.is_null());
    if context.is_some_and(|c| !c.is_object()) {
        count("invalid");
        return error(StatusCode::BAD_REQUEST, "\"context\" must be a JSON object");
    }
    // One span per execution, from the request's arrival (so the wait is in it).
    let trace = parent.0.and_then(|cx| {
        gw.otel
            .as_deref()?
            .execution(&cx, &agent.identity(), arrived)
    });
    gw.metrics
        .agent(&name, |s| s.queued = agent.queued() as i64 + 1);
    let permit = match agent.admit(arrived).await {
        Ok(p) => p,
        Err(wait) => return overloaded(&gw, &name, agent, wait, arrived, trace, count),
    };
    let started = Instant::now();
    let waited = started.duration_since(arrived);
    gw.metrics.agent(&name, |s| {
        s.queued = agent.queued() as i64;
        s.inflight = agent.inflight() as i64;
    });
    let usage = Arc::new(Usage::default());
    let live = crate::gateway::agents::LiveGuard::new(agent, usage.clone());
    let result = Accounted::new(
        agent.execute(&gw, &caller.0.0, input, context, trace.as_ref()),
        usage.clone(),
    )
    .await;
    drop(permit);
    drop(live);
    let held = started.elapsed();
    // The wait estimate is a provider's pace: a cache hit or a failure that never
    // reached a provider (none configured, circuit open) says nothing of it.
    let called_provider = match &result {
        Ok(out) => !out.completion.cached,
        Err(crate::gateway::agents::ExecError::NoProvider) => false,
        Err(crate::gateway::agents::ExecError::Provider(e)) => !e.is_circuit_open(),
    };
    if called_provider {
        agent.served(held);
    }
    // As the client feels it: from the request's arrival, its wait for a slot included.
    let elapsed = arrived.elapsed();
    let cpu = usage.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let peak = usage.peak_bytes.load(Ordering::Relaxed);
    gw.metrics.agent(&name, |s| {
        s.observe(Instant::now(), elapsed);
        s.queue_wait.observe(waited);
        s.execution.observe(held);
        s.saw_user(&caller.0.0, Instant::now());
        s.cpu_seconds += cpu;
        s.memory_peak = s.memory_peak.max(peak);
        s.inflight = agent.inflight() as i64;
    });
    report(trace, &result, waited);
    match result {
        Ok(out) => answered(&gw, &name, &out, elapsed, count),
        Err(e) => failed(&gw, &name, &e, count),
    }
}

/// The answer when the agent cannot take the request within its deadline (429): counted
/// as rejected and as an overload failure, with the wait ahead in `Retry-After`.
fn overloaded(
    gw: &Gateway,
    name: &str,
    agent: &Agent,
    wait: Duration,
    arrived: Instant,
    trace: Option<Execution>,
    count: impl Fn(&str),
) -> Response {
    count("rejected");
    if let Some(t) = trace {
        t.failed(None, ErrorKind::Overload, Some(arrived.elapsed()));
    }
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let msg = format!(
        "agent {name} cannot answer this request within its deadline of {}s ({} \
         running, {} waiting, about {secs}s of wait ahead): retry after {secs}s",
        agent.deadline.as_secs(),
        agent.inflight(),
        agent.queued()
    );
    gw.metrics.agent(name, |s| {
        s.failed(Instant::now(), unix_now(), ErrorKind::Overload, msg.clone());
        s.queued = agent.queued() as i64;
        s.queue_wait.observe(arrived.elapsed());
    });
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, msg);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Ends the execution's span with its answer or its failure.
fn report(trace: Option<Execution>, result: &Result<Outcome, ExecError>, waited: Duration) {
    if let Some(t) = trace {
        match result {
            Ok(out) => t.answered(&out.provider, &out.completion, waited),
            Err(e) => {
                let provider = match e {
                    ExecError::Provider(p) => Some(p.provider()),
                    ExecError::NoProvider => None,
                };
                t.failed(provider, exec_error_kind(e), Some(waited));
            }
        }
    }
}

/// The answer of a successful execution, counted with its tokens, cost and speed.
fn answered(
    gw: &Gateway,
    name: &str,
    out: &Outcome,
    elapsed: Duration,
    count: impl Fn(&str),
) -> Response {
    let c = &out.completion;
    let cost = match (gw.price(&c.model), c.cached) {
        (Some(p), false) => {
            (c.prompt_tokens as f64 * p.input + c.completion_tokens as f64 * p.output) / 1000.0
        }
        _ => 0.0,
    };
    let answer = crate::gateway::metrics::Answer {
        provider: &out.provider,
        model: &c.model,
        prompt_tokens: c.prompt_tokens,
        completion_tokens: c.completion_tokens,
        cost,
        cached: c.cached,
        timing: c.timing,
        elapsed,
    };
    count("success");
    gw.metrics
        .agent(name, |s| s.answered(Instant::now(), unix_now(), &answer));
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    Json(ExecuteAnswer {
        agent: name,
        output: &c.text,
        provider: &out.provider,
        model: &c.model,
        cached: c.cached,
        usage: UsageAnswer {
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cost_dollars: cost,
        },
        timing: TimingAnswer {
            ttft_ms: ms(c.timing.ttft),
            tokens_per_second: c.timing.tokens_per_s,
            load_ms: ms(c.timing.load),
        },
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        request_id: request_id(),
        facts: &out.facts.value,
    })
    .into_response()
}

/// The answer of a failed execution, counted with its kind and its cleaned message.
fn failed(gw: &Gateway, name: &str, e: &ExecError, count: impl Fn(&str)) -> Response {
    let (status, msg) = exec_error_status(e);
    let msg = gw.clean_error(&msg);
    count("error");
    gw.metrics.agent(name, |s| {
        s.failed(Instant::now(), unix_now(), exec_error_kind(e), msg.clone())
    });
    error(status, msg)
}

/// An execute answer, written straight from the execution's values (the facts are
/// shared between requests and not copied).
#[derive(serde::Serialize)]
struct ExecuteAnswer<'a> {
    agent: &'a str,
    output: &'a str,
    provider: &'a str,
    model: &'a str,
    cached: bool,
    usage: UsageAnswer,
    timing: TimingAnswer,
    duration_ms: f64,
    request_id: String,
    facts: &'a Value,
}

#[derive(serde::Serialize)]
struct UsageAnswer {
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_dollars: f64,
}

#[derive(serde::Serialize)]
struct TimingAnswer {
    ttft_ms: Option<f64>,
    tokens_per_second: Option<f64>,
    load_ms: Option<f64>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The kind a failed execution is counted and reported as.
pub fn exec_error_kind(e: &ExecError) -> ErrorKind {
    match e {
        ExecError::NoProvider => ErrorKind::NoProvider,
        ExecError::Provider(e) => e.kind(),
    }
}

/// The answer to a failed execution: 503 without a provider, 504 on a timeout, 502 when
/// the provider failed otherwise; the message says which and what to do.
pub(super) fn exec_error_status(e: &ExecError) -> (StatusCode, String) {
    match e {
        ExecError::NoProvider => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no LLM provider is configured for this agent: set OLLAMA_URL, \
             OPENAI_API_KEY or ANTHROPIC_API_KEY (or a [providers.*] section in \
             config/gateway.toml)"
                .to_string(),
        ),
        ExecError::Provider(e @ LlmError::Timeout { .. }) => {
            (StatusCode::GATEWAY_TIMEOUT, e.to_string())
        }
        ExecError::Provider(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
