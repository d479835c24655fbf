//! The names of the gateway's metric families, in one table: the gateway's exposition
//! (`gateway/metrics/`, the providers' families in `gateway/routes/`) writes them and the
//! Prometheus collector (`collect/prometheus/`) reads them, so a rename cannot leave one
//! side behind.

/// Counter: agent requests by outcome (`agent`, `status`).
pub const REQUESTS_TOTAL: &str = "osmen_requests_total";
/// Summary: request latency quantiles per agent.
pub const REQUEST_DURATION_SECONDS: &str = "osmen_request_duration_seconds";
/// Histogram: request latency per agent (merged across replicas).
pub const AGENT_DURATION_SECONDS: &str = "osmen_agent_duration_seconds";
/// Histogram: the wait for a provider slot.
pub const AGENT_QUEUE_WAIT_SECONDS: &str = "osmen_agent_queue_wait_seconds";
/// Histogram: the time a provider slot was held.
pub const AGENT_EXECUTION_SECONDS: &str = "osmen_agent_execution_seconds";
/// Counter: failed requests by `kind`.
pub const ERRORS_TOTAL: &str = "osmen_errors_total";
/// Gauge: when each kind of error last happened.
pub const AGENT_LAST_ERROR_TIMESTAMP_SECONDS: &str = "osmen_agent_last_error_timestamp_seconds";
/// Info: the last error's `message` per `kind`.
pub const AGENT_LAST_ERROR_INFO: &str = "osmen_agent_last_error_info";
/// Gauge: requests over the last minute.
pub const AGENT_WINDOW_REQUESTS: &str = "osmen_agent_window_requests";
/// Gauge: failed requests over the last minute.
pub const AGENT_WINDOW_ERRORS: &str = "osmen_agent_window_errors";
/// Gauge: distinct API keys over the projection window.
pub const ACTIVE_USERS: &str = "osmen_active_users";
/// Gauge: executions running now.
pub const INFLIGHT: &str = "osmen_inflight";
/// Gauge: executions waiting for a slot.
pub const QUEUE_DEPTH: &str = "osmen_queue_depth";
/// Counter: tokens by `kind` (prompt, completion).
pub const TOKENS_USED_TOTAL: &str = "osmen_tokens_used_total";
/// Counter: what the providers charged.
pub const LLM_COST_DOLLARS_TOTAL: &str = "osmen_llm_cost_dollars_total";
/// Counter: CPU time of each agent's work.
pub const AGENT_CPU_SECONDS_TOTAL: &str = "osmen_agent_cpu_seconds_total";
/// Gauge: heap held by each agent's work.
pub const AGENT_MEMORY_BYTES: &str = "osmen_agent_memory_bytes";
/// Gauge: the most heap each agent held.
pub const AGENT_MEMORY_PEAK_BYTES: &str = "osmen_agent_memory_peak_bytes";
/// Gauge: the gateway's heap by `state`.
pub const PROCESS_HEAP_BYTES: &str = "osmen_process_heap_bytes";
/// Summary: generation speed.
pub const AGENT_TOKENS_PER_SECOND: &str = "osmen_agent_tokens_per_second";
/// Summary: time to the first token.
pub const AGENT_TTFT_SECONDS: &str = "osmen_agent_ttft_seconds";
/// Counter: answers served from the cache.
pub const CACHE_HITS_TOTAL: &str = "osmen_cache_hits_total";
/// Info: the models an agent tries, with `role` and `order`.
pub const AGENT_MODEL_INFO: &str = "osmen_agent_model_info";
/// Counter: answers per provider and model.
pub const AGENT_MODEL_REQUESTS_TOTAL: &str = "osmen_agent_model_requests_total";
/// Counter: prompt tokens per provider and model.
pub const AGENT_MODEL_PROMPT_TOKENS_TOTAL: &str = "osmen_agent_model_prompt_tokens_total";
/// Counter: completion tokens per provider and model.
pub const AGENT_MODEL_COMPLETION_TOKENS_TOTAL: &str = "osmen_agent_model_completion_tokens_total";
/// Counter: cost per provider and model.
pub const AGENT_MODEL_COST_DOLLARS_TOTAL: &str = "osmen_agent_model_cost_dollars_total";
/// Counter: time spent per provider and model.
pub const AGENT_MODEL_SECONDS_TOTAL: &str = "osmen_agent_model_seconds_total";
/// Gauge: the model's last load time.
pub const AGENT_MODEL_LOAD_SECONDS: &str = "osmen_agent_model_load_seconds";
/// Gauge: when the model last answered.
pub const AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS: &str =
    "osmen_agent_model_last_used_timestamp_seconds";
/// Gauge: requests per active user over the window.
pub const AGENT_REQUESTS_PER_ACTIVE_USER: &str = "osmen_agent_requests_per_active_user";
/// Gauge: the span the projections are drawn from.
pub const PROJECTION_WINDOW_SECONDS: &str = "osmen_projection_window_seconds";
/// Gauge: requests a day at the current pace.
pub const AGENT_REQUESTS_PROJECTION_DAILY: &str = "osmen_agent_requests_projection_daily";
/// Gauge: cost a month at the current pace.
pub const AGENT_COST_PROJECTION_MONTHLY_DOLLARS: &str =
    "osmen_agent_cost_projection_monthly_dollars";
/// Gauge: a provider's circuit breaker (0 closed, 1 half-open, 2 open).
pub const PROVIDER_CIRCUIT_STATE: &str = "osmen_provider_circuit_state";
/// Gauge: a provider's failed calls in a row.
pub const PROVIDER_CONSECUTIVE_FAILURES: &str = "osmen_provider_consecutive_failures";
/// Gauge: a provider's calls sent and not answered yet (Ollama's queue pressure).
pub const PROVIDER_IN_FLIGHT: &str = "osmen_provider_in_flight";
/// The prefix of the per-provider-and-model families (`osmen_agent_model_*` above).
pub const AGENT_MODEL_PREFIX: &str = "osmen_agent_model_";
/// Counter: the gateway's HTTP responses.
pub const HTTP_RESPONSES_TOTAL: &str = "osmen_http_responses_total";
