//! Ollama's `/api/chat`, non-streaming: the request written from the borrowed prompt and
//! the answer read straight into the fields used, with Ollama's own speed counters.

use std::time::Duration;

use super::{Completion, Timing};

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
pub(super) struct OllamaAnswer {
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
    pub(super) fn completion(self, model: &str) -> Option<Completion> {
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

/// The `/api/chat` request, written straight from the borrowed prompt (no JSON tree, no
/// copy of it).
pub(super) fn request(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    system: &str,
    user: &str,
) -> reqwest::RequestBuilder {
    client.post(format!("{base}/api/chat")).json(&OllamaChat {
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
    })
}
