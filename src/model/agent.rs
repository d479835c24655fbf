//! An agent row: what the console, `status`, the advisor and the hub know of one agent of
//! an osmen gateway, from its /metrics (latency quantiles, requests by outcome, errors,
//! memory, CPU, economics and the models it uses), the hub's rates between two scrapes,
//! and the join with Ollama and the GPUs (the model serving it and its VRAM).
//!
//! Field names are the keys `osmen status --json` prints. A figure the gateway did not
//! report is absent (`None`); a quantile it reported as NaN (no observation) is `null`:
//! those fields are `Option<Option<f64>>`, outer `None` absent, `Some(None)` null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A figure that is absent (never reported), null (reported without a value) or a number.
pub type Reported = Option<Option<f64>>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRow {
    /// `agent`, `service/agent` for a merged replica group, `service/agent@container` for
    /// one replica's row.
    pub agent: String,
    /// For a replica's row: its merged row's name, and the replica's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// For a merged row: how many replicas answered, and where its quantiles come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_source: Option<String>,

    /// Requests by outcome (`success`, `error`, ...), printed as `requests_<outcome>`.
    #[serde(
        flatten,
        serialize_with = "requests_ser",
        deserialize_with = "requests_de"
    )]
    pub requests: BTreeMap<String, f64>,
    /// The hub's rates since the previous scrape (none until two scrapes exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_per_s: Option<f64>,
    /// The share of the requests since the previous scrape that failed, 0 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_percent: Option<f64>,
    /// CPU of the agent's work since the previous scrape (100 = one core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,

    /// Request latency: the gateway's summary, or for a merged row the merged buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_seconds: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_seconds: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_seconds: Reported,
    /// The wait for a provider slot and the time one was held, over the last 60 s
    /// (null while the window is empty).
    pub wait_p50_seconds: Option<f64>,
    pub wait_p95_seconds: Option<f64>,
    pub wait_p99_seconds: Option<f64>,
    pub execution_p50_seconds: Option<f64>,
    pub execution_p95_seconds: Option<f64>,
    pub execution_p99_seconds: Option<f64>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<f64>,

    /// Failed requests since the gateway started, all kinds and by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors_total: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, f64>,
    /// Requests and failed requests over the gateway's last minute, and their share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_requests: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_errors: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_error_percent: Option<f64>,
    /// Most of the last minute's requests failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<bool>,
    /// The last error: when (unix seconds), its kind and its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds_total: Option<f64>,
    /// Heap held by the agent's work now, and the most it held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<f64>,

    /// Generation speed and time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_second_p50: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_second_p95: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_second_p99: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p50_seconds: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p95_seconds: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p99_seconds: Reported,

    /// Economics: tokens, cost and cache hits since start, per answered request, and
    /// the gateway's projections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_dollars_total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hits_total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_request_dollars: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_active_user_requests: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_daily_requests: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected_monthly_cost_dollars: Reported,

    /// The providers and models the agent uses, in the order it tries them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelUse>,
    /// Providers whose circuit breaker is open or half-open (present when the gateway
    /// reports circuits at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers_failing: Option<Vec<String>>,

    /// The provider and model serving it now, and that model's place on the GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<AgentGpu>,
}

/// One provider and model of an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelUse {
    pub provider: String,
    pub model: String,
    /// `primary`, `fallback`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Its place in the order the agent tries them (null when unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Option<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_dollars: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_total: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_seconds: Option<f64>,
    /// When it last answered (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_request: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_per_request_dollars: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_seconds: Option<f64>,
    /// Its provider's circuit breaker: `closed`, `half-open` or `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<String>,
}

/// Where the model serving an agent is: `remote` (not Ollama), or Ollama's `loaded`,
/// `offloaded`, `cpu`, `cold` (not loaded) or `unknown` (Ollama not measured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentGpu {
    pub state: String,
    /// `last answer` or `configured`: how the serving model is known.
    pub model_from: String,
    /// Other agents served by the same Ollama model (Ollama only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_load_seconds: Reported,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_measured_bytes: Option<u64>,
}

impl AgentRow {
    pub fn new(agent: &str) -> AgentRow {
        AgentRow {
            agent: agent.to_string(),
            ..Default::default()
        }
    }

    /// Requests of every outcome since the gateway started.
    pub fn requests_total(&self) -> f64 {
        self.requests.values().sum()
    }

    /// The share of the agent's requests that failed: since the previous scrape, else
    /// over the gateway's last minute.
    pub fn error_share(&self) -> Option<f64> {
        self.error_percent.or(self.window_error_percent)
    }

    /// Most of the agent's requests of the last minute failed (the gateway's window).
    pub fn is_failing(&self) -> bool {
        self.failing.unwrap_or(false)
    }
}

fn requests_ser<S: serde::Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (format!("requests_{k}"), v)))
}

fn requests_de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        Number(f64),
        Other(serde::de::IgnoredAny),
    }
    let all = BTreeMap::<String, Any>::deserialize(d)?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| match (k.strip_prefix("requests_"), v) {
            (Some(outcome), Any::Number(n)) => Some((outcome.to_string(), n)),
            _ => None,
        })
        .collect())
}
