//! Ollama: version, installed models, loaded models with their VRAM share (a model with
//! `size_vram < size` runs partly on the CPU) and keep-alive expiry.

use std::time::Duration;

use serde_json::{Value, json};

pub async fn sample(client: &reqwest::Client, base: &str) -> Result<Value, String> {
    let base = base.trim_end_matches('/');
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .json::<Value>()
                .await
                .map_err(|e| format!("{url}: {e}"))
        }
    };
    let version = get("/api/version").await?;
    let tags = get("/api/tags").await.unwrap_or(Value::Null);
    let ps = get("/api/ps").await.unwrap_or(Value::Null);
    let loaded: Vec<Value> = ps["models"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| {
                    let size = x["size"].as_u64().unwrap_or(0);
                    let vram = x["size_vram"].as_u64().unwrap_or(0);
                    json!({
                        "name": x["name"], "size_bytes": size, "size_vram_bytes": vram,
                        "gpu_percent": if size > 0 { vram as f64 / size as f64 * 100.0 } else { 0.0 },
                        "partly_on_cpu": vram < size,
                        "expires_at": x["expires_at"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "url": base,
        "version": version["version"],
        "installed": tags["models"].as_array().map(|m| m.iter().map(|x| x["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "loaded": loaded,
    }))
}

/// Polls Ollama every `period` (not every tick: it is a slow-changing source).
pub async fn run(
    url: Option<String>,
    period: Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let Some(url) = url else {
        let _ = tx
            .send(Update::Source(
                "ollama",
                Err("unavailable: OLLAMA_URL is not set and the stack has no ollama port".into()),
            ))
            .await;
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match sample(&client, &url).await {
            Ok(v) => {
                let _ = tx.send(Update::Ollama(v)).await;
                let _ = tx.send(Update::Source("ollama", Ok(()))).await;
            }
            Err(e) => {
                let _ = tx.send(Update::Source("ollama", Err(e))).await;
            }
        }
    }
}
