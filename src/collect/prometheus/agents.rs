//! Agent rows from a gateway's families: requests, latency, errors, speed, economics and
//! the models and providers behind each agent.

use std::collections::BTreeMap;

use super::{Family, Sample};
use crate::model::agent::{AgentRow, ModelUse};
use crate::model::agent_error::{
    ERRORS_METRIC, LAST_ERROR_INFO_METRIC, LAST_ERROR_TIMESTAMP_METRIC, WINDOW_ERRORS_METRIC,
    WINDOW_REQUESTS_METRIC, error_percent, failing,
};
use crate::model::metric::{
    AGENT_COST_PROJECTION_MONTHLY_DOLLARS, AGENT_CPU_SECONDS_TOTAL, AGENT_EXECUTION_SECONDS,
    AGENT_MEMORY_BYTES, AGENT_MEMORY_PEAK_BYTES, AGENT_MODEL_COMPLETION_TOKENS_TOTAL,
    AGENT_MODEL_COST_DOLLARS_TOTAL, AGENT_MODEL_INFO, AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS,
    AGENT_MODEL_LOAD_SECONDS, AGENT_MODEL_PREFIX, AGENT_MODEL_PROMPT_TOKENS_TOTAL,
    AGENT_MODEL_REQUESTS_TOTAL, AGENT_MODEL_SECONDS_TOTAL, AGENT_QUEUE_WAIT_SECONDS,
    AGENT_REQUESTS_PER_ACTIVE_USER, AGENT_REQUESTS_PROJECTION_DAILY, AGENT_TOKENS_PER_SECOND,
    AGENT_TTFT_SECONDS, CACHE_HITS_TOTAL, INFLIGHT, LLM_COST_DOLLARS_TOTAL, PROVIDER_CIRCUIT_STATE,
    PROVIDER_IN_FLIGHT, QUEUE_DEPTH, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, TOKENS_USED_TOTAL,
};

/// Per-agent figures from a gateway's /metrics: requests, in flight and P50/P95/P99.
pub fn agents_from(fams: &[Family]) -> Vec<AgentRow> {
    let mut by: BTreeMap<String, AgentRow> = BTreeMap::new();
    // The last error's message per kind, until the kind of the last error is known.
    let mut messages: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in fams {
        for s in &f.samples {
            let Some(agent) = s.label("agent") else {
                continue;
            };
            let e = by
                .entry(agent.to_string())
                .or_insert_with(|| AgentRow::new(agent));
            match (s.name.as_str(), s.label("quantile"), s.label("status")) {
                (REQUEST_DURATION_SECONDS, Some(q), _) => {
                    let slot = match q {
                        "0.5" => &mut e.p50_seconds,
                        "0.95" => &mut e.p95_seconds,
                        "0.99" => &mut e.p99_seconds,
                        _ => continue,
                    };
                    *slot = Some((!s.value.is_nan()).then_some(s.value));
                }
                (REQUESTS_TOTAL, _, Some(st)) => {
                    e.requests.insert(st.to_string(), s.value);
                }
                (INFLIGHT, _, _) => e.inflight = Some(s.value),
                (QUEUE_DEPTH, _, _) => e.queued = Some(s.value),
                (ERRORS_METRIC, _, _) => {
                    e.errors_total = Some(e.errors_total.unwrap_or(0.0) + s.value);
                    if let Some(kind) = s.label("kind") {
                        e.errors_by_kind.insert(kind.to_string(), s.value);
                    }
                }
                (WINDOW_REQUESTS_METRIC, _, _) => e.window_requests = Some(s.value),
                (WINDOW_ERRORS_METRIC, _, _) => e.window_errors = Some(s.value),
                (LAST_ERROR_TIMESTAMP_METRIC | LAST_ERROR_INFO_METRIC, _, _) => {
                    last_error(e, messages.entry(agent.to_string()).or_default(), s);
                }
                (AGENT_CPU_SECONDS_TOTAL, _, _) => e.cpu_seconds_total = Some(s.value),
                (AGENT_MEMORY_BYTES, _, _) => e.memory_bytes = Some(s.value),
                (AGENT_MEMORY_PEAK_BYTES, _, _) => e.memory_peak_bytes = Some(s.value),
                (AGENT_TOKENS_PER_SECOND | AGENT_TTFT_SECONDS, Some(q), _) => {
                    let ttft = s.name == AGENT_TTFT_SECONDS;
                    let slot = match (q, ttft) {
                        ("0.5", true) => &mut e.ttft_p50_seconds,
                        ("0.95", true) => &mut e.ttft_p95_seconds,
                        ("0.99", true) => &mut e.ttft_p99_seconds,
                        ("0.5", false) => &mut e.tokens_per_second_p50,
                        ("0.95", false) => &mut e.tokens_per_second_p95,
                        ("0.99", false) => &mut e.tokens_per_second_p99,
                        _ => continue,
                    };
                    *slot = Some(finite(s.value));
                }
                (TOKENS_USED_TOTAL, _, _) => match s.label("kind") {
                    Some("prompt") => e.prompt_tokens_total = Some(s.value),
                    Some("completion") => e.completion_tokens_total = Some(s.value),
                    _ => {}
                },
                (LLM_COST_DOLLARS_TOTAL, _, _) => e.cost_dollars_total = Some(s.value),
                (CACHE_HITS_TOTAL, _, _) => e.cache_hits_total = Some(s.value),
                (AGENT_REQUESTS_PER_ACTIVE_USER, _, _) => {
                    e.per_active_user_requests = Some(finite(s.value));
                }
                (AGENT_REQUESTS_PROJECTION_DAILY, _, _) => {
                    e.projected_daily_requests = Some(finite(s.value));
                }
                (AGENT_COST_PROJECTION_MONTHLY_DOLLARS, _, _) => {
                    e.projected_monthly_cost_dollars = Some(finite(s.value));
                }
                (name, _, _) if name.starts_with(AGENT_MODEL_PREFIX) => model_sample(e, name, s),
                _ => {}
            }
        }
    }
    // The providers' circuit breakers, marked on each model an agent uses.
    let circuits: BTreeMap<String, f64> = fams
        .iter()
        .find(|f| f.name == PROVIDER_CIRCUIT_STATE)
        .map(|f| {
            f.samples
                .iter()
                .filter_map(|s| Some((s.label("provider")?.to_string(), s.value)))
                .collect()
        })
        .unwrap_or_default();
    by.into_values()
        .map(|mut e| {
            per_request(&mut e);
            let m = messages.remove(&e.agent);
            window_failures(&mut e, m);
            if !circuits.is_empty() {
                mark_circuits(&mut e, &circuits);
            }
            e
        })
        .collect()
}

/// The gateway's calls in flight to Ollama (`osmen_provider_in_flight{provider="ollama"}`);
/// None when it exposes none.
pub fn ollama_in_flight(fams: &[Family]) -> Option<u64> {
    let f = fams.iter().find(|f| f.name == PROVIDER_IN_FLIGHT)?;
    f.samples
        .iter()
        .filter(|s| s.label("provider") == Some("ollama") && s.value.is_finite())
        .map(|s| s.value.max(0.0) as u64)
        .reduce(|a, b| a + b)
}

/// One sample of the `osmen_agent_model_*` families, on the agent's row for its provider
/// and model (added the first time they are seen).
fn model_sample(e: &mut AgentRow, name: &str, s: &Sample) {
    let (Some(p), Some(m)) = (s.label("provider"), s.label("model")) else {
        return;
    };
    let known = [
        AGENT_MODEL_INFO,
        AGENT_MODEL_REQUESTS_TOTAL,
        AGENT_MODEL_PROMPT_TOKENS_TOTAL,
        AGENT_MODEL_COMPLETION_TOKENS_TOTAL,
        AGENT_MODEL_COST_DOLLARS_TOTAL,
        AGENT_MODEL_SECONDS_TOTAL,
        AGENT_MODEL_LOAD_SECONDS,
        AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS,
    ];
    if !known.contains(&name) {
        return;
    }
    let i = match e
        .models
        .iter()
        .position(|x| x.provider == p && x.model == m)
    {
        Some(i) => i,
        None => {
            e.models.push(ModelUse {
                provider: p.to_string(),
                model: m.to_string(),
                ..Default::default()
            });
            e.models.len() - 1
        }
    };
    let mu = &mut e.models[i];
    let v = Some(s.value);
    match name {
        AGENT_MODEL_INFO => {
            if let Some(r) = s.label("role") {
                mu.role = Some(r.to_string());
            }
            mu.order = Some(s.label("order").and_then(|o| o.parse::<u64>().ok()));
        }
        AGENT_MODEL_REQUESTS_TOTAL => mu.requests = v,
        AGENT_MODEL_PROMPT_TOKENS_TOTAL => mu.prompt_tokens = v,
        AGENT_MODEL_COMPLETION_TOKENS_TOTAL => mu.completion_tokens = v,
        AGENT_MODEL_COST_DOLLARS_TOTAL => mu.cost_dollars = v,
        AGENT_MODEL_SECONDS_TOTAL => mu.seconds_total = v,
        AGENT_MODEL_LOAD_SECONDS => mu.load_seconds = v,
        _ => mu.last_used = v,
    }
}

/// The providers' circuit states on each model the agent uses, and the providers whose
/// circuit is not closed.
fn mark_circuits(e: &mut AgentRow, circuits: &BTreeMap<String, f64>) {
    let mut failing = Vec::new();
    for m in e.models.iter_mut() {
        let state = match circuits.get(&m.provider).copied() {
            Some(v) if v >= 2.0 => "open",
            Some(v) if v >= 1.0 => "half-open",
            Some(_) => "closed",
            None => continue,
        };
        m.circuit = Some(state.to_string());
        if state != "closed" && !failing.contains(&m.provider) {
            failing.push(m.provider.clone());
        }
    }
    e.providers_failing = Some(failing);
}

/// The last error from its two families: the timestamp (the latest wins: merged
/// replicas each keep theirs) gives `last_error_at` and `last_error_kind`; the info
/// series of that kind gives `last_error`, the message.
fn last_error(e: &mut AgentRow, messages: &mut BTreeMap<String, String>, s: &Sample) {
    let Some(kind) = s.label("kind") else {
        return;
    };
    if s.name == LAST_ERROR_TIMESTAMP_METRIC {
        let newer = e.last_error_at.is_none_or(|t| s.value > t);
        if newer && s.value.is_finite() {
            e.last_error_at = Some(s.value);
            e.last_error_kind = Some(kind.to_string());
        }
    } else if let Some(m) = s.label("message") {
        messages.insert(kind.to_string(), m.to_string());
    }
}

/// The share of the window's requests that failed, whether the agent is FAILING, and
/// the message of the last error's kind.
fn window_failures(e: &mut AgentRow, messages: Option<BTreeMap<String, String>>) {
    if let (Some(n), Some(err)) = (e.window_requests, e.window_errors) {
        if let Some(p) = error_percent(n, err) {
            e.window_error_percent = Some(p);
        }
        e.failing = Some(failing(n, err));
    }
    if let Some(m) = messages
        .as_ref()
        .zip(e.last_error_kind.as_ref())
        .and_then(|(messages, k)| messages.get(k))
    {
        e.last_error = Some(m.clone());
    }
}

/// A gauge's value, None when it is not a number (no observation).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Tokens and cost per answered request, for the agent and for each provider and model;
/// models in the order the agent tries them, then those only seen answering.
fn per_request(e: &mut AgentRow) {
    // Per answered request, cache hits included (they use no tokens and cost nothing).
    let calls = e.requests.get("success").copied().unwrap_or(0.0);
    if calls > 0.0 {
        let tokens =
            e.prompt_tokens_total.unwrap_or(0.0) + e.completion_tokens_total.unwrap_or(0.0);
        e.tokens_per_request = Some(tokens / calls);
        e.cost_per_request_dollars = Some(e.cost_dollars_total.unwrap_or(0.0) / calls);
    }
    for m in e.models.iter_mut() {
        let n = m.requests.unwrap_or(0.0);
        if n > 0.0 {
            let tokens = m.prompt_tokens.unwrap_or(0.0) + m.completion_tokens.unwrap_or(0.0);
            m.tokens_per_request = Some(tokens / n);
            m.cost_per_request_dollars = Some(m.cost_dollars.unwrap_or(0.0) / n);
            m.mean_seconds = Some(m.seconds_total.unwrap_or(0.0) / n);
        }
    }
    e.models
        .sort_by_key(|m| m.order.flatten().unwrap_or(u64::MAX));
}

/// The wait for a provider slot and the time a slot was held, P50/P95/P99 per agent, from
/// the windowed `osmen_agent_queue_wait_seconds` and `osmen_agent_execution_seconds`
/// buckets. Only figures of the last 60 s are shown: none while the window is empty.
pub fn attach_waits(rows: &mut [AgentRow], lat: &[crate::model::snapshot::LatencySeries]) {
    for a in rows.iter_mut() {
        let labels = format!("agent={}", a.agent);
        let window = |family: &str| {
            lat.iter().find(|l| {
                l.family == family && l.labels == labels && l.source == "histogram, last 60 s"
            })
        };
        let wait = window(AGENT_QUEUE_WAIT_SECONDS);
        a.wait_p50_seconds = wait.and_then(|l| l.p50);
        a.wait_p95_seconds = wait.and_then(|l| l.p95);
        a.wait_p99_seconds = wait.and_then(|l| l.p99);
        let exec = window(AGENT_EXECUTION_SECONDS);
        a.execution_p50_seconds = exec.and_then(|l| l.p50);
        a.execution_p95_seconds = exec.and_then(|l| l.p95);
        a.execution_p99_seconds = exec.and_then(|l| l.p99);
    }
}
