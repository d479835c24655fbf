//! What the gateway counts per agent: requests, latencies, errors, the models that
//! answered and what they cost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{ACTIVE_WINDOW, BUCKETS, Hist, Tally, Window, saw};
use crate::model::agent_error::ErrorKind;

/// The agent's last failed request: why (message cleaned for labels and screens), its
/// kind and when (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct LastError {
    pub message: String,
    pub kind: ErrorKind,
    pub unix: f64,
}

/// What one provider and model did for one agent.
#[derive(Debug, Default, Clone)]
pub struct ModelStats {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    /// Time spent in provider calls (for the mean latency per provider).
    pub seconds: f64,
    /// The last call's model load time (Ollama's `load_duration`).
    pub last_load: Option<f64>,
    /// Seconds since the Unix epoch of the last answer.
    pub last_used: f64,
}

/// One per-model figure of the exposition (None: nothing to report).
pub(super) type ModelFigure = dyn Fn(&ModelStats) -> Option<f64>;

/// Requests and cost per minute, for the rate behind the projections.
pub const PROJECTION_WINDOW: Duration = Duration::from_secs(3600);

pub struct AgentStats {
    pub requests: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub window: Window,
    pub buckets: [u64; BUCKETS.len()],
    pub duration_count: u64,
    pub duration_sum: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    pub cpu_seconds: f64,
    pub memory_peak: i64,
    pub inflight: i64,
    pub queued: i64,
    pub last_error: Option<LastError>,
    /// Requests and failures over the last minute (FAILING, the error share).
    pub outcomes: Tally,
    pub last_run: Option<Instant>,
    /// Request times over the last minute, for the request rate.
    pub recent: VecDeque<Instant>,
    /// Generation speed (tokens/s, kept at 1/1000 resolution) and time to first token.
    pub tokens_per_s: Window,
    pub tokens_per_s_sum: f64,
    pub ttft: Window,
    pub ttft_sum: f64,
    /// Answers served from the cache (no provider call, no tokens, no cost).
    pub cache_hits: u64,
    /// Waits for a slot (arrival to admission).
    pub queue_wait: Hist,
    /// Executions (admission to answer).
    pub execution: Hist,
    /// (provider, model) -> what it did for this agent.
    pub models: BTreeMap<(String, String), ModelStats>,
    /// Key ids that used the agent, with when they last did.
    pub users: HashMap<String, Instant>,
    /// (minute start, answered requests, cost) over the last hour.
    pub minutes: VecDeque<(Instant, u64, f64)>,
}

impl Default for AgentStats {
    fn default() -> Self {
        AgentStats {
            requests: BTreeMap::new(),
            errors: BTreeMap::new(),
            window: Window::default(),
            buckets: [0; BUCKETS.len()],
            duration_count: 0,
            duration_sum: 0.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: 0.0,
            cpu_seconds: 0.0,
            memory_peak: 0,
            inflight: 0,
            queued: 0,
            last_error: None,
            outcomes: Tally::default(),
            last_run: None,
            recent: VecDeque::new(),
            tokens_per_s: Window::scaled(1e3),
            tokens_per_s_sum: 0.0,
            ttft: Window::default(),
            ttft_sum: 0.0,
            cache_hits: 0,
            queue_wait: Hist::default(),
            execution: Hist::default(),
            models: BTreeMap::new(),
            users: HashMap::new(),
            minutes: VecDeque::new(),
        }
    }
}

/// One answered request, as the economics and speed figures need it.
pub struct Answer<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// None for a model without a price (local models cost nothing).
    pub cost: f64,
    pub cached: bool,
    pub timing: crate::gateway::llm::Timing,
    pub elapsed: Duration,
}

impl AgentStats {
    pub fn observe(&mut self, now: Instant, d: Duration) {
        self.window.record(now, d);
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i] += 1;
            }
        }
        self.duration_count += 1;
        self.duration_sum += s;
        self.last_run = Some(now);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
    }

    /// Counts an answered request: tokens, cost and speed by provider and model.
    pub fn answered(&mut self, now: Instant, unix: f64, a: &Answer) {
        let minute = Duration::from_secs(60);
        match self.minutes.back_mut() {
            Some((start, n, c)) if now.duration_since(*start) < minute => {
                *n += 1;
                *c += a.cost;
            }
            _ => self.minutes.push_back((now, 1, a.cost)),
        }
        while self
            .minutes
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) >= PROJECTION_WINDOW)
        {
            self.minutes.pop_front();
        }
        if a.cached {
            self.cache_hits += 1;
            return;
        }
        self.prompt_tokens += a.prompt_tokens;
        self.completion_tokens += a.completion_tokens;
        self.cost += a.cost;
        // Looked up before a key is made: the names are copied once per model.
        let key = (a.provider, a.model);
        let m = match self
            .models
            .iter_mut()
            .find(|((p, m), _)| (p.as_str(), m.as_str()) == key)
        {
            Some((_, m)) => m,
            None => self
                .models
                .entry((a.provider.to_string(), a.model.to_string()))
                .or_default(),
        };
        m.requests += 1;
        m.prompt_tokens += a.prompt_tokens;
        m.completion_tokens += a.completion_tokens;
        m.cost += a.cost;
        m.seconds += a.elapsed.as_secs_f64();
        m.last_used = unix;
        if let Some(l) = a.timing.load {
            m.last_load = Some(l.as_secs_f64());
        }
        if let Some(t) = a.timing.tokens_per_s.filter(|t| t.is_finite() && *t > 0.0) {
            self.tokens_per_s.record_value(now, t);
            self.tokens_per_s_sum += t;
        }
        if let Some(t) = a.timing.ttft {
            self.ttft.record(now, t);
            self.ttft_sum += t.as_secs_f64();
        }
    }

    /// Counts a failed request of `kind`; `message` is already cleaned.
    pub fn failed(&mut self, now: Instant, unix: f64, kind: ErrorKind, message: String) {
        *self.errors.entry(kind.label().into()).or_default() += 1;
        self.outcomes.record(now, true);
        self.last_error = Some(LastError {
            message,
            kind,
            unix,
        });
    }

    pub fn saw_user(&mut self, key_id: &str, now: Instant) {
        saw(&mut self.users, key_id, now);
    }

    /// Requests per active user: requests in the last ACTIVE_WINDOW over the keys that
    /// made them (None when nobody used the agent lately).
    pub fn per_user(&mut self, now: Instant) -> Option<f64> {
        self.users
            .retain(|_, t| now.duration_since(*t) <= ACTIVE_WINDOW);
        if self.users.is_empty() {
            return None;
        }
        let n = self
            .minutes
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) < ACTIVE_WINDOW)
            .map(|(_, n, _)| *n)
            .sum::<u64>();
        Some(n as f64 / self.users.len() as f64)
    }

    /// (requests, cost) per second over the last hour, or since `since` when shorter
    /// (never under a minute, so one early request does not project a fortune).
    pub fn projection_rate(&self, now: Instant, since: Instant) -> (f64, f64) {
        let span = now
            .duration_since(since)
            .clamp(Duration::from_secs(60), PROJECTION_WINDOW)
            .as_secs_f64();
        let (n, c) = self
            .minutes
            .iter()
            .filter(|(t, _, _)| now.duration_since(*t) < PROJECTION_WINDOW)
            .fold((0u64, 0.0), |(n, c), (_, n2, c2)| (n + n2, c + c2));
        (n as f64 / span, c / span)
    }

    /// Requests per second over the last minute.
    pub fn rate(&mut self, now: Instant) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        self.recent.len() as f64 / 60.0
    }
}
