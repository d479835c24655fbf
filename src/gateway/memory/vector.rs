//! The two HTTP clients behind the vector modes: an embedding model (Ollama `/api/embed`
//! or OpenAI `/v1/embeddings`) and Qdrant's REST API.

use std::time::Duration;

use serde_json::{Value, json};

use super::{COLLECTION, Hit, Note};
use crate::gateway::llm::Kind;

/// Why the embedding model or Qdrant did not answer as asked; the texts are the ones the
/// memory routes give as `fallback_reason` or error.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error("embedding model unreachable: {0}")]
    EmbedUnreachable(#[source] reqwest::Error),
    #[error("unreadable embedding: {0}")]
    EmbedUnreadable(#[source] reqwest::Error),
    #[error("embedding model answered {status}: {body}")]
    EmbedStatus {
        status: reqwest::StatusCode,
        body: Value,
    },
    #[error("the answer holds no embedding")]
    NoEmbedding,
    #[error("empty embedding")]
    EmptyEmbedding,
    #[error("qdrant at {url}: {source}")]
    QdrantUnreachable { url: String, source: reqwest::Error },
    /// `error` is Qdrant's `status.error`, or its whole answer when it has none.
    #[error("qdrant answered {status}: {error}")]
    QdrantStatus {
        status: reqwest::StatusCode,
        error: Value,
    },
}

/// Turns text into a vector with an embedding model.
pub struct Embedder {
    pub kind: Kind,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    client: reqwest::Client,
}

impl Embedder {
    pub fn new(kind: Kind, base_url: String, api_key: Option<String>, model: String) -> Embedder {
        Embedder {
            kind,
            base_url,
            api_key,
            model,
            client: crate::http::client(|b| {
                b.timeout(Duration::from_secs(30))
                    .connect_timeout(Duration::from_secs(2))
            }),
        }
    }

    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, VectorError> {
        let base = self.base_url.trim_end_matches('/');
        let req = match self.kind {
            Kind::Ollama => self
                .client
                .post(format!("{base}/api/embed"))
                .json(&json!({"model": self.model, "input": [text]})),
            _ => {
                let mut r = self
                    .client
                    .post(format!("{base}/embeddings"))
                    .json(&json!({"model": self.model, "input": text}));
                if let Some(k) = &self.api_key {
                    r = r.bearer_auth(k);
                }
                r
            }
        };
        let resp = req.send().await.map_err(VectorError::EmbedUnreachable)?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(VectorError::EmbedUnreadable)?;
        if !status.is_success() {
            return Err(VectorError::EmbedStatus { status, body: v });
        }
        let arr = match self.kind {
            Kind::Ollama => v.pointer("/embeddings/0"),
            _ => v.pointer("/data/0/embedding"),
        }
        .and_then(Value::as_array)
        .ok_or(VectorError::NoEmbedding)?;
        let vec: Vec<f32> = arr
            .iter()
            .filter_map(|x| x.as_f64().map(|f| f as f32))
            .collect();
        if vec.is_empty() {
            return Err(VectorError::EmptyEmbedding);
        }
        Ok(vec)
    }
}

/// Qdrant over its REST API.
pub struct Qdrant {
    pub url: String,
    client: reqwest::Client,
    /// The vector size the collection was made for, once known.
    ready: tokio::sync::Mutex<Option<usize>>,
}

impl Qdrant {
    pub fn new(url: String) -> Qdrant {
        Qdrant {
            url: url.trim_end_matches('/').to_string(),
            client: crate::http::client(|b| b.timeout(Duration::from_secs(10))),
            ready: tokio::sync::Mutex::new(None),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, VectorError> {
        let r = req
            .send()
            .await
            .map_err(|source| VectorError::QdrantUnreachable {
                url: self.url.clone(),
                source,
            })?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            let error = v.pointer("/status/error").cloned().unwrap_or(v);
            Err(VectorError::QdrantStatus { status, error })
        }
    }

    /// Creates the collection when it does not exist yet (cosine distance).
    async fn ensure(&self, dim: usize) -> Result<(), VectorError> {
        let mut ready = self.ready.lock().await;
        if *ready == Some(dim) {
            return Ok(());
        }
        let c = format!("{}/collections/{COLLECTION}", self.url);
        if self.call(self.client.get(&c)).await.is_err() {
            self.call(
                self.client
                    .put(&c)
                    .json(&json!({"vectors": {"size": dim, "distance": "Cosine"}})),
            )
            .await?;
        }
        *ready = Some(dim);
        Ok(())
    }

    pub async fn upsert(&self, note: &Note, vector: &[f32]) -> Result<(), VectorError> {
        self.ensure(vector.len()).await?;
        let url = format!("{}/collections/{COLLECTION}/points?wait=true", self.url);
        self.call(self.client.put(url).json(&json!({
            "points": [{"id": note.id, "vector": vector, "payload": {"text": note.text, "tags": note.tags}}]
        })))
        .await
        .map(|_| ())
    }

    pub async fn search(&self, vector: &[f32], k: usize) -> Result<Vec<Hit>, VectorError> {
        self.ensure(vector.len()).await?;
        let url = format!("{}/collections/{COLLECTION}/points/search", self.url);
        let v = self
            .call(
                self.client
                    .post(url)
                    .json(&json!({"vector": vector, "limit": k, "with_payload": true})),
            )
            .await?;
        Ok(v["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| Hit {
                        id: p["id"].as_u64().unwrap_or(0),
                        text: p
                            .pointer("/payload/text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        tags: p
                            .pointer("/payload/tags")
                            .and_then(Value::as_array)
                            .map(|t| {
                                t.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        score: p["score"].as_f64().unwrap_or(0.0),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}
