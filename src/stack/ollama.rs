//! The stack's Ollama as osmen drives it: what is installed (`/api/tags`), pulling a model
//! with its streamed progress (`/api/pull`), deriving one with a context size
//! (`/api/create` with `parameters.num_ctx`), and loading or unloading a model for a
//! keep-alive (`/api/generate` with no prompt: `keep_alive` 0 unloads, a negative one pins).
//! Every request is bounded in time: a connection in 5 s, a short request in 30 s, and a
//! pull or create while Ollama keeps sending progress (120 s of silence ends it).

use std::time::Duration;

use crate::model::progress::{ImageEvent, LayerEvent};

const CONNECT: Duration = Duration::from_secs(5);
/// The first pause while a just-started Ollama refuses connections, doubled up to `MAX_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
const SHORT: Duration = Duration::from_secs(30);
/// A pull or create that sends nothing for this long has stalled.
const SILENCE: Duration = Duration::from_secs(120);
/// A progress line longer than this is not Ollama's.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OllamaError {
    #[error("cannot reach Ollama at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// A just-started Ollama that still refused connections when the wait for it ended.
    #[error("Ollama did not answer at {url} in {} s of waiting (last try: {detail})", .waited.as_secs())]
    NoAnswer {
        url: String,
        waited: Duration,
        detail: String,
    },
    /// Ollama's own words (`pull model manifest: file does not exist`).
    #[error("Ollama says: {message}")]
    Said { message: String },
    #[error("Ollama at {url} answered {what} with something that is not its API: {detail}")]
    Protocol {
        url: String,
        what: &'static str,
        detail: String,
    },
}

/// How long a model stays loaded after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Unload now (`keep_alive: 0`).
    Unload,
    /// Keep it loaded until Ollama is stopped (`keep_alive: -1`).
    Pin,
    /// Keep it for this long.
    For(Duration),
}

impl KeepAlive {
    fn json(self) -> serde_json::Value {
        match self {
            KeepAlive::Unload => 0.into(),
            KeepAlive::Pin => (-1).into(),
            KeepAlive::For(d) => format!("{}s", d.as_secs()).into(),
        }
    }
}

/// Ollama's full names live with the compose `models:` that also compares them.
pub use crate::stack::compose::models::full_name;

pub struct OllamaApi {
    base: String,
    client: reqwest::Client,
}

impl OllamaApi {
    pub fn new(base: &str) -> OllamaApi {
        OllamaApi {
            base: base.trim_end_matches('/').to_string(),
            client: crate::http::client(|b| b.connect_timeout(CONNECT).read_timeout(SILENCE)),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: reqwest::Error) -> OllamaError {
        OllamaError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        }
    }

    /// A JSON request; Ollama's `{"error": ...}` (with any status) becomes `Said`.
    async fn post(
        &self,
        path: &str,
        what: &'static str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, OllamaError> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .timeout(SHORT)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| self.unreachable(e))?;
        self.answer(what, status, &text)
    }

    fn answer(
        &self,
        what: &'static str,
        status: reqwest::StatusCode,
        text: &str,
    ) -> Result<serde_json::Value, OllamaError> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| OllamaError::Protocol {
                url: self.base.clone(),
                what,
                detail: format!("HTTP {status}: {e}"),
            })?;
        if let Some(m) = v["error"].as_str() {
            return Err(OllamaError::Said {
                message: m.to_string(),
            });
        }
        if !status.is_success() {
            return Err(OllamaError::Protocol {
                url: self.base.clone(),
                what,
                detail: format!("HTTP {status}"),
            });
        }
        Ok(v)
    }

    /// Waits, for up to `bound`, until Ollama answers at all: a just-started Ollama (the
    /// official image has no healthcheck to wait on) refuses connections until it listens.
    /// Any HTTP answer ends the wait; `waiting` is called once, at the first refusal.
    pub async fn wait_answering(
        &self,
        bound: Duration,
        mut waiting: impl FnMut(),
    ) -> Result<(), OllamaError> {
        let start = std::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut told = false;
        loop {
            let sent = self
                .client
                .get(format!("{}/api/version", self.base))
                .timeout(CONNECT)
                .send()
                .await;
            let e = match sent {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if start.elapsed() + pause > bound {
                return Err(OllamaError::NoAnswer {
                    url: self.base.clone(),
                    waited: start.elapsed(),
                    detail: e.to_string(),
                });
            }
            if !told {
                told = true;
                waiting();
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// The installed models' names.
    pub async fn installed(&self) -> Result<Vec<String>, OllamaError> {
        let r = self
            .client
            .get(format!("{}/api/tags", self.base))
            .timeout(SHORT)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| self.unreachable(e))?;
        let v = self.answer("/api/tags", status, &text)?;
        Ok(v["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str().or(m["model"].as_str()))
            .map(String::from)
            .collect())
    }

    /// Reads a streamed answer (one JSON object per line), passing each to `each`; ends
    /// at Ollama's `success`, fails with its `error`.
    async fn stream(
        &self,
        path: &str,
        what: &'static str,
        body: serde_json::Value,
        mut each: impl FnMut(&serde_json::Value),
    ) -> Result<(), OllamaError> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = r.status();
        let mut r = r;
        let mut buf: Vec<u8> = Vec::new();
        let mut done = false;
        let mut take = |line: &[u8], done: &mut bool| -> Result<(), OllamaError> {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            if line.is_empty() {
                return Ok(());
            }
            let v = self.answer(what, status, line)?;
            if v["status"].as_str() == Some("success") {
                *done = true;
            }
            each(&v);
            Ok(())
        };
        while let Some(chunk) = r.chunk().await.map_err(|e| self.unreachable(e))? {
            buf.extend_from_slice(&chunk);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                take(&line, &mut done)?;
            }
            if buf.len() > MAX_LINE {
                return Err(OllamaError::Protocol {
                    url: self.base.clone(),
                    what,
                    detail: format!("a line over {MAX_LINE} bytes"),
                });
            }
        }
        take(&buf, &mut done)?;
        if done {
            Ok(())
        } else {
            Err(OllamaError::Protocol {
                url: self.base.clone(),
                what,
                detail: "the stream ended before `success`".into(),
            })
        }
    }

    /// Pulls `model`, reporting progress as an image pull's (`model NAME` as the image).
    pub async fn pull(
        &self,
        model: &str,
        services: &[String],
        sink: &crate::stack::provision::ImageSink,
    ) -> Result<(), OllamaError> {
        let image = format!("model {model}");
        sink(ImageEvent::PullStarted {
            image: image.clone(),
            services: services.to_vec(),
        });
        let body = serde_json::json!({"model": model, "stream": true});
        self.stream("/api/pull", "/api/pull", body, |v| {
            // Lines without a digest (pulling manifest, verifying, writing manifest) are
            // steps, not layers.
            let Some(layer) = v["digest"]
                .as_str()
                .map(|d| d.trim_start_matches("sha256:").chars().take(12).collect())
            else {
                return;
            };
            let (current, total) = (v["completed"].as_u64(), v["total"].as_u64());
            let status = match (current, total) {
                (Some(c), Some(t)) if c >= t && t > 0 => "Pull complete",
                _ => "Downloading",
            };
            sink(ImageEvent::Layer {
                image: image.clone(),
                event: LayerEvent {
                    layer,
                    status: status.to_string(),
                    current,
                    total,
                },
            });
        })
        .await?;
        sink(ImageEvent::Pulled { image });
        Ok(())
    }

    /// Creates `name` from `from` with `num_ctx` as its context length.
    pub async fn create_with_context(
        &self,
        name: &str,
        from: &str,
        num_ctx: u32,
    ) -> Result<(), OllamaError> {
        let body = serde_json::json!({
            "model": name, "from": from, "parameters": {"num_ctx": num_ctx}, "stream": true
        });
        self.stream("/api/create", "/api/create", body, |_| {})
            .await
    }

    /// Copies `from` as `to` (a model served under the name `name:` gives it).
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), OllamaError> {
        let r = self
            .client
            .post(format!("{}/api/copy", self.base))
            .timeout(SHORT)
            .json(&serde_json::json!({"source": from, "destination": to}))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            return Ok(());
        }
        self.answer("/api/copy", status, &text).map(|_| ())
    }

    /// Loads (or unloads) `model` for `keep` (None: Ollama's configured keep-alive), as
    /// `ollama run` with no prompt does.
    pub async fn keep_alive(
        &self,
        model: &str,
        keep: Option<KeepAlive>,
    ) -> Result<(), OllamaError> {
        let mut body = serde_json::json!({"model": model, "stream": false});
        if let Some(k) = keep {
            body["keep_alive"] = k.json();
        }
        self.post("/api/generate", "/api/generate", body)
            .await
            .map(|_| ())
    }
}

/// Makes sure Ollama serves `def`: pulled when missing, and the derived model with its
/// context size created when one is set. Returns what was done, for the journal.
pub async fn ensure(
    api: &OllamaApi,
    def: &crate::stack::compose::models::ModelDef,
    services: &[String],
    sink: &crate::stack::provision::ImageSink,
) -> Result<String, OllamaError> {
    let installed: Vec<String> = api
        .installed()
        .await?
        .iter()
        .map(|n| full_name(n))
        .collect();
    let has = |n: &str| installed.contains(&full_name(n));
    if has(&def.served) {
        return Ok(format!("model {} present", def.served));
    }
    let mut did = Vec::new();
    if !has(&def.model) {
        api.pull(&def.model, services, sink).await?;
        did.push(format!("pulled {}", def.model));
    }
    match def.context_size {
        Some(ctx) if def.served != def.model => {
            api.create_with_context(&def.served, &def.model, ctx)
                .await?;
            did.push(format!("created {} (num_ctx {ctx})", def.served));
            sink(ImageEvent::Note(format!(
                "created model {} (num_ctx {ctx}) for {}",
                def.served,
                services.join(", ")
            )));
        }
        _ if def.served != def.model => {
            api.copy(&def.model, &def.served).await?;
            did.push(format!("copied to {}", def.served));
            sink(ImageEvent::Note(format!(
                "copied model {} as {} for {}",
                def.model,
                def.served,
                services.join(", ")
            )));
        }
        _ => {}
    }
    Ok(format!("model {}", did.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port nothing listens on: waited on for the bound, then named with the wait.
    #[tokio::test]
    async fn an_ollama_that_never_listens_is_waited_on_then_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = OllamaApi::new(&format!("http://127.0.0.1:{port}"));
        let mut told = 0;
        let start = std::time::Instant::now();
        let e = api
            .wait_answering(Duration::from_secs(1), || told += 1)
            .await
            .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(500), "it waited");
        assert_eq!(told, 1);
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "Ollama did not answer at http://127.0.0.1:{port} in 1 s of waiting"
            )) || text.starts_with(&format!(
                "Ollama did not answer at http://127.0.0.1:{port} in 0 s of waiting"
            )),
            "{text}"
        );
    }

    #[test]
    fn names_and_keep_alives_are_ollamas() {
        assert_eq!(full_name("llama3.2"), "llama3.2:latest");
        assert_eq!(full_name("llama3.2:1b"), "llama3.2:1b");
        assert_eq!(full_name("registry:5000/m"), "registry:5000/m:latest");
        assert_eq!(KeepAlive::Unload.json(), serde_json::json!(0));
        assert_eq!(KeepAlive::Pin.json(), serde_json::json!(-1));
        assert_eq!(
            KeepAlive::For(Duration::from_secs(300)).json(),
            serde_json::json!("300s")
        );
    }
}
