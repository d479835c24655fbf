//! The Prometheus text exposition of [`Metrics`], one family writer for every family.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::agent::ModelFigure;
use super::window::write_histogram;
use super::{
    AgentStats, EXECUTION_METRIC, MONTH_DAYS, Metrics, PROJECTION_WINDOW, QUEUE_WAIT_METRIC,
    RESPONSES_METRIC,
};

use crate::model::agent_error::{
    LAST_ERROR_INFO_METRIC, LAST_ERROR_TIMESTAMP_METRIC, WINDOW_ERRORS_METRIC,
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
    PROCESS_HEAP_BYTES, PROJECTION_WINDOW_SECONDS, PROVIDER_IN_FLIGHT, QUEUE_DEPTH,
    REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, TOKENS_USED_TOTAL,
};

pub(super) fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
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
        if let Some((in_use, free)) = crate::gateway::accounting::heap_bytes() {
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
/// Each LLM provider's calls in flight (sent, not answered yet), one series per provider
/// name: providers of one name (two Ollama entries) are summed.
pub fn render_provider_in_flight(providers: &[(&str, u64)]) -> String {
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, n) in providers {
        *by.entry(name).or_default() += n;
    }
    let mut o = String::new();
    let mut f = Family::new(
        &mut o,
        PROVIDER_IN_FLIGHT,
        "gauge",
        "Calls to an LLM provider sent and not answered yet (beyond its capacity they wait in its queue).",
    );
    for (name, n) in by {
        f.sample(&[("provider", name)], n);
    }
    o
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
