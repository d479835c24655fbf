//! The figures a service probe measures, one typed struct per kind, written down field by
//! field; they serialize to the JSON `status --json` prints under
//! `services[].probe.figures` (recorded in `tests/fixtures/snapshot/probe_figures_*.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Redis' figures from one `INFO` and the counters of the sample before. Rates are None
/// on the first sample; `maxmemory_bytes` is None when Redis has no limit (0 in Redis).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
#[serde(default)]
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
