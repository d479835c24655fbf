//! The figures a service probe measures, one typed struct per kind, written down field by
//! field; they serialize to the JSON `status --json` prints under
//! `services[].probe.figures` (recorded in `tests/fixtures/snapshot/probe_figures*.json`).
//! Each kind denies fields it does not know, so that JSON read back (`model::probe::Figures`
//! is untagged) finds its own kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Redis' figures from one `INFO` and the counters of the sample before. Rates are None
/// on the first sample; `maxmemory_bytes` is None when Redis has no limit (0 in Redis).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    pub version: Option<String>,
    pub uptime_s: Option<f64>,
    pub ops_per_s: Option<f64>,
    pub instantaneous_ops_per_s: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_rss_bytes: Option<f64>,
    pub memory_peak_bytes: Option<f64>,
    pub maxmemory_bytes: Option<f64>,
    pub memory_percent: Option<f64>,
    pub maxmemory_policy: Option<String>,
    pub evicted_keys: f64,
    pub evictions_per_s: Option<f64>,
    pub expired_per_s: Option<f64>,
    pub keyspace_hits: f64,
    pub keyspace_misses: f64,
    pub hit_ratio: Option<f64>,
    pub hit_ratio_window: Option<f64>,
    pub connected_clients: Option<f64>,
    pub blocked_clients: Option<f64>,
    pub keys: u64,
    pub keys_per_db: BTreeMap<String, u64>,
    pub persistence: RedisPersistence,
}

/// Redis' AOF and RDB state from `INFO persistence`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisPersistence {
    pub aof_enabled: Option<bool>,
    pub aof_last_write_status: Option<String>,
    pub rdb_last_save_time: Option<f64>,
    pub rdb_changes_since_last_save: Option<f64>,
    pub rdb_last_bgsave_status: Option<String>,
    pub rdb_bgsave_in_progress: Option<bool>,
}

/// PostgreSQL's figures from one read-only transaction and the counters of the sample
/// before. Rates and the window's ratios are None on the first sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Postgres {
    pub version: String,
    /// The database the probe connected to.
    pub database: String,
    pub connections: PgConnections,
    pub transactions_per_s: Option<f64>,
    pub commits_per_s: Option<f64>,
    pub rollbacks_per_s: Option<f64>,
    pub inserts_per_s: Option<f64>,
    pub updates_per_s: Option<f64>,
    pub deletes_per_s: Option<f64>,
    pub rows_fetched_per_s: Option<f64>,
    pub cache_hit_ratio: Option<f64>,
    pub cache_hit_ratio_window: Option<f64>,
    pub deadlocks: i64,
    /// The longest running query (None: none running).
    pub longest_query: Option<PgQuery>,
    pub databases: Vec<PgDatabase>,
    /// `on`, or why pg_stat_statements is not read and how to enable it.
    pub statements: String,
    /// The slowest statements by mean time (None: pg_stat_statements is not read).
    pub top_queries: Option<Vec<PgStatement>>,
    pub mean_query_ms_window: Option<f64>,
}

/// Client connections against `max_connections`, by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgConnections {
    pub used: i64,
    pub max: i64,
    pub reserved: i64,
    /// Of the connections not reserved for superusers.
    pub percent: f64,
    pub by_state: BTreeMap<String, i64>,
}

/// A running query (its text shortened, passwords masked).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgQuery {
    pub seconds: f64,
    pub state: String,
    pub database: String,
    pub query: String,
}

/// One database: size, transactions since the statistics reset, connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgDatabase {
    pub name: String,
    pub size_bytes: i64,
    pub transactions: i64,
    pub connections: i64,
}

/// One statement from pg_stat_statements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgStatement {
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub total_ms: f64,
    pub rows: i64,
}

/// Qdrant's figures from its health endpoint, `/`, `/collections` and `/metrics`, and the
/// counters of the sample before. Rates and the window's latencies are None on the first
/// sample (and the latencies when nothing was searched meanwhile, or before Qdrant 1.8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Qdrant {
    pub version: Option<String>,
    /// The health endpoint that answered.
    pub health: String,
    pub health_ms: f64,
    /// The first 32 collections.
    pub collections: Vec<QdrantCollection>,
    /// Points summed over the collections.
    pub points: f64,
    /// `/metrics` answered.
    pub metrics: bool,
    pub vectors_total: Option<f64>,
    pub memory_resident_bytes: Option<f64>,
    pub memory_allocated_bytes: Option<f64>,
    pub searches_per_s: Option<f64>,
    pub inserts_per_s: Option<f64>,
    pub failures_per_s: Option<f64>,
    pub searches_total: f64,
    pub inserts_total: f64,
    /// From the histogram's buckets over the time since the last sample.
    pub search_p50_ms: Option<f64>,
    pub search_p95_ms: Option<f64>,
    pub search_p99_ms: Option<f64>,
    /// The window's mean from the histogram's `_sum` and `_count`.
    pub search_mean_ms: Option<f64>,
    /// Qdrant's own average since it started (not a percentile, not this window).
    pub search_avg_since_start_ms: Option<f64>,
}

/// One Qdrant collection, or its name and why it was not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QdrantCollection {
    /// `/collections/{name}` gave no JSON.
    Unanswered {
        name: String,
        error: String,
    },
    Read(QdrantCollectionInfo),
}

impl QdrantCollection {
    pub fn name(&self) -> &str {
        match self {
            QdrantCollection::Unanswered { name, .. } => name,
            QdrantCollection::Read(c) => &c.name,
        }
    }

    /// What `/collections/{name}` said (None: it did not answer).
    pub fn info(&self) -> Option<&QdrantCollectionInfo> {
        match self {
            QdrantCollection::Unanswered { .. } => None,
            QdrantCollection::Read(c) => Some(c),
        }
    }
}

/// A collection as `/collections/{name}` describes it (None: Qdrant did not say).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QdrantCollectionInfo {
    pub name: String,
    /// `green`, `yellow`, `grey` or `red`.
    pub status: Option<String>,
    pub optimizer_status: Option<QdrantOptimizer>,
    pub points: Option<u64>,
    pub vectors: Option<u64>,
    pub indexed_vectors: Option<u64>,
    pub segments: Option<u64>,
}

/// A collection's optimizer: `"ok"`, or `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QdrantOptimizer {
    Status(String),
    Error { error: String },
}

/// n8n's figures: its health and readiness endpoints, its version (`/rest/settings`, else
/// `/metrics`), and what its `/metrics` says when `N8N_METRICS=true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct N8n {
    /// The health endpoint that answered.
    pub health: String,
    pub health_ms: f64,
    /// The health answer's `status` (None: it was not JSON or had none).
    pub status: Option<String>,
    /// `/healthz/readiness` answered 2xx (None: n8n has no such endpoint).
    pub ready: Option<bool>,
    pub version: Option<String>,
    /// `on`, or how to turn the metrics on.
    pub metrics: String,
    /// From `/metrics` (None: metrics are off).
    pub figures: Option<N8nMetrics>,
}

/// What n8n's `/metrics` says (None: the family is not exported).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct N8nMetrics {
    pub active_workflows: Option<f64>,
    pub event_loop_lag_p99_ms: Option<f64>,
    pub heap_used_bytes: Option<f64>,
    pub queue_active: Option<f64>,
    pub queue_failed: Option<f64>,
    pub queue_waiting: Option<f64>,
    pub resident_memory_bytes: Option<f64>,
}

impl N8nMetrics {
    /// Each figure by its JSON name, in the order `status --json` prints them.
    pub fn named(&self) -> [(&'static str, Option<f64>); 7] {
        [
            ("active_workflows", self.active_workflows),
            ("event_loop_lag_p99_ms", self.event_loop_lag_p99_ms),
            ("heap_used_bytes", self.heap_used_bytes),
            ("queue_active", self.queue_active),
            ("queue_failed", self.queue_failed),
            ("queue_waiting", self.queue_waiting),
            ("resident_memory_bytes", self.resident_memory_bytes),
        ]
    }
}

/// Langflow's figures: its health endpoint, the checks of `/health_check` and its version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Langflow {
    /// The health endpoint that answered.
    pub health: String,
    pub health_ms: f64,
    /// `/health_check`: each check's answer (None: it gave no JSON object).
    pub checks: Option<BTreeMap<String, String>>,
    pub version: Option<String>,
    pub package: Option<String>,
}
