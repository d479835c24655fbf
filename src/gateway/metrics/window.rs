//! The sliding windows behind the true quantiles (HDR histograms over SLOTS x SLOT), the
//! Prometheus histograms beside them, and the per-window tallies.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::render::esc;

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
pub(super) fn write_histogram(
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

pub(super) fn new_hist() -> Histogram<u64> {
    // Microseconds from 1 us to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Values over the last SLOTS x SLOT, for quantiles: latencies in seconds (kept in
/// microseconds), or any other positive value at a chosen resolution.
pub struct Window {
    pub(super) slots: VecDeque<(Instant, Histogram<u64>)>,
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
