//! Anthropic's `/v1/messages`, non-streaming.

use serde_json::{Value, json};

use super::u64_at;

/// The `/v1/messages` request.
pub(super) fn request(
    client: &reqwest::Client,
    base: &str,
    api_key: Option<&str>,
    model: &str,
    system: &str,
    user: &str,
) -> reqwest::RequestBuilder {
    let mut r = client
        .post(format!("{base}/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": model,
            "max_tokens": 1024,
            "system": system,
            "messages": [{"role": "user", "content": user}]
        }));
    if let Some(k) = api_key {
        r = r.header("x-api-key", k);
    }
    r
}

/// The text (its text blocks joined) and token counts of an answer.
pub(super) fn read(v: &Value) -> Option<(String, u64, u64)> {
    Some((
        v.get("content")?
            .as_array()?
            .iter()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        u64_at(v, "/usage/input_tokens"),
        u64_at(v, "/usage/output_tokens"),
    ))
}
