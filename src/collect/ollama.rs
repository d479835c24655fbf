//! Ollama: version, installed models, loaded models with their VRAM share (a model with
//! `size_vram < size` runs partly on the CPU) and keep-alive expiry.

use std::time::Duration;

use serde_json::{Value, json};

use crate::model::ollama::{LoadedModel, Ollama};

/// Why Ollama could not be read or probed; the texts name the URL that failed.
#[derive(Debug, thiserror::Error)]
pub enum OllamaError {
    #[error("{url}: {}", crate::http::why(source))]
    Request { url: String, source: reqwest::Error },
    #[error("no model is installed: `ollama pull <model>` first")]
    NoModel,
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("{0}")]
    Stream(reqwest::Error),
    #[error("the generation ended without its final summary")]
    NoSummary,
}

pub async fn sample(client: &reqwest::Client, base: &str) -> Result<Ollama, OllamaError> {
    sample_cached(client, base, &mut Blobs::new()).await
}

/// Model name and digest -> the model file `/api/show` names (it does not change while
/// the digest stays the same).
pub type Blobs = std::collections::HashMap<String, Option<String>>;

/// The model file of a loaded model, from the `FROM` line of `/api/show`'s modelfile.
async fn blob_of(client: &reqwest::Client, base: &str, name: &str) -> Option<String> {
    let v: Value = client
        .post(format!("{base}/api/show"))
        .json(&json!({"model": name}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    crate::model::ollama::modelfile_blob(v["modelfile"].as_str()?)
}

/// One sample, asking `/api/show` only for models not seen before.
pub async fn sample_cached(
    client: &reqwest::Client,
    base: &str,
    blobs: &mut Blobs,
) -> Result<Ollama, OllamaError> {
    let base = base.trim_end_matches('/');
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let r = client.get(&url).send().await;
            match r {
                Ok(r) => r.json::<Value>().await,
                Err(e) => Err(e),
            }
            .map_err(|source| OllamaError::Request { url, source })
        }
    };
    let version = get("/api/version").await?;
    let tags = get("/api/tags").await.unwrap_or(Value::Null);
    let ps = get("/api/ps").await.unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut loaded: Vec<LoadedModel> = Vec::new();
    for x in ps["models"].as_array().into_iter().flatten() {
        let size = x["size"].as_u64().unwrap_or(0);
        let vram = x["size_vram"].as_u64().unwrap_or(0);
        let name = x["name"].as_str().unwrap_or("").to_string();
        let key = format!("{name}@{}", x["digest"].as_str().unwrap_or(""));
        let blob = match blobs.get(&key) {
            Some(b) => b.clone(),
            None => {
                let b = blob_of(client, base, &name).await;
                if b.is_some() {
                    blobs.insert(key, b.clone());
                }
                b
            }
        };
        loaded.push(LoadedModel {
            name,
            size_bytes: size,
            size_vram_bytes: vram,
            gpu_percent: if size > 0 {
                vram as f64 / size as f64 * 100.0
            } else {
                0.0
            },
            // Wholly on the CPU (size_vram 0) counts too: nothing of it is on the GPU.
            partly_on_cpu: vram < size,
            expires_at: text(&x["expires_at"]),
            context_length: x["context_length"].as_u64(),
            digest: text(&x["digest"]),
            blob,
            quantization: text(&x["details"]["quantization_level"]),
            ..Default::default()
        });
    }
    Ok(Ollama {
        url: base.to_string(),
        version: text(&version["version"]),
        installed: tags["models"]
            .as_array()
            .map(|m| m.iter().filter_map(|x| text(&x["name"])).collect())
            .unwrap_or_default(),
        loaded,
        // The gateway's side of the queue is joined by the hub.
        queue: None,
    })
}

/// Polls Ollama every `period` (not every tick: it is a slow-changing source).
/// `url` follows where Ollama answers (None: nowhere known yet, said as the source's
/// state); a new address is sampled at once.
pub async fn run(
    mut url: tokio::sync::watch::Receiver<Option<String>>,
    mut tick: super::ticker::Ticker,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let client = crate::http::client(|b| b.timeout(Duration::from_secs(3)));
    let mut blobs = Blobs::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
            r = url.changed() => if r.is_err() { return },
        }
        if blobs.len() > 256 {
            blobs.clear();
        }
        let Some(base) = url.borrow_and_update().clone() else {
            let why = "unavailable: OLLAMA_URL is not set and the stack's Ollama publishes no port";
            let _ = tx.send(Update::Source("ollama", Err(why.into()))).await;
            continue;
        };
        match sample_cached(&client, &base, &mut blobs).await {
            Ok(v) => {
                let _ = tx.send(Update::Ollama(v)).await;
                let _ = tx.send(Update::Source("ollama", Ok(()))).await;
            }
            Err(e) => {
                let _ = tx.send(Update::Source("ollama", Err(e.to_string()))).await;
            }
        }
    }
}

/// The on-demand probe: a short streamed generation, timing the first token and reading
/// Ollama's own eval counters for tokens per second. Run when asked, never on a tick.
pub async fn probe_generation(
    client: &reqwest::Client,
    base: &str,
    model: Option<&str>,
) -> Result<Value, OllamaError> {
    let base = base.trim_end_matches('/');
    let model = match model {
        Some(m) => m.to_string(),
        None => {
            let s = sample(client, base).await?;
            s.loaded
                .first()
                .map(|m| m.name.as_str())
                .or_else(|| s.installed.first().map(String::as_str))
                .ok_or(OllamaError::NoModel)?
                .to_string()
        }
    };
    let started = std::time::Instant::now();
    let mut resp = client
        .post(format!("{base}/api/generate"))
        .json(
            &json!({"model": model, "prompt": "Reply with the word ready.", "stream": true,
                      "options": {"num_predict": 16}}),
        )
        .send()
        .await
        .map_err(|source| OllamaError::Request {
            url: format!("{base}/api/generate"),
            source,
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let url = format!("{base}/api/generate");
        return Err(OllamaError::Status { url, status, body });
    }
    let mut ttft = None;
    let mut buf = Vec::new();
    let mut last = Value::Null;
    while let Some(chunk) = resp.chunk().await.map_err(OllamaError::Stream)? {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if ttft.is_none() && v["response"].as_str().is_some_and(|r| !r.is_empty()) {
                ttft = Some(started.elapsed());
            }
            if v["done"] == true {
                last = v;
            }
        }
    }
    if last.is_null() {
        return Err(OllamaError::NoSummary);
    }
    let eval = last["eval_count"].as_u64().unwrap_or(0);
    let eval_ns = last["eval_duration"].as_u64().unwrap_or(0);
    Ok(json!({
        "model": model,
        "time_to_first_token_ms": ttft.map(|d| d.as_secs_f64() * 1000.0),
        "tokens_per_second": if eval_ns > 0 { Some(eval as f64 / (eval_ns as f64 / 1e9)) } else { None },
        "eval_count": eval,
        "load_ms": last["load_duration"].as_u64().map(|n| n as f64 / 1e6),
        "total_ms": started.elapsed().as_secs_f64() * 1000.0,
    }))
}
