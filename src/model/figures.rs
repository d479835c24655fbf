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

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorded figures read into the types and written back are the same JSON.
    #[test]
    fn recorded_redis_figures_round_trip() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/snapshot/probe_figures_redis.json");
        let all: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for (name, v) in all {
            let typed: Redis = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&typed).unwrap(), v, "{name}");
        }
    }
}
