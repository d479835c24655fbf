//! An agent: its prompt template, its context tool, the providers it tries in order and
//! its admission limits. Execution gathers the tool's facts, renders the prompt and asks
//! the providers, local first, falling back on outages.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Gateway;
use super::accounting::Usage;
use super::llm::{Cache, Completion, LlmError, Provider};
use super::otel::Execution;
use super::tools;
use crate::model::gateway::AgentFile;

pub struct Agent {
    pub name: String,
    pub description: String,
    pub tool: String,
    pub provider: String,
    pub model: Option<String>,
    template: String,
    pub chain: Vec<Arc<Provider>>,
    pub concurrency: usize,
    /// The memory bound of the queue (see `AgentFile::queue`).
    pub queue: usize,
    /// How long a request may take from arrival to answer: the first provider's timeout.
    pub deadline: std::time::Duration,
    /// How long an identical answer is served from the cache (None: never).
    pub cache_ttl: Option<std::time::Duration>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Mean time an execution holds its slot (nanoseconds, moving average; 0: none yet).
    service_ns: std::sync::atomic::AtomicU64,
    /// Usage counters of the executions running now.
    pub live: Mutex<Vec<Arc<Usage>>>,
}

/// Why an execution did not produce an answer.
#[derive(Debug)]
pub enum ExecError {
    /// Every provider failed; the last error says why.
    Provider(LlmError),
    NoProvider,
}

/// An agent without a provider still answers (503) within this.
pub const DEFAULT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The in-process cache first, then Redis (whose hits warm the in-process one); an entry
/// older than `ttl` is no answer.
async fn cached(gw: &Gateway, key: &str, ttl: std::time::Duration) -> Option<Completion> {
    if let Some(hit) = gw.cache.get(key, ttl) {
        return Some(hit);
    }
    let bytes = gw
        .redis
        .as_ref()?
        .get(&format!("osmen:llm:{key}"))
        .await
        .ok()??;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let c = Completion {
        text: v["text"].as_str()?.to_string(),
        model: v["model"].as_str()?.to_string(),
        prompt_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
        cached: false,
        timing: Default::default(),
    };
    gw.cache.put(key.to_string(), c.clone());
    Some(c)
}

/// Keeps an execution's usage in the agent's live list until dropped.
pub struct LiveGuard<'a> {
    agent: &'a Agent,
    usage: Arc<Usage>,
}

impl<'a> LiveGuard<'a> {
    pub fn new(agent: &'a Agent, usage: Arc<Usage>) -> Self {
        agent
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(usage.clone());
        LiveGuard { agent, usage }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.agent
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|u| !Arc::ptr_eq(u, &self.usage));
    }
}

pub struct Outcome {
    pub completion: Completion,
    pub provider: String,
    pub facts: Arc<tools::Facts>,
}

impl Agent {
    /// The agent as its execution spans name it.
    pub fn identity(&self) -> super::otel::AgentIdentity<'_> {
        super::otel::AgentIdentity {
            name: &self.name,
            description: &self.description,
            models: self
                .chain
                .iter()
                .map(|p| {
                    let model = self.model.clone().unwrap_or_else(|| p.cfg.model.clone());
                    (p.name(), model)
                })
                .collect(),
        }
    }

    pub fn new(name: &str, f: &AgentFile, template: String, chain: Vec<Arc<Provider>>) -> Agent {
        let deadline = chain
            .first()
            .map(|p| p.cfg.timeout)
            .unwrap_or(DEFAULT_DEADLINE);
        Agent {
            name: name.to_string(),
            description: f.description.clone(),
            tool: f.tool.clone(),
            provider: f.provider.clone(),
            model: f.model.clone(),
            template,
            chain,
            concurrency: f.concurrency.max(1),
            queue: f.queue,
            deadline,
            cache_ttl: f
                .cache_ttl
                .as_deref()
                .and_then(|t| crate::model::units::parse_duration(t).ok()),
            slots: Arc::new(Semaphore::new(f.concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            service_ns: std::sync::atomic::AtomicU64::new(0),
            live: Mutex::new(Vec::new()),
        }
    }

    pub fn inflight(&self) -> usize {
        self.concurrency - self.slots.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// The mean time an execution holds a slot, once one has run.
    pub fn mean_service(&self) -> Option<std::time::Duration> {
        match self.service_ns.load(Ordering::Relaxed) {
            0 => None,
            n => Some(std::time::Duration::from_nanos(n)),
        }
    }

    /// Notes how long an execution held its slot (a moving average over about the last
    /// ten, so the estimate follows a provider that slows down).
    pub fn served(&self, held: std::time::Duration) {
        let new = held.as_nanos().min(u128::from(u64::MAX)) as u64;
        let _ = self
            .service_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    new.max(1)
                } else {
                    (old / 10 * 9 + new / 10).max(1)
                })
            });
    }

    /// The expected wait for a slot with `ahead` requests already waiting.
    pub fn expected_wait(&self, ahead: usize) -> std::time::Duration {
        let Some(mean) = self.mean_service() else {
            return std::time::Duration::ZERO;
        };
        mean.mul_f64((ahead + 1) as f64 / self.concurrency as f64)
    }

    /// Takes a slot, waiting while the request can still be served before its deadline
    /// (`deadline` from its arrival; the expected wait plus one execution must fit).
    /// Refused at once, with the expected wait, when it could not be served in time or the
    /// queue is at its memory bound; refused when the wait outlasts what is left.
    pub async fn admit(
        &self,
        arrived: Instant,
    ) -> Result<OwnedSemaphorePermit, std::time::Duration> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(p);
        }
        // Counted while waiting, and uncounted however the wait ends (a client that
        // disconnects drops this future half-way).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _w = Waiting(&self.waiting);
        let wait = self.expected_wait(before);
        let service = self.mean_service().unwrap_or_default();
        let left = self.deadline.saturating_sub(arrived.elapsed());
        if before >= self.queue || wait + service > left {
            return Err(wait.max(std::time::Duration::from_secs(1)));
        }
        // Waits no longer than leaves time for its own execution.
        let limit = left.saturating_sub(service);
        match tokio::time::timeout(limit, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(self
                .expected_wait(self.queued())
                .max(std::time::Duration::from_secs(1))),
        }
    }

    /// The facts the agent's tool gathers for this request. The machine's (system status
    /// with the stack, boot hardening) are shared between requests for up to a second;
    /// a focus session or a memory search is the request's own.
    pub async fn facts(&self, gw: &Gateway, key_id: &str, input: &str) -> Arc<tools::Facts> {
        match self.tool.as_str() {
            "system_status" => {
                gw.system_facts
                    .get(|| async {
                        let mut v = tools::system_status();
                        if let Some(probe) = &gw.stack {
                            v["stack"] = probe().await;
                        }
                        v
                    })
                    .await
            }
            "boot_hardening" => {
                gw.hardening_facts
                    .get(|| async { tools::boot_hardening() })
                    .await
            }
            "focus_session" => Arc::new(tools::Facts::new(gw.focus.handle(
                key_id,
                input,
                Instant::now(),
            ))),
            "memory_search" => {
                let (hits, mode, _) = gw.memory.search(input, 3).await;
                Arc::new(tools::Facts::new(json!({
                    "mode": mode.as_str(),
                    "notes": hits.iter().map(|h| json!({"id": h.id, "text": h.text, "score": h.score})).collect::<Vec<_>>(),
                })))
            }
            _ => Arc::new(tools::Facts::new(Value::Null)),
        }
    }

    pub fn render(
        &self,
        input: &str,
        facts: &tools::Facts,
        client_context: Option<&Value>,
    ) -> String {
        let client = client_context.map(|c| c.to_string());
        let mut out = String::with_capacity(
            self.template.len()
                + facts.text.len()
                + input.len()
                + client.as_ref().map_or(0, |c| c.len() + 20),
        );
        // One pass over the template: {{context}} and {{input}} replaced where they stand
        // (an input that itself holds "{{context}}" is not expanded).
        let mut rest = self.template.as_str();
        while let Some(at) = rest.find("{{") {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(t) = tail.strip_prefix("{{context}}") {
                out.push_str(&facts.text);
                if let Some(c) = &client {
                    out.push_str("\nClient context: ");
                    out.push_str(c);
                }
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{{input}}") {
                out.push_str(input);
                rest = t;
            } else {
                out.push_str("{{");
                rest = &tail[2..];
            }
        }
        out.push_str(rest);
        out
    }

    /// Gathers facts and asks the providers in order; an outage (unreachable, timeout,
    /// 429 or 5xx) moves on to the next provider, any other error is final. With
    /// OpenTelemetry on, the tool and each provider call are traced under `trace` and the
    /// calls counted in the GenAI histograms.
    pub async fn execute(
        &self,
        gw: &Gateway,
        key_id: &str,
        input: &str,
        client_context: Option<&Value>,
        trace: Option<&Execution>,
    ) -> Result<Outcome, ExecError> {
        let tool = trace.and_then(|t| gw.otel.as_deref()?.tool(t, &self.tool));
        let facts = self.facts(gw, key_id, input).await;
        if let Some(span) = tool {
            span.end();
        }
        let prompt = self.render(input, &facts, client_context);
        let system = format!(
            "You are {}, an OsMEN agent. {}",
            self.name, self.description
        );
        let mut last = None;
        for p in &self.chain {
            let model = self.model.clone().unwrap_or_else(|| p.cfg.model.clone());
            // The key is a digest of the whole prompt: computed only for a cached agent.
            let key = self
                .cache_ttl
                .map(|_| Cache::key(p.name(), &model, &system, &prompt))
                .unwrap_or_default();
            if let Some(ttl) = self.cache_ttl
                && let Some(mut hit) = cached(gw, &key, ttl).await
            {
                hit.cached = true;
                return Ok(Outcome {
                    completion: hit,
                    provider: p.name().to_string(),
                    facts,
                });
            }
            let call = gw.otel.as_deref().map(|o| o.call(trace, p, &model));
            let answer = p.chat(&model, &system, &prompt).await;
            if let Some(call) = call {
                call.end(&answer);
            }
            match answer {
                Ok(c) => {
                    let Some(ttl) = self.cache_ttl else {
                        return Ok(Outcome {
                            completion: c,
                            provider: p.name().to_string(),
                            facts,
                        });
                    };
                    gw.cache.put(key.clone(), c.clone());
                    if let Some(r) = &gw.redis {
                        let v = serde_json::json!({"text": c.text, "model": c.model,
                            "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens});
                        // A cache that cannot be written only costs a future miss.
                        let _ = r
                            .set_ex(&format!("osmen:llm:{key}"), v.to_string().as_bytes(), ttl)
                            .await;
                    }
                    return Ok(Outcome {
                        completion: c,
                        provider: p.name().to_string(),
                        facts,
                    });
                }
                Err(e) => {
                    let outage = e.is_outage();
                    last = Some(e);
                    if !outage {
                        break;
                    }
                }
            }
        }
        Err(last
            .map(ExecError::Provider)
            .unwrap_or(ExecError::NoProvider))
    }
}
