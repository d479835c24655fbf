//! The gateway's own metrics, rendered as Prometheus text. Latency quantiles are the true
//! quantiles of the observed latencies over a sliding window (HDR histograms, 3
//! significant digits), not guesses from buckets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod agent;
mod render;
mod window;
pub use agent::{AgentStats, Answer, LastError, ModelStats, PROJECTION_WINDOW};
pub use render::render_provider_in_flight;
pub use window::{BUCKETS, Hist, SLOT, SLOTS, Tally, Window};

/// Time a request waited for a slot, from its arrival.
pub const QUEUE_WAIT_METRIC: &str = crate::model::metric::AGENT_QUEUE_WAIT_SECONDS;
/// Time an execution held its slot: the tool's facts and the provider call(s).
pub const EXECUTION_METRIC: &str = crate::model::metric::AGENT_EXECUTION_SECONDS;
/// Every HTTP answer of the gateway by status code (401s and 429s included).
pub const RESPONSES_METRIC: &str = crate::model::metric::HTTP_RESPONSES_TOTAL;

/// A key counts as an active user for this long after its last request.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(300);

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
}

#[cfg(test)]
mod tests;
