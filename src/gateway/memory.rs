//! The gateway's note memory. Three modes, and every answer names the one it used:
//! - `qdrant-vector`: Qdrant over its REST API (`QDRANT_URL`, collection `osmen_memories`,
//!   cosine), with embeddings from Ollama `/api/embed` or OpenAI `/v1/embeddings`;
//! - `embedded-vector`: no Qdrant, but an embedding model answers: vectors kept with the
//!   notes in a JSON-lines file under `runtime/`, searched by cosine similarity;
//! - `lexical-bm25`: no embedding model answers: BM25 over the notes' words.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::llm::Kind;

pub const COLLECTION: &str = "osmen_memories";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub id: u64,
    pub text: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub text: String,
    pub tags: Vec<String>,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Qdrant,
    EmbeddedVector,
    Lexical,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Qdrant => "qdrant-vector",
            Mode::EmbeddedVector => "embedded-vector",
            Mode::Lexical => "lexical-bm25",
        }
    }
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

    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
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
        let resp = req
            .send()
            .await
            .map_err(|e| format!("embedding model unreachable: {e}"))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("unreadable embedding: {e}"))?;
        if !status.is_success() {
            return Err(format!("embedding model answered {status}: {v}"));
        }
        let arr = match self.kind {
            Kind::Ollama => v.pointer("/embeddings/0"),
            _ => v.pointer("/data/0/embedding"),
        }
        .and_then(Value::as_array)
        .ok_or("the answer holds no embedding")?;
        let vec: Vec<f32> = arr
            .iter()
            .filter_map(|x| x.as_f64().map(|f| f as f32))
            .collect();
        if vec.is_empty() {
            return Err("empty embedding".into());
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

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let r = req
            .send()
            .await
            .map_err(|e| format!("qdrant at {}: {e}", self.url))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            Err(format!(
                "qdrant answered {status}: {}",
                v.pointer("/status/error").unwrap_or(&v)
            ))
        }
    }

    /// Creates the collection when it does not exist yet (cosine distance).
    async fn ensure(&self, dim: usize) -> Result<(), String> {
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

    pub async fn upsert(&self, note: &Note, vector: &[f32]) -> Result<(), String> {
        self.ensure(vector.len()).await?;
        let url = format!("{}/collections/{COLLECTION}/points?wait=true", self.url);
        self.call(self.client.put(url).json(&json!({
            "points": [{"id": note.id, "vector": vector, "payload": {"text": note.text, "tags": note.tags}}]
        })))
        .await
        .map(|_| ())
    }

    pub async fn search(&self, vector: &[f32], k: usize) -> Result<Vec<Hit>, String> {
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

pub struct Memory {
    path: Option<PathBuf>,
    notes: Mutex<Vec<Note>>,
    pub embedder: Option<Embedder>,
    pub qdrant: Option<Qdrant>,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(|w| w.to_lowercase())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn hit(n: &Note, score: f64) -> Hit {
    Hit {
        id: n.id,
        text: n.text.clone(),
        tags: n.tags.clone(),
        score,
    }
}

impl Memory {
    /// Opens (or starts) the local store at `path`; None keeps notes in memory only.
    pub fn open(
        path: Option<PathBuf>,
        embedder: Option<Embedder>,
        qdrant: Option<Qdrant>,
    ) -> Memory {
        let notes = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        Memory {
            path,
            notes: Mutex::new(notes),
            embedder,
            qdrant,
        }
    }

    /// Stores a note: always locally, and in Qdrant when one is configured and an
    /// embedding could be made. A Qdrant that refuses is an error.
    pub async fn store(&self, text: &str, tags: Vec<String>) -> Result<(Note, Mode), String> {
        let vector = match &self.embedder {
            Some(e) => e.embed(text).await.ok(),
            None => None,
        };
        let note = {
            let mut n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
            let note = Note {
                id: n.last().map(|x| x.id + 1).unwrap_or(1),
                text: text.to_string(),
                tags,
                vector: vector.clone(),
            };
            if let Some(p) = &self.path {
                let write = || -> std::io::Result<()> {
                    if let Some(d) = p.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)?;
                    writeln!(
                        f,
                        "{}",
                        serde_json::to_string(&note).map_err(std::io::Error::other)?
                    )
                };
                write().map_err(|e| format!("cannot write {}: {e}", p.display()))?;
            }
            n.push(note.clone());
            note
        };
        let mode = match (&self.qdrant, &vector) {
            (Some(q), Some(v)) => {
                q.upsert(&note, v).await?;
                Mode::Qdrant
            }
            (None, Some(_)) => Mode::EmbeddedVector,
            _ => Mode::Lexical,
        };
        Ok((note, mode))
    }

    /// Searches in the best mode available now; the second value says which, the third
    /// why a better one was not used.
    pub async fn search(&self, query: &str, k: usize) -> (Vec<Hit>, Mode, Option<String>) {
        let mut why = None;
        let qv = match &self.embedder {
            Some(e) => match e.embed(query).await {
                Ok(v) => Some(v),
                Err(m) => {
                    why = Some(m);
                    None
                }
            },
            None => None,
        };
        if let (Some(q), Some(v)) = (&self.qdrant, &qv) {
            match q.search(v, k).await {
                Ok(h) => return (h, Mode::Qdrant, None),
                Err(m) => why = Some(m),
            }
        }
        if let Some(v) = &qv {
            let n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
            let mut scored: Vec<Hit> = n
                .iter()
                .filter_map(|note| {
                    let nv = note.vector.as_ref().filter(|nv| nv.len() == v.len())?;
                    Some(hit(note, cosine(v, nv)))
                })
                .collect();
            if !scored.is_empty() {
                scored.sort_by(|a, b| b.score.total_cmp(&a.score));
                scored.truncate(k);
                return (scored, Mode::EmbeddedVector, why);
            }
        }
        (self.bm25(query, k), Mode::Lexical, why)
    }

    /// BM25 (k1 = 1.2, b = 0.75) over the notes' words; best first, zero scores left out.
    pub fn bm25(&self, query: &str, top_k: usize) -> Vec<Hit> {
        let n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let docs: Vec<Vec<String>> = n.iter().map(|d| words(&d.text)).collect();
        let count = docs.len() as f64;
        if count == 0.0 {
            return Vec::new();
        }
        let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / count;
        let mut df: HashMap<&str, f64> = HashMap::new();
        for d in &docs {
            let mut seen: Vec<&str> = d.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for w in seen {
                *df.entry(w).or_default() += 1.0;
            }
        }
        let q = words(query);
        let mut scored: Vec<Hit> = n
            .iter()
            .zip(&docs)
            .map(|(note, d)| {
                let len = d.len() as f64;
                let score: f64 = q
                    .iter()
                    .map(|t| {
                        let f = d.iter().filter(|w| *w == t).count() as f64;
                        if f == 0.0 {
                            return 0.0;
                        }
                        let dfi = df.get(t.as_str()).copied().unwrap_or(0.0);
                        let idf = ((count - dfi + 0.5) / (dfi + 0.5) + 1.0).ln();
                        idf * f * 2.2 / (f + 1.2 * (1.0 - 0.75 + 0.75 * len / avg.max(1.0)))
                    })
                    .sum();
                hit(note, score)
            })
            .filter(|h| h.score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        scored.truncate(top_k);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bm25_ranks_and_persists() {
        let p = std::env::temp_dir().join(format!("osmen-mem-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let m = Memory::open(Some(p.clone()), None, None);
        for t in [
            "Postgres backups run nightly at 02:00",
            "Redis is a cache; eviction policy allkeys-lru",
            "The backup of qdrant snapshots is weekly",
        ] {
            assert_eq!(m.store(t, vec![]).await.unwrap().1, Mode::Lexical);
        }
        let (r, mode, _) = m.search("when do postgres backups run", 2).await;
        assert_eq!((r[0].id, mode), (1, Mode::Lexical));
        assert!(m.bm25("nothing matches zzz", 3).is_empty());
        let again = Memory::open(Some(p.clone()), None, None);
        assert_eq!(again.bm25("redis eviction", 1)[0].id, 2);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn cosine_similarity() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-9);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-9);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
