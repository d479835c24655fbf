//! The gateway's own metrics, rendered as Prometheus text. Latency quantiles are the true
//! quantiles of the observed latencies over a sliding window (HDR histograms, 3
//! significant digits), not guesses from buckets.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The sliding window for the summary quantiles: SLOTS slots of SLOT each.
pub const SLOT: Duration = Duration::from_secs(10);
pub const SLOTS: usize = 6;
/// Bucket bounds (seconds) of `osmen_agent_duration_seconds`.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];
/// A key counts as an active user for this long after its last request.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(300);

fn new_hist() -> Histogram<u64> {
    // Microseconds from 1 us to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Latency over the last SLOTS x SLOT, for quantiles.
#[derive(Default)]
pub struct Window {
    slots: VecDeque<(Instant, Histogram<u64>)>,
}

impl Window {
    pub fn record(&mut self, now: Instant, d: Duration) {
        self.expire(now);
        let fresh = self
            .slots
            .back()
            .is_none_or(|(start, _)| now.duration_since(*start) >= SLOT);
        if fresh {
            self.slots.push_back((now, new_hist()));
        }
        if let Some((_, h)) = self.slots.back_mut() {
            let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
            let _ = h.record(us);
        }
    }

    fn expire(&mut self, now: Instant) {
        let span = SLOT * SLOTS as u32;
        while self
            .slots
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) >= span)
        {
            self.slots.pop_front();
        }
    }

    /// (quantile -> seconds, count) over the window.
    pub fn quantiles(&mut self, now: Instant, qs: &[f64]) -> (Vec<f64>, u64) {
        self.expire(now);
        let mut merged = new_hist();
        for (_, h) in &self.slots {
            let _ = merged.add(h);
        }
        let n = merged.len();
        let v = qs
            .iter()
            .map(|q| {
                if n == 0 {
                    // No observation in the window: Prometheus' convention is NaN.
                    f64::NAN
                } else {
                    merged.value_at_quantile(*q) as f64 / 1e6
                }
            })
            .collect();
        (v, n)
    }
}

#[derive(Default)]
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
    pub last_error: Option<String>,
    pub last_run: Option<Instant>,
    /// Request times over the last minute, for the request rate.
    pub recent: VecDeque<Instant>,
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

#[derive(Default)]
pub struct Metrics {
    pub agents: Mutex<BTreeMap<String, AgentStats>>,
    users: Mutex<HashMap<String, Instant>>,
}

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

    pub fn agent<R>(&self, name: &str, f: impl FnOnce(&mut AgentStats) -> R) -> R {
        let mut a = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        f(a.entry(name.to_string()).or_default())
    }

    pub fn saw_user(&self, key_id: &str, now: Instant) {
        let mut u = self.users.lock().unwrap_or_else(|p| p.into_inner());
        u.insert(key_id.to_string(), now);
        u.retain(|_, t| now.duration_since(*t) <= ACTIVE_WINDOW);
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
        let head = |o: &mut String, name: &str, typ: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {typ}");
        };
        head(
            &mut o,
            "osmen_requests_total",
            "counter",
            "Agent requests by outcome.",
        );
        for (n, s) in a.iter() {
            for (status, c) in &s.requests {
                let _ = writeln!(
                    o,
                    "osmen_requests_total{{agent=\"{}\",status=\"{}\"}} {c}",
                    esc(n),
                    esc(status)
                );
            }
        }
        head(
            &mut o,
            "osmen_request_duration_seconds",
            "summary",
            "Agent request latency over the last minute (true quantiles).",
        );
        for (n, s) in a.iter_mut() {
            let (q, count) = s.window.quantiles(now, &[0.5, 0.95, 0.99]);
            for (qn, v) in ["0.5", "0.95", "0.99"].iter().zip(q) {
                let _ = writeln!(
                    o,
                    "osmen_request_duration_seconds{{agent=\"{}\",quantile=\"{qn}\"}} {v}",
                    esc(n)
                );
            }
            let _ = writeln!(
                o,
                "osmen_request_duration_seconds_sum{{agent=\"{}\"}} {}",
                esc(n),
                s.duration_sum
            );
            let _ = writeln!(
                o,
                "osmen_request_duration_seconds_count{{agent=\"{}\"}} {}",
                esc(n),
                s.duration_count.max(count)
            );
        }
        head(
            &mut o,
            "osmen_agent_duration_seconds",
            "histogram",
            "Agent execution time.",
        );
        for (n, s) in a.iter() {
            for (b, c) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    o,
                    "osmen_agent_duration_seconds_bucket{{agent=\"{}\",le=\"{b}\"}} {c}",
                    esc(n)
                );
            }
            let _ = writeln!(
                o,
                "osmen_agent_duration_seconds_bucket{{agent=\"{}\",le=\"+Inf\"}} {}",
                esc(n),
                s.duration_count
            );
            let _ = writeln!(
                o,
                "osmen_agent_duration_seconds_sum{{agent=\"{}\"}} {}",
                esc(n),
                s.duration_sum
            );
            let _ = writeln!(
                o,
                "osmen_agent_duration_seconds_count{{agent=\"{}\"}} {}",
                esc(n),
                s.duration_count
            );
        }
        head(
            &mut o,
            "osmen_errors_total",
            "counter",
            "Agent errors by kind.",
        );
        for (n, s) in a.iter() {
            for (kind, c) in &s.errors {
                let _ = writeln!(
                    o,
                    "osmen_errors_total{{agent=\"{}\",kind=\"{}\"}} {c}",
                    esc(n),
                    esc(kind)
                );
            }
        }
        head(
            &mut o,
            "osmen_active_users",
            "gauge",
            "Distinct API keys seen in the last 5 minutes.",
        );
        let _ = writeln!(o, "osmen_active_users {users}");
        let gauge = |o: &mut String, name: &str, help: &str, f: &dyn Fn(&AgentStats) -> String| {
            head(o, name, "gauge", help);
            for (n, s) in a.iter() {
                let _ = writeln!(o, "{name}{{agent=\"{}\"}} {}", esc(n), f(s));
            }
        };
        gauge(&mut o, "osmen_inflight", "Executions running now.", &|s| {
            s.inflight.to_string()
        });
        gauge(
            &mut o,
            "osmen_queue_depth",
            "Requests waiting for a slot.",
            &|s| s.queued.to_string(),
        );
        head(
            &mut o,
            "osmen_tokens_used_total",
            "counter",
            "LLM tokens by kind.",
        );
        for (n, s) in a.iter() {
            let _ = writeln!(
                o,
                "osmen_tokens_used_total{{agent=\"{}\",kind=\"prompt\"}} {}",
                esc(n),
                s.prompt_tokens
            );
            let _ = writeln!(
                o,
                "osmen_tokens_used_total{{agent=\"{}\",kind=\"completion\"}} {}",
                esc(n),
                s.completion_tokens
            );
        }
        head(
            &mut o,
            "osmen_llm_cost_dollars_total",
            "counter",
            "LLM cost at configured prices.",
        );
        for (n, s) in a.iter() {
            let _ = writeln!(
                o,
                "osmen_llm_cost_dollars_total{{agent=\"{}\"}} {}",
                esc(n),
                s.cost
            );
        }
        head(
            &mut o,
            "osmen_agent_cpu_seconds_total",
            "counter",
            "CPU time measured in the agent's own polls.",
        );
        for (n, s) in a.iter() {
            let _ = writeln!(
                o,
                "osmen_agent_cpu_seconds_total{{agent=\"{}\"}} {}",
                esc(n),
                s.cpu_seconds
            );
        }
        head(
            &mut o,
            "osmen_agent_memory_bytes",
            "gauge",
            "Bytes held by the agent's running executions.",
        );
        for n in a.keys() {
            let _ = writeln!(
                o,
                "osmen_agent_memory_bytes{{agent=\"{}\"}} {}",
                esc(n),
                live.get(n).copied().unwrap_or(0).max(0)
            );
        }
        gauge(
            &mut o,
            "osmen_agent_memory_peak_bytes",
            "Largest working set of one execution.",
            &|s| s.memory_peak.max(0).to_string(),
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
