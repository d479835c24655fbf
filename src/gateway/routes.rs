//! HTTP routes, authentication and the error answers (each a JSON body that says what
//! was wrong and what to do).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Gateway;
use super::accounting::{Accounted, Usage};
use super::agents::ExecError;
use super::llm::LlmError;
use crate::model::agent_error::{ErrorKind, error_percent, failing};

type Gw = State<Arc<Gateway>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message.into()}})),
    )
        .into_response()
}

/// The key id of the caller, put there by the auth layer.
#[derive(Clone)]
struct Caller(String);

async fn auth(State(gw): Gw, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get("x-api-key")
        .map(|v| v.as_bytes().to_vec());
    let Some(presented) = presented else {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing X-API-Key header: send one of the gateway's keys",
        );
    };
    match gw.authorize(&presented) {
        Some(id) => {
            if let Some(l) = &gw.limiter
                && let Err(wait) = l.take(&id, Instant::now())
            {
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "this API key made more than {} requests/s: retry after {secs}s",
                        l.rate()
                    ),
                );
                if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
                }
                return r;
            }
            gw.metrics.saw_user(&id, Instant::now());
            gw.saw_client();
            req.extensions_mut().insert(Caller(id));
            next.run(req).await
        }
        None => error(StatusCode::UNAUTHORIZED, "invalid API key"),
    }
}

/// Counts every answer by its status code (`osmen_http_responses_total`).
async fn count_response(State(gw): Gw, req: axum::extract::Request, next: Next) -> Response {
    let r = next.run(req).await;
    gw.metrics.answered_http(r.status().as_u16());
    r
}

pub fn router(gw: Arc<Gateway>) -> Router {
    let limit = gw.body_limit;
    let api = Router::new()
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/status", get(status))
        .route("/api/v1/agents/{agent}/execute", post(execute))
        .route("/api/v1/memory", post(memory_store))
        .route("/api/v1/memory/search", post(memory_search))
        .route("/api/v1/workflows/{name}/trigger", post(trigger))
        .layer(middleware::from_fn_with_state(gw.clone(), auth));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route; see /api/v1/agents") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route: agents are executed with POST, status, \
                 health and metrics read with GET",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(gw.clone(), count_response))
        .with_state(gw)
}

/// Reads a JSON object body, turning every failure into a 400/413 that says what is wrong.
#[allow(clippy::result_large_err)]
fn json_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, Response> {
    let bytes = body.map_err(|e| {
        if let Some(t) = super::connections::BodyTimeout::find(&e) {
            error(StatusCode::REQUEST_TIMEOUT, t.to_string())
        } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {} KiB", limit / 1024),
            )
        } else {
            error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    if !v.is_object() {
        return Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object"));
    }
    Ok(v)
}

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
struct TraceParent(Option<opentelemetry::Context>);

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

async fn execute(
    State(gw): Gw,
    Path(name): Path<String>,
    caller: axum::Extension<Caller>,
    parent: TraceParent,
    arrival: Option<axum::Extension<super::connections::Arrival>>,
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
    let trace = parent
        .0
        .and_then(|cx| gw.otel.as_deref()?.execution(&cx, agent, arrived));
    gw.metrics
        .agent(&name, |s| s.queued = agent.queued() as i64 + 1);
    let permit = match agent.admit(arrived).await {
        Ok(p) => p,
        Err(wait) => {
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
            gw.metrics.agent(&name, |s| {
                s.failed(Instant::now(), unix_now(), ErrorKind::Overload, msg.clone());
                s.queued = agent.queued() as i64;
                s.queue_wait.observe(arrived.elapsed());
            });
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, msg);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
    };
    let started = Instant::now();
    let waited = started.duration_since(arrived);
    gw.metrics.agent(&name, |s| {
        s.queued = agent.queued() as i64;
        s.inflight = agent.inflight() as i64;
    });
    let usage = Arc::new(Usage::default());
    let live = super::agents::LiveGuard::new(agent, usage.clone());
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
        Err(super::agents::ExecError::NoProvider) => false,
        Err(super::agents::ExecError::Provider(e)) => !e.is_circuit_open(),
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
    if let Some(t) = trace {
        match &result {
            Ok(out) => t.answered(out, waited),
            Err(e) => {
                let provider = match e {
                    ExecError::Provider(p) => Some(p.provider()),
                    ExecError::NoProvider => None,
                };
                t.failed(provider, exec_error_kind(e), Some(waited));
            }
        }
    }
    match result {
        Ok(out) => {
            let c = &out.completion;
            let cost = match (gw.price(&c.model), c.cached) {
                (Some(p), false) => {
                    (c.prompt_tokens as f64 * p.input + c.completion_tokens as f64 * p.output)
                        / 1000.0
                }
                _ => 0.0,
            };
            let answer = super::metrics::Answer {
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
                .agent(&name, |s| s.answered(Instant::now(), unix_now(), &answer));
            let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
            Json(ExecuteAnswer {
                agent: &name,
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
        Err(e) => {
            let (status, msg) = exec_error_status(&e);
            let msg = gw.clean_error(&msg);
            count("error");
            gw.metrics.agent(&name, |s| {
                s.failed(Instant::now(), unix_now(), exec_error_kind(&e), msg.clone())
            });
            error(status, msg)
        }
    }
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
fn exec_error_status(e: &ExecError) -> (StatusCode, String) {
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

async fn list_agents(State(gw): Gw) -> Response {
    let list: Vec<Value> = gw
        .agents
        .values()
        .map(|a| {
            json!({
                "name": a.name,
                "description": a.description,
                "tool": a.tool,
                "provider": a.provider,
                "providers": a.chain.iter().map(|p| p.name()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({"agents": list})).into_response()
}

/// The span of the failure window, in seconds.
const WINDOW_S: f64 = super::metrics::SLOT.as_secs_f64() * super::metrics::SLOTS as f64;

async fn status(State(gw): Gw) -> Response {
    let now = Instant::now();
    let mut out = BTreeMap::new();
    for (name, a) in &gw.agents {
        let (inflight, queued) = (a.inflight(), a.queued());
        let v = gw.metrics.agent(name, |s| {
            let (q, n) = s.window.quantiles(now, &[0.5, 0.95, 0.99]);
            let (outcomes, errors) = s.outcomes.totals(now);
            let ms = |x: f64| if x.is_nan() { Value::Null } else { json!(x * 1000.0) };
            json!({
                "state": if inflight == 0 { "idle" } else if inflight >= a.concurrency { "saturated" } else { "busy" },
                "inflight": inflight,
                "queued": queued,
                "last_run_seconds_ago": s.last_run.map(|t| now.duration_since(t).as_secs_f64()),
                "last_error": s.last_error.as_ref().map(|e| &e.message),
                "last_error_kind": s.last_error.as_ref().map(|e| e.kind.label()),
                "last_error_at": s.last_error.as_ref().map(|e| e.unix),
                "requests_per_second": s.rate(now),
                "errors_per_second": errors as f64 / WINDOW_S,
                "window_outcomes": outcomes,
                "window_errors": errors,
                "error_percent": error_percent(outcomes as f64, errors as f64),
                "failing": failing(outcomes as f64, errors as f64),
                "window_requests": n,
                "p50_ms": ms(q[0]),
                "p95_ms": ms(q[1]),
                "p99_ms": ms(q[2]),
            })
        });
        out.insert(name.clone(), v);
    }
    Json(json!({"agents": out})).into_response()
}

async fn memory_store(State(gw): Gw, body: Result<Bytes, BytesRejection>) -> Response {
    let v = match json_body(body, gw.body_limit) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(text) = v
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing \"text\": send {\"text\": \"...\"}",
        );
    };
    let tags = v
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    use super::memory::StoreError;
    match gw.memory.store(text, tags).await {
        Ok((n, mode)) => (
            StatusCode::CREATED,
            Json(json!({"id": n.id, "mode": mode.as_str()})),
        )
            .into_response(),
        Err(StoreError::TooLarge(e)) => error(StatusCode::PAYLOAD_TOO_LARGE, e),
        Err(StoreError::Full(e)) => error(StatusCode::INSUFFICIENT_STORAGE, e),
        Err(StoreError::Qdrant(e)) => error(StatusCode::BAD_GATEWAY, gw.clean_error(&e)),
        Err(StoreError::Io(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            gw.clean_error(&format!("cannot store the note: {e}")),
        ),
    }
}

async fn memory_search(State(gw): Gw, body: Result<Bytes, BytesRejection>) -> Response {
    let v = match json_body(body, gw.body_limit) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(q) = v.get("query").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing \"query\": send {\"query\": \"...\", \"top_k\": 5}",
        );
    };
    let k = v
        .get("top_k")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .clamp(1, 100) as usize;
    let (hits, mode, why) = gw.memory.search(q, k).await;
    #[derive(serde::Serialize)]
    struct Answer {
        mode: &'static str,
        fallback_reason: Option<String>,
        results: Vec<super::memory::Hit>,
    }
    let answer = Answer {
        mode: mode.as_str(),
        fallback_reason: why.map(|w| gw.clean_error(&w)),
        results: hits,
    };
    // Up to top_k whole notes: written out off the event loop, like the search.
    match gw
        .memory
        .off_loop(move || serde_json::to_vec(&answer))
        .await
    {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn trigger(
    State(gw): Gw,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(base) = gw.n8n_url.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "workflows are not configured: set N8N_URL (e.g. http://127.0.0.1:5678)",
        );
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return error(
            StatusCode::BAD_REQUEST,
            "workflow names use letters, digits, - and _",
        );
    }
    let payload = match &body {
        Ok(b) if b.is_empty() => json!({}),
        _ => match json_body(body, gw.body_limit) {
            Ok(v) => v,
            Err(r) => return r,
        },
    };
    let url = format!("{}/webhook/{name}", base.trim_end_matches('/'));
    let started = Instant::now();
    match gw.http.post(&url).json(&payload).send().await {
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("n8n at {base} did not answer: {e}"),
        ),
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let response: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let code = if status < 400 {
                StatusCode::OK
            } else if status == 404 {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            (
                code,
                Json(json!({
                    "workflow": name,
                    "n8n_status": status,
                    "duration_ms": started.elapsed().as_secs_f64() * 1000.0,
                    "response": response,
                })),
            )
                .into_response()
        }
    }
}

async fn probe(gw: &Gateway, url: &str) -> String {
    match gw
        .http
        .get(url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => "up".into(),
        Ok(r) => format!("down: answered {}", r.status().as_u16()),
        Err(e) => format!("down: {e}"),
    }
}

async fn dependencies(gw: &Gateway) -> BTreeMap<String, String> {
    let mut deps = BTreeMap::new();
    for p in &gw.providers {
        let state = match p.cfg.kind {
            super::llm::Kind::Ollama => {
                probe(
                    gw,
                    &format!("{}/api/version", p.cfg.base_url.trim_end_matches('/')),
                )
                .await
            }
            _ => "configured (key set)".into(),
        };
        let state = match p.breaker() {
            super::llm::Breaker::Open { last_error, .. } => {
                format!("{state}; circuit open after: {last_error}")
            }
            super::llm::Breaker::HalfOpen { .. } => format!("{state}; circuit half-open"),
            super::llm::Breaker::Closed { .. } => state,
        };
        deps.insert(p.name().to_string(), state);
    }
    if let Some(r) = &gw.redis {
        deps.insert(
            "redis".into(),
            match r.ping().await {
                Ok(()) => "up".into(),
                Err(e) => format!("down: {e}"),
            },
        );
    }
    if let Some(n) = &gw.n8n_url {
        deps.insert(
            "n8n".into(),
            probe(gw, &format!("{}/healthz", n.trim_end_matches('/'))).await,
        );
    }
    // A provider URL may hold a password, and its errors quote the URL.
    for v in deps.values_mut() {
        *v = gw.clean_error(v);
    }
    deps
}

async fn health(State(gw): Gw) -> Response {
    // Liveness: an optional dependency being down is reported, never a 503.
    Json(json!({
        "status": "ok",
        "uptime_seconds": gw.started.elapsed().as_secs_f64(),
        "agents": gw.agents.len(),
        "dependencies": dependencies(&gw).await,
        "memory": gw.memory.usage(),
    }))
    .into_response()
}

async fn ready(State(gw): Gw) -> Response {
    let deps = dependencies(&gw).await;
    // A provider can serve when it answers (or has its key) and its circuit is not open.
    let open = |p: &super::llm::Provider| matches!(p.breaker(), super::llm::Breaker::Open { .. });
    let usable = gw.providers.iter().any(|p| {
        let state = deps.get(p.name()).map(String::as_str).unwrap_or("");
        !open(p) && (state == "up" || state.starts_with("configured"))
    });
    if usable {
        return Json(json!({"ready": true, "dependencies": deps, "memory": gw.memory.usage()}))
            .into_response();
    }
    let reason = if gw.providers.is_empty() {
        "no LLM provider is configured: set OLLAMA_URL, OPENAI_API_KEY or ANTHROPIC_API_KEY"
            .to_string()
    } else if gw.providers.iter().all(|p| open(p)) {
        let names: Vec<&str> = gw.providers.iter().map(|p| p.name()).collect();
        format!(
            "every LLM provider's circuit is open ({}): they failed in a row; see \
             dependencies for their last errors",
            names.join(", ")
        )
    } else {
        "no LLM provider answers: start Ollama or set OPENAI_API_KEY / ANTHROPIC_API_KEY"
            .to_string()
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "ready": false,
            "reason": reason,
            "dependencies": deps,
            "memory": gw.memory.usage(),
        })),
    )
        .into_response()
}

async fn metrics(State(gw): Gw, _h: HeaderMap) -> Response {
    let live: BTreeMap<String, i64> = gw
        .agents
        .iter()
        .map(|(n, a)| {
            let bytes = a
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|u| u.live_bytes.load(Ordering::Relaxed))
                .sum();
            (n.clone(), bytes)
        })
        .collect();
    let mut text = gw.metrics.render(Instant::now(), &live);
    text.push_str(&provider_metrics(&gw.providers));
    text.push_str(&gw.connections.stats.render());
    if let Some(o) = &gw.otel {
        text.push_str(&o.render_prometheus());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Each LLM provider's circuit breaker: its state and its run of failed calls.
fn provider_metrics(providers: &[Arc<super::llm::Provider>]) -> String {
    use std::fmt::Write;
    let mut o = String::from(
        "# HELP osmen_provider_circuit_state Circuit breaker of an LLM provider: 0 closed, 1 \
         half-open (one trial call), 2 open (calls fail at once).\n\
         # TYPE osmen_provider_circuit_state gauge\n",
    );
    let states: Vec<_> = providers.iter().map(|p| (p.name(), p.breaker())).collect();
    for (name, b) in &states {
        let _ = writeln!(
            o,
            "osmen_provider_circuit_state{{provider=\"{name}\"}} {}",
            b.code()
        );
    }
    o.push_str(
        "# HELP osmen_provider_consecutive_failures Failed calls in a row (outages: \
         unreachable, timeout, 429, 5xx, unreadable answers).\n\
         # TYPE osmen_provider_consecutive_failures gauge\n",
    );
    for (p, (name, b)) in providers.iter().zip(&states) {
        let n = match b {
            super::llm::Breaker::Closed { failures } => *failures,
            _ => p.cfg.breaker_failures,
        };
        let _ = writeln!(
            o,
            "osmen_provider_consecutive_failures{{provider=\"{name}\"}} {n}"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failed_executions_are_classified_by_what_went_wrong() {
        let p = || "ollama".to_string();
        let m = || "x".to_string();
        let cases: Vec<(ExecError, ErrorKind, u16)> = vec![
            (ExecError::NoProvider, ErrorKind::NoProvider, 503),
            (
                ExecError::Provider(LlmError::Unavailable {
                    provider: p(),
                    message: "cannot reach http://127.0.0.1:1: refused".into(),
                }),
                ErrorKind::Unreachable,
                502,
            ),
            (
                ExecError::Provider(LlmError::CircuitOpen {
                    provider: p(),
                    message: m(),
                }),
                ErrorKind::CircuitOpen,
                502,
            ),
            (
                ExecError::Provider(LlmError::Timeout {
                    provider: p(),
                    after: Duration::from_secs(1),
                }),
                ErrorKind::Timeout,
                504,
            ),
            (
                ExecError::Provider(LlmError::Status {
                    provider: p(),
                    status: 404,
                    message: "model not found".into(),
                }),
                ErrorKind::Http4xx,
                502,
            ),
            (
                ExecError::Provider(LlmError::Status {
                    provider: p(),
                    status: 500,
                    message: m(),
                }),
                ErrorKind::Http5xx,
                502,
            ),
            (
                ExecError::Provider(LlmError::BadAnswer {
                    provider: p(),
                    message: "unreadable answer".into(),
                }),
                ErrorKind::BadAnswer,
                502,
            ),
        ];
        for (e, kind, status) in cases {
            assert_eq!(exec_error_kind(&e), kind, "{e:?}");
            let (code, msg) = exec_error_status(&e);
            assert_eq!(code.as_u16(), status, "{e:?}");
            assert!(!msg.is_empty());
        }
        let (_, msg) = exec_error_status(&ExecError::NoProvider);
        assert!(
            msg.contains("OLLAMA_URL") && msg.contains("config/gateway.toml"),
            "{msg}"
        );
    }

    #[test]
    fn outages_move_on_and_4xx_does_not() {
        let status = |s: u16| LlmError::Status {
            provider: "openai".into(),
            status: s,
            message: String::new(),
        };
        assert!(status(429).is_outage() && status(500).is_outage());
        assert!(!status(400).is_outage() && !status(401).is_outage());
        let open = LlmError::CircuitOpen {
            provider: "ollama".into(),
            message: String::new(),
        };
        assert!(open.is_outage());
    }
}
