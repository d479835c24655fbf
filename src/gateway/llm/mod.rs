//! LLM providers behind one call: Ollama (`/api/chat`), OpenAI-compatible
//! (`/v1/chat/completions`: OpenAI, LM Studio, vLLM, llama.cpp) and Anthropic
//! (`/v1/messages`). Timeouts, retries with backoff on 429/5xx honouring `Retry-After`,
//! a concurrency limit per provider, and a small response cache.
//!
//! Each provider's wire format is a file of its own (`ollama`, `openai`, `anthropic`: the
//! request and how its answer is read); `breaker`, `cache` and `error` hold what they share.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;

mod anthropic;
mod breaker;
mod cache;
mod error;
mod ollama;
mod openai;
pub use breaker::{BREAKER_COOLDOWN, BREAKER_FAILURES, Breaker};
pub use cache::Cache;
pub use error::LlmError;
use ollama::OllamaAnswer;
use openai::Streamed;

/// The number at `p` in an answer, 0 when it has none.
fn u64_at(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ollama,
    OpenAi,
    Anthropic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ollama => "ollama",
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: Kind,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    pub timeout: Duration,
    pub retries: u32,
    pub concurrency: usize,
    /// Failed calls in a row that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit refuses calls before one trial call.
    pub breaker_cooldown: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached: bool,
    /// How fast the provider answered, as measured for this call (empty for cache hits).
    pub timing: Timing,
}

/// The speed of one provider call. Ollama reports its own counters (`eval_count` over
/// `eval_duration`, `load_duration`, `prompt_eval_duration`); an OpenAI-compatible
/// answer is streamed and timed here. None where the provider gives no way to measure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Time to first token: Ollama's load plus prompt evaluation; for a streamed answer,
    /// from sending the request to the first content chunk.
    pub ttft: Option<Duration>,
    /// Completion tokens per second of generation.
    pub tokens_per_s: Option<f64>,
    /// How long the model took to load for this call (Ollama's `load_duration`).
    pub load: Option<Duration>,
}

pub struct Provider {
    pub cfg: ProviderConfig,
    client: reqwest::Client,
    slots: Semaphore,
    breaker: std::sync::Mutex<Breaker>,
    /// Calls sent to the provider that have not answered yet (the `/metrics` gauge).
    in_flight: AtomicU64,
}

/// Counts one call in flight for as long as it lives: dropped on the answer, an error, a
/// timeout or a cancelled request alike.
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(n: &'a AtomicU64) -> InFlight<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// How long to wait before retry `attempt` (1-based): Retry-After when the provider
/// sent one (capped at 30 s), else 250 ms doubling.
pub fn retry_delay(attempt: u32, retry_after: Option<&str>) -> Duration {
    if let Some(s) = retry_after
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite())
    {
        return Duration::from_secs_f64(s.clamp(0.0, 30.0));
    }
    Duration::from_millis(250u64.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
}

impl Provider {
    pub fn new(cfg: ProviderConfig) -> Provider {
        let client = crate::http::client(|b| {
            b.timeout(cfg.timeout)
                .connect_timeout(Duration::from_secs(5).min(cfg.timeout))
                .pool_max_idle_per_host(cfg.concurrency.max(1))
        });
        Provider {
            slots: Semaphore::new(cfg.concurrency.max(1)),
            cfg,
            client,
            breaker: std::sync::Mutex::new(Breaker::Closed { failures: 0 }),
            in_flight: AtomicU64::new(0),
        }
    }

    /// Calls sent to the provider that have not answered yet (past this gateway's own
    /// slot limit: what the provider itself holds or queues).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The circuit's state now (for /metrics and /health).
    pub fn breaker(&self) -> Breaker {
        self.breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One chat completion through the circuit breaker: refused at once while it is open.
    pub async fn chat(
        &self,
        model: &str,
        system: &str,
        user: &str,
    ) -> Result<Completion, LlmError> {
        let admitted = self
            .breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(std::time::Instant::now());
        if let Err(wait) = admitted {
            return Err(LlmError::CircuitOpen {
                provider: self.name().to_string(),
                message: format!(
                    "circuit open after {} failed calls in a row; next trial in {wait:.1}s",
                    self.cfg.breaker_failures
                ),
            });
        }
        let r = self.chat_once(model, system, user).await;
        if let Err(e) = &r {
            tracing::warn!(provider = self.name(), model, error = %e, "LLM call failed");
        }
        // A 4xx (other than 429) is the request's fault, not the provider's health.
        let outage = match &r {
            Err(e) if e.is_outage() => Some(e.to_string()),
            _ => None,
        };
        self.breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(
                outage.as_deref(),
                std::time::Instant::now(),
                self.cfg.breaker_failures,
                self.cfg.breaker_cooldown,
            );
        r
    }

    pub fn name(&self) -> &'static str {
        self.cfg.kind.name()
    }

    fn request(&self, model: &str, system: &str, user: &str) -> reqwest::RequestBuilder {
        let base = self.cfg.base_url.trim_end_matches('/');
        let key = self.cfg.api_key.as_deref();
        let c = &self.client;
        match self.cfg.kind {
            Kind::Ollama => ollama::request(c, base, model, system, user),
            Kind::OpenAi => openai::request(c, base, key, model, system, user),
            Kind::Anthropic => anthropic::request(c, base, key, model, system, user),
        }
    }

    /// The completion in a successful, non-streamed answer body; None when it has no
    /// completion text.
    fn read_completion(
        &self,
        model: &str,
        body: &str,
    ) -> Result<Option<Completion>, serde_json::Error> {
        let read = match self.cfg.kind {
            // Read straight into the fields used (no JSON tree of the whole answer).
            Kind::Ollama => {
                return Ok(serde_json::from_str::<OllamaAnswer>(body)?.completion(model));
            }
            Kind::OpenAi => openai::read,
            Kind::Anthropic => anthropic::read,
        };
        let v: Value = serde_json::from_str(body)?;
        let Some((text, prompt, completion)) = read(&v) else {
            return Ok(None);
        };
        Ok(Some(Completion {
            text,
            model: v
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(model)
                .to_string(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached: false,
            timing: Timing::default(),
        }))
    }

    /// Reads a successful answer: a server-sent-events stream chunk by chunk (timing the
    /// first token), anything else whole.
    async fn read_answer(
        &self,
        mut r: reqwest::Response,
    ) -> Result<(String, Option<Streamed>), reqwest::Error> {
        let sse = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            return Ok((r.text().await?, None));
        }
        let mut st = Streamed::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut bad = None;
        while let Some(chunk) = r.chunk().await? {
            let at = std::time::Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                if let Err(e) = st.line(line.trim_end(), at) {
                    bad.get_or_insert(e);
                }
            }
        }
        if !buf.is_empty() {
            let line = String::from_utf8_lossy(&buf).to_string();
            if let Err(e) = st.line(line.trim_end(), std::time::Instant::now()) {
                bad.get_or_insert(e);
            }
        }
        Ok((bad.map(|e| e.to_string()).unwrap_or_default(), Some(st)))
    }

    /// One chat completion with retries; waits for a slot of this provider first.
    async fn chat_once(
        &self,
        model: &str,
        system: &str,
        user: &str,
    ) -> Result<Completion, LlmError> {
        let provider = self.name().to_string();
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LlmError::Unavailable {
                provider: provider.clone(),
                message: "shutting down".into(),
            })?;
        let _in_flight = InFlight::enter(&self.in_flight);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = std::time::Instant::now();
            let resp = self.request(model, system, user).send().await;
            let (status, retry_after, body) = match resp {
                Err(e) if e.is_timeout() => {
                    return Err(LlmError::Timeout {
                        provider,
                        after: self.cfg.timeout,
                    });
                }
                Err(e) => {
                    if attempt <= self.cfg.retries && e.is_connect() {
                        tokio::time::sleep(retry_delay(attempt, None)).await;
                        continue;
                    }
                    return Err(LlmError::Unavailable {
                        provider,
                        message: format!("cannot reach {}: {e}", self.cfg.base_url),
                    });
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ra = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let answer = if status < 400 {
                        self.read_answer(r).await
                    } else {
                        r.text().await.map(|t| (t, None))
                    };
                    let (body, streamed) = match answer {
                        Ok(b) => b,
                        Err(e) if e.is_timeout() => {
                            return Err(LlmError::Timeout {
                                provider,
                                after: self.cfg.timeout,
                            });
                        }
                        Err(e) => {
                            return Err(LlmError::Unavailable {
                                provider,
                                message: e.to_string(),
                            });
                        }
                    };
                    if let Some(st) = streamed {
                        return self.streamed_completion(model, st, body, sent);
                    }
                    (status, ra, body)
                }
            };
            if (status == 429 || status >= 500) && attempt <= self.cfg.retries {
                tokio::time::sleep(retry_delay(attempt, retry_after.as_deref())).await;
                continue;
            }
            if status >= 400 {
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .or_else(|| v.get("error"))
                            .and_then(|e| e.as_str().map(str::to_string))
                    })
                    .unwrap_or_else(|| body.chars().take(300).collect());
                return Err(LlmError::Status {
                    provider,
                    status,
                    message,
                });
            }
            return match self.read_completion(model, &body) {
                Ok(Some(c)) => Ok(c),
                Ok(None) => Err(LlmError::BadAnswer {
                    provider,
                    message: "the answer has no completion text".into(),
                }),
                Err(e) => Err(LlmError::BadAnswer {
                    provider,
                    message: format!("unreadable answer: {e}"),
                }),
            };
        }
    }
}

/// The providers in the order an agent tries them.
pub type Chain = Vec<Arc<Provider>>;

#[cfg(test)]
mod tests;
