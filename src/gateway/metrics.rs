//! The gateway's own metrics, rendered as Prometheus text. Latency quantiles are the true
//! quantiles of the observed latencies over a sliding window (HDR histograms, 3
//! significant digits), not guesses from buckets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::model::agent_error::{
    ErrorKind, LAST_ERROR_INFO_METRIC, LAST_ERROR_TIMESTAMP_METRIC, WINDOW_ERRORS_METRIC,
    WINDOW_REQUESTS_METRIC,
};
use crate::model::metric::{
    ACTIVE_USERS, AGENT_COST_PROJECTION_MONTHLY_DOLLARS, AGENT_CPU_SECONDS_TOTAL,
    AGENT_DURATION_SECONDS, AGENT_MEMORY_BYTES, AGENT_MEMORY_PEAK_BYTES,
    AGENT_MODEL_COMPLETION_TOKENS_TOTAL, AGENT_MODEL_COST_DOLLARS_TOTAL, AGENT_MODEL_INFO,
    AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS, AGENT_MODEL_LOAD_SECONDS,
    AGENT_MODEL_PROMPT_TOKENS_TOTAL, AGENT_MODEL_REQUESTS_TOTAL, AGENT_MODEL_SECONDS_TOTAL,
    AGENT_REQUESTS_PER_ACTIVE_USER, AGENT_REQUESTS_PROJECTION_DAILY, AGENT_TOKENS_PER_SECOND,
    AGENT_TTFT_SECONDS, CACHE_HITS_TOTAL, ERRORS_TOTAL, INFLIGHT, LLM_COST_DOLLARS_TOTAL,
    PROCESS_HEAP_BYTES, PROJECTION_WINDOW_SECONDS, QUEUE_DEPTH, REQUEST_DURATION_SECONDS,
    REQUESTS_TOTAL, TOKENS_USED_TOTAL,
};

/// The sliding window for the summary quantiles: SLOTS slots of SLOT each.
pub const SLOT: Duration = Duration::from_secs(10);
pub const SLOTS: usize = 6;
/// Bucket bounds (seconds) of `osmen_agent_duration_seconds`.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];
/// A cumulative histogram over `BUCKETS`, as Prometheus exposes it.
#[derive(Debug, Clone, Default)]
pub struct Hist {
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Hist {
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    /// Writes the family's `_bucket`, `_sum` and `_count` lines for one agent.
    pub fn write(&self, o: &mut String, family: &str, agent: &str) {
        write_histogram(o, family, agent, &self.buckets, self.count, self.sum);
    }
}

/// One agent's series of a histogram family over `BUCKETS`: `_bucket` lines (cumulative
/// counts, then `+Inf`), `_sum` and `_count`.
fn write_histogram(
    o: &mut String,
    family: &str,
    agent: &str,
    buckets: &[u64; BUCKETS.len()],
    count: u64,
    sum: f64,
) {
    let agent = esc(agent);
    for (b, c) in BUCKETS.iter().zip(buckets.iter()) {
        let _ = writeln!(o, "{family}_bucket{{agent=\"{agent}\",le=\"{b}\"}} {c}");
    }
    let _ = writeln!(
        o,
        "{family}_bucket{{agent=\"{agent}\",le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(o, "{family}_sum{{agent=\"{agent}\"}} {sum}");
    let _ = writeln!(o, "{family}_count{{agent=\"{agent}\"}} {count}");
}

/// Time a request waited for a slot, from its arrival.
pub const QUEUE_WAIT_METRIC: &str = crate::model::metric::AGENT_QUEUE_WAIT_SECONDS;
/// Time an execution held its slot: the tool's facts and the provider call(s).
pub const EXECUTION_METRIC: &str = crate::model::metric::AGENT_EXECUTION_SECONDS;
/// Every HTTP answer of the gateway by status code (401s and 429s included).
pub const RESPONSES_METRIC: &str = crate::model::metric::HTTP_RESPONSES_TOTAL;

/// A key counts as an active user for this long after its last request.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(300);

fn new_hist() -> Histogram<u64> {
    // Microseconds from 1 us to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Marks a key as seen now (its name copied only the first time) and forgets the keys
/// not seen within ACTIVE_WINDOW.
fn saw(users: &mut HashMap<String, Instant>, key_id: &str, now: Instant) {
    match users.get_mut(key_id) {
        Some(t) => *t = now,
        None => {
            users.insert(key_id.to_string(), now);
        }
    }
    users.retain(|_, t| now.duration_since(*t) <= ACTIVE_WINDOW);
}

/// Values over the last SLOTS x SLOT, for quantiles: latencies in seconds (kept in
/// microseconds), or any other positive value at a chosen resolution.
pub struct Window {
    slots: VecDeque<(Instant, Histogram<u64>)>,
    /// The sum of the slots, kept as values come and slots go, so that reading the
    /// quantiles merges nothing (a merge allocated and zeroed a 188 KB histogram per
    /// window per read: most of the cost of `GET /api/v1/agents/status`). None while the
    /// window is empty.
    total: Option<Histogram<u64>>,
    /// Histogram units per value unit (1e6: seconds kept as microseconds).
    scale: f64,
}

impl Default for Window {
    fn default() -> Self {
        Window::scaled(1e6)
    }
}

impl Window {
    /// A window keeping values at 1/scale resolution, up to 3.6e9/scale.
    pub fn scaled(scale: f64) -> Window {
        Window {
            slots: VecDeque::new(),
            total: None,
            scale,
        }
    }

    pub fn record(&mut self, now: Instant, d: Duration) {
        self.record_value(now, d.as_secs_f64());
    }

    pub fn record_value(&mut self, now: Instant, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.expire(now);
        let fresh = self
            .slots
            .back()
            .is_none_or(|(start, _)| now.duration_since(*start) >= SLOT);
        if fresh {
            self.slots.push_back((now, new_hist()));
        }
        if let Some((_, h)) = self.slots.back_mut() {
            let units = ((v * self.scale).round().max(0.0) as u64).clamp(1, 3_600_000_000);
            let _ = h.record(units);
            let _ = self.total.get_or_insert_with(new_hist).record(units);
        }
    }

    fn expire(&mut self, now: Instant) {
        let span = SLOT * SLOTS as u32;
        while self
            .slots
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) >= span)
        {
            let Some((_, gone)) = self.slots.pop_front() else {
                break;
            };
            if self.slots.is_empty() {
                self.total = None;
            } else if let Some(t) = &mut self.total
                && t.subtract(&gone).is_err()
            {
                // Cannot happen while the total is the sum of the slots; if it ever
                // does, the total is rebuilt from the slots rather than left wrong.
                let mut sum = new_hist();
                for (_, h) in &self.slots {
                    let _ = sum.add(h);
                }
                *t = sum;
            }
        }
    }

    /// (quantile -> seconds, count) over the window.
    pub fn quantiles(&mut self, now: Instant, qs: &[f64]) -> (Vec<f64>, u64) {
        self.expire(now);
        let n = self.total.as_ref().map_or(0, |t| t.len());
        let v = qs
            .iter()
            .map(|q| match &self.total {
                Some(t) if n > 0 => t.value_at_quantile(*q) as f64 / self.scale,
                // No observation in the window: Prometheus' convention is NaN.
                _ => f64::NAN,
            })
            .collect();
        (v, n)
    }
}

/// Requests and failed requests over the last SLOTS x SLOT, in slots (bounded: SLOTS
/// pairs of counters per agent, whatever the rate).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    slots: VecDeque<(Instant, u64, u64)>,
}

impl Tally {
    pub fn record(&mut self, now: Instant, failed: bool) {
        self.expire(now);
        match self.slots.back_mut() {
            Some((start, n, e)) if now.duration_since(*start) < SLOT => {
                *n += 1;
                *e += u64::from(failed);
            }
            _ => self.slots.push_back((now, 1, u64::from(failed))),
        }
    }

    fn expire(&mut self, now: Instant) {
        let span = SLOT * SLOTS as u32;
        while self
            .slots
            .front()
            .is_some_and(|(start, _, _)| now.duration_since(*start) >= span)
        {
            self.slots.pop_front();
        }
    }

    /// (requests, failed requests) in the window.
    pub fn totals(&mut self, now: Instant) -> (u64, u64) {
        self.expire(now);
        self.slots
            .iter()
            .fold((0, 0), |(n, e), (_, n2, e2)| (n + n2, e + e2))
    }
}

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
type ModelFigure = dyn Fn(&ModelStats) -> Option<f64>;

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
    pub timing: super::llm::Timing,
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

pub struct Metrics {
    pub agents: Mutex<BTreeMap<String, AgentStats>>,
    /// HTTP status code -> answers given.
    pub responses: Mutex<BTreeMap<u16, u64>>,
    users: Mutex<HashMap<String, Instant>>,
    /// Each agent's providers and models in the order it tries them.
    chains: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    started: Instant,
}

impl Metrics {
    /// Counts one HTTP answer.
    pub fn answered_http(&self, code: u16) {
        *self
            .responses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            agents: Mutex::default(),
            responses: Mutex::default(),
            users: Mutex::default(),
            chains: Mutex::default(),
            started: Instant::now(),
        }
    }
}

/// Days in the monthly projection.
pub const MONTH_DAYS: f64 = 30.0;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn with_agents(names: &[String]) -> Metrics {
        let m = Metrics::default();
        {
            let mut a = m.agents.lock().unwrap_or_else(|p| p.into_inner());
            for n in names {
                a.entry(n.clone()).or_default();
            }
        }
        m
    }

    /// Records which providers and models serve an agent, primary first.
    pub fn set_chain(&self, agent: &str, chain: Vec<(String, String)>) {
        self.chains
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.to_string(), chain);
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn agent<R>(&self, name: &str, f: impl FnOnce(&mut AgentStats) -> R) -> R {
        let mut a = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        // The name is copied only the first time an agent is seen.
        if let Some(s) = a.get_mut(name) {
            return f(s);
        }
        f(a.entry(name.to_string()).or_default())
    }

    pub fn saw_user(&self, key_id: &str, now: Instant) {
        saw(
            &mut self.users.lock().unwrap_or_else(|p| p.into_inner()),
            key_id,
            now,
        );
    }

    pub fn active_users(&self, now: Instant) -> usize {
        let mut u = self.users.lock().unwrap_or_else(|p| p.into_inner());
        u.retain(|_, t| now.duration_since(*t) <= ACTIVE_WINDOW);
        u.len()
    }

    /// Prometheus text exposition; `live` maps agents to the live bytes of their running
    /// executions.
    pub fn render(&self, now: Instant, live: &BTreeMap<String, i64>) -> String {
        let mut o = String::new();
        let users = self.active_users(now);
        let mut a = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        self.render_requests(&mut o, &mut a, now);
        self.render_failures(&mut o, &mut a, now);
        render_usage(&mut o, &a, users, live);
        self.render_economics(&mut o, &mut a, now);
        if let Some((in_use, free)) = super::accounting::heap_bytes() {
            let mut f = Family::new(
                &mut o,
                PROCESS_HEAP_BYTES,
                "gauge",
                "The whole process's heap by the allocator's account: in use, and freed but kept.",
            );
            f.sample(&[("state", "in_use")], in_use);
            f.sample(&[("state", "free")], free);
        }
        o
    }

    /// Requests by outcome, their latency (true quantiles and histograms), the HTTP
    /// answers and the errors by kind.
    fn render_requests(&self, o: &mut String, a: &mut BTreeMap<String, AgentStats>, now: Instant) {
        let mut f = Family::new(o, REQUESTS_TOTAL, "counter", "Agent requests by outcome.");
        for (n, s) in a.iter() {
            for (status, c) in &s.requests {
                f.sample(&[("agent", n), ("status", status)], c);
            }
        }
        let mut f = Family::new(
            o,
            REQUEST_DURATION_SECONDS,
            "summary",
            "Agent request latency over the last minute (true quantiles).",
        );
        for (n, s) in a.iter_mut() {
            let (q, count) = s.window.quantiles(now, &[0.5, 0.95, 0.99]);
            f.quantiles(n, q);
            f.sample_of("_sum", &[("agent", n)], s.duration_sum);
            f.sample_of("_count", &[("agent", n)], s.duration_count.max(count));
        }
        let mut f = Family::new(
            o,
            AGENT_DURATION_SECONDS,
            "histogram",
            "Agent execution time.",
        );
        for (n, s) in a.iter() {
            write_histogram(
                f.out(),
                AGENT_DURATION_SECONDS,
                n,
                &s.buckets,
                s.duration_count,
                s.duration_sum,
            );
        }
        let mut f = Family::new(
            o,
            QUEUE_WAIT_METRIC,
            "histogram",
            "Time a request waited for a slot, from its arrival (part of its latency).",
        );
        for (n, s) in a.iter() {
            s.queue_wait.write(f.out(), QUEUE_WAIT_METRIC, n);
        }
        let mut f = Family::new(
            o,
            EXECUTION_METRIC,
            "histogram",
            "Time an execution held its slot: the tool's facts and the provider call(s).",
        );
        for (n, s) in a.iter() {
            s.execution.write(f.out(), EXECUTION_METRIC, n);
        }
        let mut f = Family::new(
            o,
            RESPONSES_METRIC,
            "counter",
            "Every HTTP answer of the gateway by status code.",
        );
        for (code, c) in self
            .responses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f.sample(&[("code", &code.to_string())], c);
        }
        let mut f = Family::new(o, ERRORS_TOTAL, "counter", "Agent errors by kind.");
        for (n, s) in a.iter() {
            for (kind, c) in &s.errors {
                f.sample(&[("agent", n), ("kind", kind)], c);
            }
        }
    }

    /// The last minute's requests and failures, and each agent's last error: when, its
    /// kind, and its message (one series per agent, the message bounded and masked).
    fn render_failures(&self, o: &mut String, a: &mut BTreeMap<String, AgentStats>, now: Instant) {
        let totals: Vec<(String, (u64, u64))> = a
            .iter_mut()
            .map(|(n, s)| (n.clone(), s.outcomes.totals(now)))
            .collect();
        let mut f = Family::new(
            o,
            WINDOW_REQUESTS_METRIC,
            "gauge",
            "Requests over the last minute, answered or not.",
        );
        for (n, (r, _)) in &totals {
            f.sample(&[("agent", n)], r);
        }
        let mut f = Family::new(
            o,
            WINDOW_ERRORS_METRIC,
            "gauge",
            "Failed requests over the last minute (any kind of osmen_errors_total).",
        );
        for (n, (_, e)) in &totals {
            f.sample(&[("agent", n)], e);
        }
        let mut f = Family::new(
            o,
            LAST_ERROR_TIMESTAMP_METRIC,
            "gauge",
            "When the agent's last failed request failed (unix seconds), by its kind.",
        );
        for (n, s) in a.iter() {
            if let Some(e) = &s.last_error {
                f.sample(&[("agent", n), ("kind", e.kind.label())], e.unix);
            }
        }
        let mut f = Family::new(
            o,
            LAST_ERROR_INFO_METRIC,
            "gauge",
            "The agent's last error message (URL credentials and keys masked, at most 200 characters).",
        );
        for (n, s) in a.iter() {
            if let Some(e) = &s.last_error {
                f.sample(
                    &[
                        ("agent", n),
                        ("kind", e.kind.label()),
                        ("message", &e.message),
                    ],
                    1,
                );
            }
        }
    }

    /// Speed and economics: tokens/s and time to first token (true quantiles), the
    /// models serving each agent, their tokens, cost and time, and the projections.
    fn render_economics(&self, o: &mut String, a: &mut BTreeMap<String, AgentStats>, now: Instant) {
        for (family, help, pick) in [
            (
                AGENT_TOKENS_PER_SECOND,
                "Completion tokens per second of generation, per answer (true quantiles over the last minute).",
                0,
            ),
            (
                AGENT_TTFT_SECONDS,
                "Time to first token per answer (true quantiles over the last minute).",
                1,
            ),
        ] {
            let mut f = Family::new(o, family, "summary", help);
            for (n, s) in a.iter_mut() {
                let (sum, w) = if pick == 0 {
                    (s.tokens_per_s_sum, &mut s.tokens_per_s)
                } else {
                    (s.ttft_sum, &mut s.ttft)
                };
                let (q, count) = w.quantiles(now, &[0.5, 0.95, 0.99]);
                f.quantiles(n, q);
                f.sample_of("_sum", &[("agent", n)], sum);
                f.sample_of("_count", &[("agent", n)], count);
            }
        }
        per_agent(
            o,
            a,
            CACHE_HITS_TOTAL,
            "counter",
            "Answers served from the response cache (no tokens, no cost).",
            |s| s.cache_hits,
        );
        let mut f = Family::new(
            o,
            AGENT_MODEL_INFO,
            "gauge",
            "The providers and models an agent tries, in order (role primary or fallback).",
        );
        let chains = self.chains.lock().unwrap_or_else(|p| p.into_inner());
        for (n, chain) in chains.iter() {
            for (i, (p, m)) in chain.iter().enumerate() {
                let role = if i == 0 { "primary" } else { "fallback" };
                f.sample(
                    &[
                        ("agent", n),
                        ("provider", p),
                        ("model", m),
                        ("role", role),
                        ("order", &i.to_string()),
                    ],
                    1,
                );
            }
        }
        drop(chains);
        render_models(o, a);
        self.render_projections(o, a, now);
    }

    /// Requests per active user, and requests and cost projected at the current rate.
    fn render_projections(
        &self,
        o: &mut String,
        a: &mut BTreeMap<String, AgentStats>,
        now: Instant,
    ) {
        let mut f = Family::new(
            o,
            AGENT_REQUESTS_PER_ACTIVE_USER,
            "gauge",
            "Answered requests in the last 5 minutes per API key that used the agent.",
        );
        for (n, s) in a.iter_mut() {
            if let Some(v) = s.per_user(now) {
                f.sample(&[("agent", n)], v);
            }
        }
        let span = now
            .duration_since(self.started)
            .clamp(Duration::from_secs(60), PROJECTION_WINDOW);
        Family::new(
            o,
            PROJECTION_WINDOW_SECONDS,
            "gauge",
            "The span the projections' rates are measured over (the last hour, or since start).",
        )
        .sample(&[], span.as_secs_f64());
        let mut f = Family::new(
            o,
            AGENT_REQUESTS_PROJECTION_DAILY,
            "gauge",
            "Answered requests per day at the current rate.",
        );
        let rates: Vec<(String, (f64, f64))> = a
            .iter()
            .map(|(n, s)| (n.clone(), s.projection_rate(now, self.started)))
            .collect();
        for (n, (r, _)) in &rates {
            f.sample(&[("agent", n)], r * 86400.0);
        }
        let mut f = Family::new(
            o,
            AGENT_COST_PROJECTION_MONTHLY_DOLLARS,
            "gauge",
            "Cost per 30 days at the current rate.",
        );
        for (n, (_, c)) in &rates {
            f.sample(&[("agent", n)], c * 86400.0 * MONTH_DAYS);
        }
    }
}

/// One family of the exposition: its `# HELP` and `# TYPE` lines, then its samples,
/// each `name{label="value",...} value` with the label values escaped.
struct Family<'o> {
    o: &'o mut String,
    name: &'o str,
}

impl<'o> Family<'o> {
    /// Writes the head of the family `name`.
    fn new(o: &'o mut String, name: &'o str, typ: &str, help: &str) -> Family<'o> {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {typ}");
        Family { o, name }
    }

    /// One sample of the family's own series.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.sample_of("", labels, value);
    }

    /// One sample of a series the family's name plus `suffix` names (`_sum`, `_count`).
    fn sample_of(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let o = &mut *self.o;
        o.push_str(self.name);
        o.push_str(suffix);
        if !labels.is_empty() {
            o.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                let _ = write!(o, "{k}=\"{}\"", esc(v));
            }
            o.push('}');
        }
        let _ = writeln!(o, " {value}");
    }

    /// A summary's 0.5, 0.95 and 0.99 quantiles for one agent.
    fn quantiles(&mut self, agent: &str, q: Vec<f64>) {
        for (qn, v) in ["0.5", "0.95", "0.99"].iter().zip(q) {
            self.sample(&[("agent", agent), ("quantile", qn)], v);
        }
    }

    /// The text under the head, for samples another writer formats (histograms).
    fn out(&mut self) -> &mut String {
        self.o
    }
}

/// A family with one sample per agent.
fn per_agent<V: std::fmt::Display>(
    o: &mut String,
    a: &BTreeMap<String, AgentStats>,
    name: &str,
    typ: &str,
    help: &str,
    value: impl Fn(&AgentStats) -> V,
) {
    let mut f = Family::new(o, name, typ, help);
    for (n, s) in a.iter() {
        f.sample(&[("agent", n)], value(s));
    }
}

/// Active users, executions and queues, tokens, cost, CPU time and memory per agent.
fn render_usage(
    o: &mut String,
    a: &BTreeMap<String, AgentStats>,
    users: usize,
    live: &BTreeMap<String, i64>,
) {
    Family::new(
        o,
        ACTIVE_USERS,
        "gauge",
        "Distinct API keys seen in the last 5 minutes.",
    )
    .sample(&[], users);
    per_agent(o, a, INFLIGHT, "gauge", "Executions running now.", |s| {
        s.inflight
    });
    per_agent(
        o,
        a,
        QUEUE_DEPTH,
        "gauge",
        "Requests waiting for a slot.",
        |s| s.queued,
    );
    let mut f = Family::new(o, TOKENS_USED_TOTAL, "counter", "LLM tokens by kind.");
    for (n, s) in a.iter() {
        f.sample(&[("agent", n), ("kind", "prompt")], s.prompt_tokens);
        f.sample(&[("agent", n), ("kind", "completion")], s.completion_tokens);
    }
    per_agent(
        o,
        a,
        LLM_COST_DOLLARS_TOTAL,
        "counter",
        "LLM cost at configured prices.",
        |s| s.cost,
    );
    per_agent(
        o,
        a,
        AGENT_CPU_SECONDS_TOTAL,
        "counter",
        "CPU time measured in the agent's own polls.",
        |s| s.cpu_seconds,
    );
    let mut f = Family::new(
        o,
        AGENT_MEMORY_BYTES,
        "gauge",
        "Bytes held by the agent's running executions.",
    );
    for n in a.keys() {
        f.sample(&[("agent", n)], live.get(n).copied().unwrap_or(0).max(0));
    }
    per_agent(
        o,
        a,
        AGENT_MEMORY_PEAK_BYTES,
        "gauge",
        "Largest working set of one execution.",
        |s| s.memory_peak.max(0),
    );
}

/// What each provider and model did for each agent: answers, tokens, cost, time, the
/// last load time and when it last answered.
fn render_models(o: &mut String, a: &BTreeMap<String, AgentStats>) {
    let per_model: [(&str, &str, &str, &ModelFigure); 7] = [
        (
            AGENT_MODEL_REQUESTS_TOTAL,
            "counter",
            "Provider answers by agent, provider and model.",
            &|m| Some(m.requests as f64),
        ),
        (
            AGENT_MODEL_PROMPT_TOKENS_TOTAL,
            "counter",
            "Prompt tokens by agent, provider and model.",
            &|m| Some(m.prompt_tokens as f64),
        ),
        (
            AGENT_MODEL_COMPLETION_TOKENS_TOTAL,
            "counter",
            "Completion tokens by agent, provider and model.",
            &|m| Some(m.completion_tokens as f64),
        ),
        (
            AGENT_MODEL_COST_DOLLARS_TOTAL,
            "counter",
            "Cost at configured prices (local models cost nothing).",
            &|m| Some(m.cost),
        ),
        (
            AGENT_MODEL_SECONDS_TOTAL,
            "counter",
            "Time spent in provider calls.",
            &|m| Some(m.seconds),
        ),
        (
            AGENT_MODEL_LOAD_SECONDS,
            "gauge",
            "The last answer's model load time (Ollama load_duration).",
            &|m| m.last_load,
        ),
        (
            AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS,
            "gauge",
            "When the provider and model last answered for the agent.",
            &|m| Some(m.last_used),
        ),
    ];
    for (family, typ, help, value) in per_model {
        let mut f = Family::new(o, family, typ, help);
        for (n, s) in a.iter() {
            for ((p, m), st) in &s.models {
                if let Some(v) = value(st) {
                    f.sample(&[("agent", n), ("provider", p), ("model", m)], v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry with every family filled: two agents (one with a quote and a
    /// backslash in its name), answers from two models, failures, users, a chain.
    fn fixed_registry() -> (Metrics, Instant, BTreeMap<String, i64>) {
        let m = Metrics::with_agents(&["chat".into(), "q\"uo\\te".into(), "idle".into()]);
        let t0 = m.started();
        let t = t0 + Duration::from_secs(90);
        m.set_chain(
            "chat",
            vec![
                ("ollama".into(), "llama3:8b".into()),
                ("openai".into(), "gpt-4o".into()),
            ],
        );
        m.saw_user("k1", t);
        m.saw_user("k2", t);
        m.answered_http(200);
        m.answered_http(200);
        m.answered_http(503);
        let answer = |provider, model, cost, cached, ms: u64| Answer {
            provider,
            model,
            prompt_tokens: 100,
            completion_tokens: 40,
            cost,
            cached,
            timing: crate::gateway::llm::Timing {
                ttft: Some(Duration::from_millis(ms)),
                tokens_per_s: Some(25.5),
                load: Some(Duration::from_millis(ms / 2)),
            },
            elapsed: Duration::from_millis(ms * 3),
        };
        m.agent("chat", |s| {
            for (i, ms) in [120u64, 250, 800, 40].iter().enumerate() {
                let at = t0 + Duration::from_secs(50 + i as u64);
                s.observe(at, Duration::from_millis(*ms));
                s.outcomes.record(at, false);
                *s.requests.entry("ok".into()).or_default() += 1;
                s.queue_wait.observe(Duration::from_millis(ms / 10));
                s.execution.observe(Duration::from_millis(*ms));
            }
            s.answered(
                t0 + Duration::from_secs(55),
                1_795_924_855.0,
                &answer("ollama", "llama3:8b", 0.0, false, 300),
            );
            s.answered(
                t0 + Duration::from_secs(80),
                1_795_924_880.25,
                &answer("openai", "gpt-4o", 0.0125, false, 900),
            );
            s.answered(
                t0 + Duration::from_secs(85),
                1_795_924_885.0,
                &answer("openai", "gpt-4o", 0.0, true, 1),
            );
            s.failed(
                t0 + Duration::from_secs(86),
                1_795_924_886.5,
                ErrorKind::Http5xx,
                "upstream \"503\"\nbusy".into(),
            );
            *s.requests.entry("error".into()).or_default() += 1;
            s.saw_user("k1", t);
            s.cpu_seconds = 1.75;
            s.memory_peak = 3 << 20;
            s.inflight = 1;
            s.queued = 2;
        });
        m.agent("q\"uo\\te", |s| {
            s.observe(t0 + Duration::from_secs(70), Duration::from_secs(2));
            s.failed(
                t0 + Duration::from_secs(71),
                1_795_924_871.0,
                ErrorKind::NoProvider,
                "none".into(),
            );
        });
        let live = BTreeMap::from([("chat".to_string(), 4096i64), ("idle".to_string(), -5)]);
        (m, t, live)
    }

    /// The exposition of a fixed registry, byte for byte as recorded (the process heap,
    /// which depends on the allocator, is left out).
    #[test]
    fn the_exposition_of_a_fixed_registry_is_the_recorded_text() {
        let (m, t, live) = fixed_registry();
        let text = m.render(t, &live);
        let text = match text.find(&format!("# HELP {PROCESS_HEAP_BYTES} ")) {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prometheus/gateway_render.prom"
        );
        if std::env::var_os("OSMEN_RECORD").is_some() {
            std::fs::write(path, &text).unwrap();
        }
        let want = std::fs::read_to_string(path).unwrap();
        assert!(text == want, "the /metrics text changed:\n{text}");
    }

    #[test]
    fn last_errors_and_the_window_are_exported_escaped_one_series_per_agent() {
        let m = Metrics::with_agents(&["daily_brief".into(), "quiet".into()]);
        let t = Instant::now();
        m.agent("daily_brief", |s| {
            s.outcomes.record(t, false);
            s.failed(t, 1_795_924_800.0, ErrorKind::Http5xx, "old".into());
            s.failed(
                t,
                1_795_924_805.5,
                ErrorKind::NoProvider,
                "no \"provider\" \\ here".into(),
            );
        });
        let text = m.render(t, &BTreeMap::new());
        let fams = crate::collect::prometheus::parse(&text).unwrap();
        let fam = |n: &str| fams.iter().find(|f| f.name == n).unwrap();
        let ts = fam(LAST_ERROR_TIMESTAMP_METRIC);
        assert_eq!(
            ts.samples.len(),
            1,
            "only the last error, only agents with one"
        );
        assert_eq!(ts.samples[0].label("kind"), Some("no_provider"));
        assert_eq!(ts.samples[0].value, 1_795_924_805.5);
        let info = fam(LAST_ERROR_INFO_METRIC);
        assert_eq!(info.samples.len(), 1);
        assert_eq!(
            info.samples[0].label("message"),
            Some("no \"provider\" \\ here")
        );
        let window = |n: &str, agent: &str| {
            fam(n)
                .samples
                .iter()
                .find(|s| s.label("agent") == Some(agent))
                .map(|s| s.value)
        };
        assert_eq!(window(WINDOW_REQUESTS_METRIC, "daily_brief"), Some(3.0));
        assert_eq!(window(WINDOW_ERRORS_METRIC, "daily_brief"), Some(2.0));
        assert_eq!(window(WINDOW_ERRORS_METRIC, "quiet"), Some(0.0));
        let errs = fam("osmen_errors_total");
        assert_eq!(errs.samples.len(), 2, "one counter per kind: {errs:?}");
        // A minute later the window is empty, the last error stays.
        let later = t + SLOT * SLOTS as u32;
        let text = m.render(later, &BTreeMap::new());
        assert!(text.contains("osmen_agent_window_errors{agent=\"daily_brief\"} 0"));
        assert!(text.contains("osmen_agent_last_error_timestamp_seconds{agent=\"daily_brief\""));
    }

    #[test]
    fn window_quantiles_are_true_quantiles() {
        let mut w = Window::default();
        let t = Instant::now();
        for ms in 1..=1000u64 {
            w.record(t, Duration::from_millis(ms));
        }
        let (q, n) = w.quantiles(t, &[0.5, 0.95, 0.99]);
        assert_eq!(n, 1000);
        for (got, want) in q.iter().zip([0.5, 0.95, 0.99]) {
            assert!((got - want).abs() / want < 0.002, "{got} vs {want}");
        }
        // Past the window everything has expired.
        let (q, n) = w.quantiles(t + SLOT * (SLOTS as u32 + 1), &[0.5]);
        assert!(q[0].is_nan() && n == 0);
    }

    /// The running total equals a fresh merge of the slots still in the window, read
    /// after every step while slots come and go (values from a fixed pseudo-random walk).
    #[test]
    fn window_total_follows_the_slots_as_they_expire() {
        let mut w = Window::default();
        let t0 = Instant::now();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..400u64 {
            let now = t0 + Duration::from_millis(step * 700);
            for _ in 0..(step % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.record(now, Duration::from_micros(1 + x % 5_000_000));
            }
            let qs = [0.5, 0.9, 0.99, 1.0];
            let (got, n) = w.quantiles(now, &qs);
            let mut merged = new_hist();
            for (_, h) in &w.slots {
                merged.add(h).unwrap();
            }
            assert_eq!(n, merged.len(), "step {step}");
            for (g, q) in got.iter().zip(qs) {
                if n == 0 {
                    assert!(g.is_nan());
                } else {
                    assert_eq!(
                        *g,
                        merged.value_at_quantile(q) as f64 / 1e6,
                        "step {step} q {q}"
                    );
                }
            }
        }
        // Slots came and went: 400 steps of 0.7 s is 280 s, over four windows.
        assert!(w.slots.len() <= SLOTS);
    }
}
