//! Stand-ins for what cannot run here (Ollama, OpenAI, Anthropic, n8n): one small server
//! speaking their real wire formats, with scripted latency and failures. The completion
//! text echoes the prompt it was given, so tests can see what the gateway sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Script {
    /// Fail this many next requests with `fail_status`.
    pub fail_next: usize,
    pub fail_status: u16,
    pub retry_after: Option<String>,
    pub latency: Duration,
    /// Latency per request, consumed in order (overrides `latency`).
    pub latencies: Vec<Duration>,
    /// Answer embedding requests with 404 (no embedding model pulled).
    pub no_embeddings: bool,
    /// Ollama: fields merged into each `/api/chat` answer (eval counts and durations).
    pub ollama_eval: Option<Value>,
    /// Ollama: the `/api/ps` answer (default: one model partly offloaded).
    pub ps: Option<Value>,
    /// Ollama: model name -> the model file `/api/show`'s modelfile names.
    pub blobs: std::collections::BTreeMap<String, String>,
    /// OpenAI streaming: the pause before the first chunk and between chunks.
    pub first_chunk: Duration,
    pub chunk_gap: Duration,
}

#[derive(Default)]
pub struct Standin {
    pub script: Mutex<Script>,
    /// Qdrant: collection name -> (vector size, distance), and its points.
    pub collections: Mutex<std::collections::BTreeMap<String, (u64, String)>>,
    pub points: Mutex<Vec<(u64, Vec<f64>, Value)>>,
    pub requests: AtomicUsize,
    pub last_body: Mutex<Value>,
    pub last_headers: Mutex<Vec<(String, String)>>,
}

pub struct Running {
    pub url: String,
    pub state: Arc<Standin>,
}

impl Running {
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
    pub fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.state.script.lock().unwrap()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.state
            .last_headers
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

async fn gate(st: &Standin, headers: &HeaderMap, body: &Value) -> Option<Response> {
    st.requests.fetch_add(1, Ordering::SeqCst);
    *st.last_body.lock().unwrap() = body.clone();
    *st.last_headers.lock().unwrap() = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let (delay, fail) = {
        let mut s = st.script.lock().unwrap();
        let delay = if s.latencies.is_empty() {
            s.latency
        } else {
            s.latencies.remove(0)
        };
        let fail = if s.fail_next > 0 {
            s.fail_next -= 1;
            Some((s.fail_status, s.retry_after.clone()))
        } else {
            None
        };
        (delay, fail)
    };
    tokio::time::sleep(delay).await;
    let (status, ra) = fail?;
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({"error": {"message": format!("scripted failure {status}")}})),
    )
        .into_response();
    if let Some(ra) = ra {
        r.headers_mut().insert("retry-after", ra.parse().unwrap());
    }
    Some(r)
}

fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|x| x["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn ollama_chat(
    State(st): State<Arc<Standin>>,
    h: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    if let Some(r) = gate(&st, &h, &b).await {
        return r;
    }
    let mut v = json!({
        "model": b["model"],
        "created_at": "2026-11-28T00:00:00Z",
        "message": {"role": "assistant", "content": format!("ECHO {}", last_user(&b))},
        "done": true,
        "total_duration": 1000, "load_duration": 10,
        "prompt_eval_count": 11, "eval_count": 7, "eval_duration": 500
    });
    if let Some(extra) = st.script.lock().unwrap().ollama_eval.clone() {
        for (k, x) in extra.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
    }
    Json(v).into_response()
}

async fn openai_chat(
    State(st): State<Arc<Standin>>,
    h: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    if let Some(r) = gate(&st, &h, &b).await {
        return r;
    }
    if b["stream"] == true {
        // Server-sent events as OpenAI streams them: a role chunk, content chunks, a
        // final chunk with the usage (stream_options.include_usage), then [DONE].
        let (first, gap) = {
            let s = st.script.lock().unwrap();
            (s.first_chunk, s.chunk_gap)
        };
        let text = format!("ECHO {}", last_user(&b));
        let model = b["model"].clone();
        let mut events: Vec<(Duration, String)> = vec![(
            Duration::ZERO,
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            .to_string(),
        )];
        let words: Vec<String> = text.split_inclusive(' ').map(String::from).collect();
        for (i, w) in words.iter().enumerate() {
            events.push((
                if i == 0 { first } else { gap },
                json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": {"content": w}}]})
                .to_string(),
            ));
        }
        events.push((
            Duration::ZERO,
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [],
                   "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}})
            .to_string(),
        ));
        events.push((Duration::ZERO, "[DONE]".into()));
        let stream = futures_util::stream::unfold(events.into_iter(), |mut it| async move {
            let (pause, data) = it.next()?;
            tokio::time::sleep(pause).await;
            Some((
                Ok::<_, std::convert::Infallible>(format!("data: {data}\n\n")),
                it,
            ))
        });
        return (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": b["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": format!("ECHO {}", last_user(&b))}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    }))
    .into_response()
}

async fn anthropic_messages(
    State(st): State<Arc<Standin>>,
    h: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    if let Some(r) = gate(&st, &h, &b).await {
        return r;
    }
    Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": b["model"],
        "content": [{"type": "text", "text": format!("ECHO {}", last_user(&b))}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 21, "output_tokens": 9}
    }))
    .into_response()
}

async fn webhook(
    State(st): State<Arc<Standin>>,
    Path(name): Path<String>,
    h: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    if let Some(r) = gate(&st, &h, &b).await {
        return r;
    }
    if name == "missing" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 404, "message": "webhook not registered"})),
        )
            .into_response();
    }
    Json(json!({"received": b, "workflow": name})).into_response()
}

/// A deterministic embedding: words hashed into 64 dimensions, so texts that share words
/// point the same way.
fn embedding(text: &str) -> Vec<f64> {
    let mut v = vec![0.0; 64];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let h = w
            .to_lowercase()
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        v[(h % 64) as usize] += 1.0;
    }
    v
}

async fn ollama_embed(State(st): State<Arc<Standin>>, Json(b): Json<Value>) -> Response {
    if st.script.lock().unwrap().no_embeddings {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "model \"nomic-embed-text\" not found, try pulling it first"})),
        )
            .into_response();
    }
    let texts: Vec<String> = b["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({"model": b["model"], "embeddings": texts.iter().map(|t| embedding(t)).collect::<Vec<_>>()})).into_response()
}

async fn openai_embed(State(st): State<Arc<Standin>>, Json(b): Json<Value>) -> Response {
    if st.script.lock().unwrap().no_embeddings {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "no such model"}})),
        )
            .into_response();
    }
    let t = b["input"].as_str().unwrap_or("");
    Json(json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": embedding(t)}], "model": b["model"]})).into_response()
}

fn qdrant_ok(result: Value) -> Response {
    Json(json!({"result": result, "status": "ok", "time": 0.0001})).into_response()
}

async fn qdrant_get_collection(State(st): State<Arc<Standin>>, Path(c): Path<String>) -> Response {
    match st.collections.lock().unwrap().get(&c) {
        Some((size, dist)) => qdrant_ok(json!({"status": "green", "config": {"params": {"vectors": {"size": size, "distance": dist}}}})),
        None => (StatusCode::NOT_FOUND, Json(json!({"status": {"error": format!("Not found: Collection `{c}` doesn't exist!")}, "time": 0.0}))).into_response(),
    }
}

async fn qdrant_put_collection(
    State(st): State<Arc<Standin>>,
    Path(c): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let size = b
        .pointer("/vectors/size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let dist = b
        .pointer("/vectors/distance")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    st.collections.lock().unwrap().insert(c, (size, dist));
    qdrant_ok(json!(true))
}

async fn qdrant_upsert(
    State(st): State<Arc<Standin>>,
    Path(_c): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    for p in b["points"].as_array().cloned().unwrap_or_default() {
        let v: Vec<f64> = p["vector"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        st.points
            .lock()
            .unwrap()
            .push((p["id"].as_u64().unwrap_or(0), v, p["payload"].clone()));
    }
    qdrant_ok(json!({"operation_id": 1, "status": "completed"}))
}

async fn qdrant_search(
    State(st): State<Arc<Standin>>,
    Path(_c): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let q: Vec<f64> = b["vector"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let limit = b["limit"].as_u64().unwrap_or(10) as usize;
    let cos = |a: &[f64], b: &[f64]| {
        let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = a.iter().map(|x| x * x).sum::<f64>().sqrt()
            * b.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n == 0.0 { 0.0 } else { d / n }
    };
    let mut hits: Vec<Value> = st.points.lock().unwrap().iter()
        .map(|(id, v, payload)| json!({"id": id, "version": 0, "score": cos(&q, v), "payload": payload}))
        .collect();
    hits.sort_by(|a, b| {
        b["score"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["score"].as_f64().unwrap())
    });
    hits.truncate(limit);
    qdrant_ok(json!(hits))
}

async fn ollama_tags() -> Response {
    Json(json!({"models": [{"name": "llama3.2:latest", "size": 2019393189u64}, {"name": "nomic-embed-text:latest", "size": 274302450u64}]})).into_response()
}

async fn ollama_ps(State(st): State<Arc<Standin>>) -> Response {
    if let Some(ps) = st.script.lock().unwrap().ps.clone() {
        return Json(ps).into_response();
    }
    // A model partly offloaded to the CPU: size_vram < size.
    Json(json!({"models": [{"name": "llama3.2:latest", "size": 3_000_000_000u64, "size_vram": 2_000_000_000u64,
                            "expires_at": "2026-11-28T17:00:00Z"}]})).into_response()
}

/// Streams NDJSON like Ollama: a few tokens, 30 ms apart, then the summary with its
/// counters (eval_count 8 over 0.2 s of eval_duration: 40 tokens/s).
/// `/api/show`: the modelfile's FROM line names the model file (as Ollama writes it).
async fn ollama_show(State(st): State<Arc<Standin>>, Json(b): Json<Value>) -> Response {
    let name = b["model"].as_str().or(b["name"].as_str()).unwrap_or("");
    match st.script.lock().unwrap().blobs.get(name) {
        Some(blob) => Json(json!({
            "modelfile": format!("# Modelfile generated by \"ollama show\"\nFROM /root/.ollama/models/blobs/{blob}\nTEMPLATE \"{{{{ .Prompt }}}}\"\n"),
            "details": {"format": "gguf", "family": "llama", "quantization_level": "Q4_K_M"}
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("model '{name}' not found")})),
        )
            .into_response(),
    }
}

async fn ollama_generate(Json(b): Json<Value>) -> Response {
    let model = b["model"].as_str().unwrap_or("").to_string();
    let stream = async_stream_lines(model);
    axum::body::Body::from_stream(stream).into_response()
}

fn async_stream_lines(
    model: String,
) -> impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> {
    futures_util::stream::unfold(0u32, move |i| {
        let model = model.clone();
        async move {
            if i > 3 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let line = if i < 3 {
                json!({"model": model, "response": "tok", "done": false})
            } else {
                json!({"model": model, "response": "", "done": true, "eval_count": 8,
                       "eval_duration": 200_000_000u64, "load_duration": 5_000_000u64, "prompt_eval_count": 6})
            };
            Some((Ok(format!("{line}\n")), i + 1))
        }
    })
}

/// Starts the stand-in on a free loopback port.
pub async fn start() -> Running {
    let state = Arc::new(Standin::default());
    let app = Router::new()
        .route("/api/chat", post(ollama_chat))
        .route(
            "/api/version",
            get(|| async { Json(json!({"version": "0.5.0"})) }),
        )
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/messages", post(anthropic_messages))
        .route("/webhook/{name}", post(webhook))
        .route("/api/embed", post(ollama_embed))
        .route("/api/tags", get(ollama_tags))
        .route("/api/ps", get(ollama_ps))
        .route("/api/show", post(ollama_show))
        .route("/api/generate", post(ollama_generate))
        .route("/v1/embeddings", post(openai_embed))
        .route(
            "/collections/{c}",
            get(qdrant_get_collection).put(qdrant_put_collection),
        )
        .route("/collections/{c}/points", axum::routing::put(qdrant_upsert))
        .route("/collections/{c}/points/search", post(qdrant_search))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Running { url, state }
}
