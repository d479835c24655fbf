//! HTTP routes, authentication and the error answers (each a JSON body that says what
//! was wrong and what to do).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Gateway;
use crate::model::agent_error::{error_percent, failing};
use crate::model::metric::{PROVIDER_CIRCUIT_STATE, PROVIDER_CONSECUTIVE_FAILURES};

mod execute;
use execute::execute;

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
        Err(StoreError::Qdrant(e)) => {
            error(StatusCode::BAD_GATEWAY, gw.clean_error(&e.to_string()))
        }
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
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
    let in_flight: Vec<(&str, u64)> = gw
        .providers
        .iter()
        .map(|p| (p.name(), p.in_flight()))
        .collect();
    text.push_str(&super::metrics::render_provider_in_flight(&in_flight));
    text.push_str(&gw.connections.stats.render());
    if let Some(o) = &gw.otel {
        text.push_str(&o.render_prometheus());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Each LLM provider's circuit breaker: its state and its run of failed calls.
fn provider_metrics(providers: &[Arc<super::llm::Provider>]) -> String {
    use std::fmt::Write;
    let mut o = format!(
        "# HELP {PROVIDER_CIRCUIT_STATE} Circuit breaker of an LLM provider: 0 closed, 1 \
         half-open (one trial call), 2 open (calls fail at once).\n\
         # TYPE {PROVIDER_CIRCUIT_STATE} gauge\n",
    );
    let states: Vec<_> = providers.iter().map(|p| (p.name(), p.breaker())).collect();
    for (name, b) in &states {
        let _ = writeln!(
            o,
            "{PROVIDER_CIRCUIT_STATE}{{provider=\"{name}\"}} {}",
            b.code()
        );
    }
    let _ = write!(
        o,
        "# HELP {PROVIDER_CONSECUTIVE_FAILURES} Failed calls in a row (outages: \
         unreachable, timeout, 429, 5xx, unreadable answers).\n\
         # TYPE {PROVIDER_CONSECUTIVE_FAILURES} gauge\n",
    );
    for (p, (name, b)) in providers.iter().zip(&states) {
        let n = match b {
            super::llm::Breaker::Closed { failures } => *failures,
            _ => p.cfg.breaker_failures,
        };
        let _ = writeln!(
            o,
            "{PROVIDER_CONSECUTIVE_FAILURES}{{provider=\"{name}\"}} {n}"
        );
    }
    o
}

#[cfg(test)]
mod tests;
