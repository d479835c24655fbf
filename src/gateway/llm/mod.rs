//! LLM providers behind one call: Ollama (`/api/chat`), OpenAI-compatible
//! (`/v1/chat/completions`: OpenAI, LM Studio, vLLM, llama.cpp) and Anthropic
//! (`/v1/messages`). Timeouts, retries with backoff on 429/5xx honouring `Retry-After`,
//! a concurrency limit per provider, and a small response cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::model::agent_error::ErrorKind;

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

/// Ollama's `/api/chat` request, non-streaming.
#[derive(serde::Serialize)]
struct OllamaChat<'a> {
    model: &'a str,
    stream: bool,
    messages: [ChatMessage<'a>; 2],
}

#[derive(serde::Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// Ollama's `/api/chat` answer, read straight into the fields the gateway uses (no JSON
/// tree of the whole answer).
#[derive(serde::Deserialize)]
struct OllamaAnswer {
    model: Option<String>,
    message: Option<OllamaMessage>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_duration: Option<u64>,
}

#[derive(serde::Deserialize)]
struct OllamaMessage {
    content: Option<String>,
}

impl OllamaAnswer {
    /// The completion, or None without a message text. Ollama reports its own counters:
    /// time to first token is the load plus the prompt's evaluation, speed the evaluated
    /// tokens over their evaluation time.
    fn completion(self, model: &str) -> Option<Completion> {
        let text = self.message?.content?;
        let eval = self.eval_count.unwrap_or(0);
        let load = self.load_duration.map(Duration::from_nanos);
        let prompt = self.prompt_eval_duration.map(Duration::from_nanos);
        let eval_d = self
            .eval_duration
            .map(Duration::from_nanos)
            .filter(|d| !d.is_zero());
        Some(Completion {
            text,
            model: self.model.unwrap_or_else(|| model.to_string()),
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: eval,
            cached: false,
            timing: Timing {
                ttft: match (load, prompt) {
                    (None, None) => None,
                    (l, p) => Some(l.unwrap_or_default() + p.unwrap_or_default()),
                },
                tokens_per_s: eval_d
                    .filter(|_| eval > 0)
                    .map(|d| eval as f64 / d.as_secs_f64()),
                load,
            },
        })
    }
}

/// What a streamed OpenAI-compatible answer came to: its text, usage, and when the first
/// and last content chunks arrived.
#[derive(Debug, Default)]
struct Streamed {
    text: String,
    model: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
    first: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
    done: bool,
}

impl Streamed {
    /// One server-sent-events line (`data: {...}` or `data: [DONE]`).
    fn line(&mut self, line: &str, at: std::time::Instant) -> Result<(), String> {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Ok(());
        };
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("unreadable stream chunk: {e}"))?;
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = Some(m.to_string());
        }
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            self.text.push_str(c);
            self.first.get_or_insert(at);
            self.last = Some(at);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(self.prompt_tokens);
            self.completion_tokens = u["completion_tokens"]
                .as_u64()
                .unwrap_or(self.completion_tokens);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmError {
    Timeout {
        provider: String,
        after: Duration,
    },
    /// The provider answered with an error status (after retries).
    Status {
        provider: String,
        status: u16,
        message: String,
    },
    /// The provider could not be reached.
    Unavailable {
        provider: String,
        message: String,
    },
    /// The provider answered something that is not a completion (unreadable JSON or
    /// stream, no completion text).
    BadAnswer {
        provider: String,
        message: String,
    },
    /// The provider's circuit breaker is open: refused without a call.
    CircuitOpen {
        provider: String,
        message: String,
    },
}

impl LlmError {
    /// The provider that failed.
    pub fn provider(&self) -> &str {
        match self {
            LlmError::Timeout { provider, .. }
            | LlmError::Status { provider, .. }
            | LlmError::Unavailable { provider, .. }
            | LlmError::BadAnswer { provider, .. }
            | LlmError::CircuitOpen { provider, .. } => provider,
        }
    }

    /// The kind the gateway counts and reports the error as.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LlmError::Timeout { .. } => ErrorKind::Timeout,
            LlmError::Status { status, .. } => ErrorKind::from_status(*status),
            LlmError::Unavailable { .. } => ErrorKind::Unreachable,
            LlmError::BadAnswer { .. } => ErrorKind::BadAnswer,
            LlmError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
        }
    }

    /// An outage moves an agent on to its next provider and counts against the
    /// provider's circuit: unreachable, timeout, 429, 5xx, an unreadable answer, an open
    /// circuit. Any other 4xx is the request's fault.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, LlmError::CircuitOpen { .. })
    }

    pub fn is_outage(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => true,
        }
    }
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmError::Timeout { provider, after } => {
                write!(
                    f,
                    "{provider} did not answer within {}s",
                    after.as_secs_f64()
                )
            }
            LlmError::Status {
                provider,
                status,
                message,
            } => write!(f, "{provider} answered {status}: {message}"),
            LlmError::Unavailable { provider, message }
            | LlmError::BadAnswer { provider, message }
            | LlmError::CircuitOpen { provider, message } => write!(f, "{provider}: {message}"),
        }
    }
}

pub struct Provider {
    pub cfg: ProviderConfig,
    client: reqwest::Client,
    slots: Semaphore,
    breaker: std::sync::Mutex<Breaker>,
}

/// Consecutive outages (unreachable, timeout, 429, 5xx, unreadable) that open the circuit
/// unless the provider's `breaker_failures` says otherwise.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open circuit refuses calls before one trial call (`breaker_cooldown`).
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// A circuit breaker: closed (calls go through), open (calls fail at once, so agents fall
/// back to their next provider without waiting out timeouts), half-open (one trial call
/// decides: success closes it, an outage opens it again).
#[derive(Debug, Clone, PartialEq)]
pub enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        since: std::time::Instant,
        until: std::time::Instant,
        last_error: String,
    },
    HalfOpen {
        trial: bool,
        last_error: String,
    },
}

impl Breaker {
    /// 0 closed, 1 half-open, 2 open (the gauge's value).
    pub fn code(&self) -> u8 {
        match self {
            Breaker::Closed { .. } => 0,
            Breaker::HalfOpen { .. } => 1,
            Breaker::Open { .. } => 2,
        }
    }

    /// May a call go out now? Err(seconds until the next trial) while open.
    pub fn admit(&mut self, now: std::time::Instant) -> Result<(), f64> {
        match self {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open {
                until, last_error, ..
            } => {
                if now >= *until {
                    *self = Breaker::HalfOpen {
                        trial: true,
                        last_error: std::mem::take(last_error),
                    };
                    Ok(())
                } else {
                    Err(until.duration_since(now).as_secs_f64())
                }
            }
            // One trial at a time; the others fail fast until it decides.
            Breaker::HalfOpen { trial, .. } => {
                if *trial {
                    Err(1.0)
                } else {
                    *trial = true;
                    Ok(())
                }
            }
        }
    }

    /// The outcome of an admitted call: `Some(error)` for an outage, None otherwise.
    pub fn record(
        &mut self,
        outage: Option<&str>,
        now: std::time::Instant,
        threshold: u32,
        cooldown: Duration,
    ) {
        match (outage, &*self) {
            (None, _) => *self = Breaker::Closed { failures: 0 },
            (Some(_), Breaker::Closed { failures }) if failures + 1 < threshold.max(1) => {
                *self = Breaker::Closed {
                    failures: failures + 1,
                };
            }
            (Some(e), _) => {
                *self = Breaker::Open {
                    since: now,
                    until: now + cooldown,
                    last_error: e.to_string(),
                }
            }
        }
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
        }
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
        match self.cfg.kind {
            // Written straight from the borrowed prompt (no JSON tree, no copy of it).
            Kind::Ollama => self
                .client
                .post(format!("{base}/api/chat"))
                .json(&OllamaChat {
                    model,
                    stream: false,
                    messages: [
                        ChatMessage {
                            role: "system",
                            content: system,
                        },
                        ChatMessage {
                            role: "user",
                            content: user,
                        },
                    ],
                }),
            Kind::OpenAi => {
                let mut r = self
                    .client
                    .post(format!("{base}/chat/completions"))
                    .json(&json!({
                        "model": model,
                        "stream": true,
                        "stream_options": {"include_usage": true},
                        "messages": [
                            {"role": "system", "content": system},
                            {"role": "user", "content": user}
                        ]
                    }));
                if let Some(k) = &self.cfg.api_key {
                    r = r.bearer_auth(k);
                }
                r
            }
            Kind::Anthropic => {
                let mut r = self
                    .client
                    .post(format!("{base}/v1/messages"))
                    .header("anthropic-version", "2023-06-01")
                    .json(&json!({
                        "model": model,
                        "max_tokens": 1024,
                        "system": system,
                        "messages": [{"role": "user", "content": user}]
                    }));
                if let Some(k) = &self.cfg.api_key {
                    r = r.header("x-api-key", k);
                }
                r
            }
        }
    }

    /// The completion in a successful, non-streamed answer body; None when it has no
    /// completion text.
    fn read_completion(
        &self,
        model: &str,
        body: &str,
    ) -> Result<Option<Completion>, serde_json::Error> {
        let v: Value = match self.cfg.kind {
            // Read straight into the fields used (no JSON tree of the whole answer).
            Kind::Ollama => {
                return Ok(serde_json::from_str::<OllamaAnswer>(body)?.completion(model));
            }
            Kind::OpenAi | Kind::Anthropic => serde_json::from_str(body)?,
        };
        let u64_at = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        let read = || {
            Some(if self.cfg.kind == Kind::OpenAi {
                (
                    v.pointer("/choices/0/message/content")?
                        .as_str()?
                        .to_string(),
                    u64_at("/usage/prompt_tokens"),
                    u64_at("/usage/completion_tokens"),
                )
            } else {
                (
                    v.get("content")?
                        .as_array()?
                        .iter()
                        .filter_map(|c| c.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                    u64_at("/usage/input_tokens"),
                    u64_at("/usage/output_tokens"),
                )
            })
        };
        let Some((text, prompt, completion)) = read() else {
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
        Ok((bad.unwrap_or_default(), Some(st)))
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

impl Provider {
    /// The completion a streamed answer came to, with its measured first-token time and
    /// generation speed; `bad` holds the first unreadable chunk's error, if any.
    fn streamed_completion(
        &self,
        model: &str,
        st: Streamed,
        bad: String,
        sent: std::time::Instant,
    ) -> Result<Completion, LlmError> {
        let provider = self.name().to_string();
        if !bad.is_empty() {
            return Err(LlmError::BadAnswer {
                provider,
                message: bad,
            });
        }
        if !st.done && st.first.is_none() {
            return Err(LlmError::BadAnswer {
                provider,
                message: "the stream ended without a completion".into(),
            });
        }
        let tokens_per_s = match (st.first, st.last) {
            (Some(a), Some(b)) if b > a && st.completion_tokens > 1 => {
                // Tokens after the first over the time they took to arrive.
                Some((st.completion_tokens - 1) as f64 / (b - a).as_secs_f64())
            }
            _ => None,
        };
        Ok(Completion {
            text: st.text,
            model: st.model.unwrap_or_else(|| model.to_string()),
            prompt_tokens: st.prompt_tokens,
            completion_tokens: st.completion_tokens,
            cached: false,
            timing: Timing {
                ttft: st.first.map(|f| f - sent),
                tokens_per_s,
                load: None,
            },
        })
    }
}

/// A small LRU of completions keyed by provider, model and prompt.
/// Key -> (completion, when it was stored), and the keys from least to most recently used.
type CacheMap = (HashMap<String, (Completion, Instant)>, VecDeque<String>);

pub struct Cache {
    cap: usize,
    map: Mutex<CacheMap>,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            cap,
            map: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn key(provider: &str, model: &str, system: &str, user: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [provider, model, system, user] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let mut out = String::with_capacity(64);
        for b in h.finalize() {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The completion stored under `key` if it is younger than `ttl`.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<Completion> {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (hit, at) = g.0.get(key).cloned()?;
        if at.elapsed() > ttl {
            g.0.remove(key);
            g.1.retain(|k| k != key);
            return None;
        }
        g.1.retain(|k| k != key);
        g.1.push_back(key.to_string());
        Some(hit)
    }

    pub fn put(&self, key: String, c: Completion) {
        if self.cap == 0 {
            return;
        }
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.insert(key.clone(), (c, Instant::now())).is_none() {
            g.1.push_back(key);
        }
        while g.1.len() > self.cap {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }
}

/// The providers in the order an agent tries them.
pub type Chain = Vec<Arc<Provider>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollamas_answer_gives_its_text_tokens_and_counters() {
        let read = |b: &str| {
            serde_json::from_str::<OllamaAnswer>(b)
                .unwrap()
                .completion("asked")
        };
        let c = read(
            r#"{"model":"llama3.2","created_at":"2026-12-01T00:00:00Z","message":{"role":"assistant","content":"hi"},"done":true,"total_duration":5000000,"load_duration":1000000,"prompt_eval_count":11,"prompt_eval_duration":2000000,"eval_count":7,"eval_duration":3500000}"#,
        )
        .unwrap();
        assert_eq!(
            (
                c.text.as_str(),
                c.model.as_str(),
                c.prompt_tokens,
                c.completion_tokens
            ),
            ("hi", "llama3.2", 11, 7)
        );
        // First token: load (1 ms) plus the prompt's evaluation (2 ms); 7 tokens in 3.5 ms.
        assert_eq!(c.timing.ttft, Some(Duration::from_millis(3)));
        assert_eq!(c.timing.load, Some(Duration::from_millis(1)));
        assert!((c.timing.tokens_per_s.unwrap() - 2000.0).abs() < 1e-9);
        // No counters: the asked model, no figures.
        let c = read(r#"{"message":{"role":"assistant","content":"x"},"done":true}"#).unwrap();
        assert_eq!((c.model.as_str(), c.prompt_tokens), ("asked", 0));
        assert_eq!(c.timing, Timing::default());
        // Zero evaluated tokens or time give no speed; a load alone is the first token.
        let c = read(
            r#"{"message":{"content":"z"},"eval_count":0,"eval_duration":0,"load_duration":5}"#,
        )
        .unwrap();
        assert_eq!(c.timing.tokens_per_s, None);
        assert_eq!(c.timing.ttft, Some(Duration::from_nanos(5)));
        assert!(
            read(r#"{"done":true}"#).is_none(),
            "no message: no completion"
        );
        assert!(serde_json::from_str::<OllamaAnswer>(r#"{"message":{"content":3}}"#).is_err());
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(retry_delay(1, Some("2")), Duration::from_secs(2));
        assert_eq!(retry_delay(1, Some("600")), Duration::from_secs(30));
        assert_eq!(retry_delay(1, Some("NaN")), Duration::from_millis(250));
        assert_eq!(retry_delay(1, Some("inf")), Duration::from_millis(250));
        assert_eq!(retry_delay(1, Some("-5")), Duration::ZERO);
        assert_eq!(retry_delay(1, None), Duration::from_millis(250));
        assert_eq!(retry_delay(3, None), Duration::from_millis(1000));
        assert_eq!(
            retry_delay(2, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn cache_evicts_least_recent() {
        let c = Cache::new(2);
        let comp = |t: &str| Completion {
            text: t.into(),
            model: "m".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            cached: false,
            timing: Timing::default(),
        };
        let hour = Duration::from_secs(3600);
        c.put("a".into(), comp("a"));
        c.put("b".into(), comp("b"));
        assert!(c.get("a", hour).is_some());
        c.put("c".into(), comp("c"));
        assert!(c.get("b", hour).is_none(), "b was least recently used");
        assert!(c.get("a", hour).is_some() && c.get("c", hour).is_some());
        // An entry older than the agent's cache_ttl is no answer, and is dropped.
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("a", Duration::from_millis(1)).is_none());
        assert!(c.get("a", hour).is_none());
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn opens_after_the_threshold_fails_fast_then_one_trial_decides() {
        let t0 = Instant::now();
        let cool = Duration::from_secs(30);
        let mut b = Breaker::Closed { failures: 0 };
        for i in 0..4 {
            assert!(b.admit(t0).is_ok());
            b.record(Some("down"), t0, 5, cool);
            assert_eq!(b, Breaker::Closed { failures: i + 1 });
        }
        // A success in between starts the count again.
        b.record(None, t0, 5, cool);
        for _ in 0..5 {
            assert!(b.admit(t0).is_ok());
            b.record(Some("ollama: cannot reach"), t0, 5, cool);
        }
        assert_eq!(b.code(), 2);
        let wait = b.admit(t0 + Duration::from_secs(10)).unwrap_err();
        assert!((wait - 20.0).abs() < 0.01, "{wait}");
        // After the cooldown: one trial goes out, a second caller fails fast meanwhile.
        let later = t0 + cool;
        assert!(b.admit(later).is_ok());
        assert_eq!(b.code(), 1);
        assert!(b.admit(later).is_err());
        // The trial fails: open again for a whole cooldown.
        b.record(Some("still down"), later, 5, cool);
        assert_eq!(b.code(), 2);
        assert!(b.admit(later + Duration::from_secs(29)).is_err());
        // The next trial succeeds: closed.
        assert!(b.admit(later + cool).is_ok());
        b.record(None, later + cool, 5, cool);
        assert_eq!(b, Breaker::Closed { failures: 0 });
    }
}
