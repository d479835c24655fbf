//! OpenAI-compatible `/v1/chat/completions` (OpenAI, LM Studio, vLLM, llama.cpp), streamed:
//! the server-sent events read chunk by chunk, the first token and the speed timed here.

use serde_json::{Value, json};

use super::{Completion, LlmError, Provider, Timing, u64_at};

/// A server-sent event whose data is not JSON.
#[derive(Debug, thiserror::Error)]
#[error("unreadable stream chunk: {0}")]
pub(super) struct UnreadableChunk(serde_json::Error);

/// What a streamed OpenAI-compatible answer came to: its text, usage, and when the first
/// and last content chunks arrived.
#[derive(Debug, Default)]
pub(super) struct Streamed {
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
    pub(super) fn line(
        &mut self,
        line: &str,
        at: std::time::Instant,
    ) -> Result<(), UnreadableChunk> {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            return Ok(());
        };
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(UnreadableChunk)?;
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

impl Provider {
    /// The completion a streamed answer came to, with its measured first-token time and
    /// generation speed; `bad` holds the first unreadable chunk's error, if any.
    pub(super) fn streamed_completion(
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

/// The `/chat/completions` request, streamed with its usage.
pub(super) fn request(
    client: &reqwest::Client,
    base: &str,
    api_key: Option<&str>,
    model: &str,
    system: &str,
    user: &str,
) -> reqwest::RequestBuilder {
    let mut r = client
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
    if let Some(k) = api_key {
        r = r.bearer_auth(k);
    }
    r
}

/// The text and token counts of a non-streamed answer.
pub(super) fn read(v: &Value) -> Option<(String, u64, u64)> {
    Some((
        v.pointer("/choices/0/message/content")?
            .as_str()?
            .to_string(),
        u64_at(v, "/usage/prompt_tokens"),
        u64_at(v, "/usage/completion_tokens"),
    ))
}
