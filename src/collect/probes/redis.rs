//! Redis through the redis crate: `INFO` gives operations, memory against `maxmemory` and
//! its policy, evictions, keyspace hits and misses, clients and persistence. Rates and the
//! window's hit ratio come from the deltas of its counters between two samples.

use std::collections::BTreeMap;
use std::time::Instant;

use super::rate;
use crate::model::figures::{Redis, RedisPersistence};
use crate::model::probe::Creds;

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    commands: f64,
    evicted: f64,
    expired: f64,
    hits: f64,
    misses: f64,
}

pub struct Probe {
    creds: Creds,
    conn: Option<(String, redis::aio::MultiplexedConnection)>,
    prev: Option<(Instant, Counters)>,
}

/// `INFO` text -> field -> value (section headers and blank lines skipped).
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Keys per database from `db0:keys=12,expires=0,avg_ttl=0`.
fn keyspace(info: &BTreeMap<String, String>) -> (u64, BTreeMap<String, u64>) {
    let mut total = 0;
    let mut per = BTreeMap::new();
    for (k, v) in info.iter().filter(|(k, _)| {
        k.strip_prefix("db")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }) {
        let keys = v
            .split(',')
            .find_map(|kv| kv.strip_prefix("keys="))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        total += keys;
        per.insert(k.clone(), keys);
    }
    (total, per)
}

/// Why the Redis probe's sample failed; the texts are the ones the console shows.
#[derive(Debug, thiserror::Error)]
pub enum RedisProbeError {
    #[error(transparent)]
    Connect(#[from] crate::redis_conn::ConnectError),
    #[error("not connected")]
    NotConnected,
    #[error("INFO: {0}")]
    Info(redis::RedisError),
}

impl Probe {
    pub fn new(creds: Creds) -> Probe {
        Probe {
            creds,
            conn: None,
            prev: None,
        }
    }

    pub async fn sample(&mut self, addr: &str) -> Result<Redis, RedisProbeError> {
        if self.conn.as_ref().is_none_or(|(a, _)| a != addr) {
            self.conn = None;
            let conn = crate::redis_conn::connect(addr, self.creds.password.as_deref()).await?;
            self.conn = Some((addr.to_string(), conn));
        }
        let Some((_, conn)) = self.conn.as_mut() else {
            return Err(RedisProbeError::NotConnected);
        };
        let text: String = match redis::cmd("INFO").arg("all").query_async(conn).await {
            Ok(t) => t,
            Err(e) => {
                self.conn = None;
                return Err(RedisProbeError::Info(e));
            }
        };
        let info = parse_info(&text);
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok());
        let cur = Counters {
            commands: num("total_commands_processed").unwrap_or(0.0),
            evicted: num("evicted_keys").unwrap_or(0.0),
            expired: num("expired_keys").unwrap_or(0.0),
            hits: num("keyspace_hits").unwrap_or(0.0),
            misses: num("keyspace_misses").unwrap_or(0.0),
        };
        let now = Instant::now();
        let (dt, p) = match self.prev {
            // The previous sample's own INFO is counted by Redis: not the stack's work.
            Some((t, mut p)) => {
                p.commands = (p.commands + 1.0).min(cur.commands);
                (now.duration_since(t).as_secs_f64(), Some(p))
            }
            None => (0.0, None),
        };
        self.prev = Some((now, cur));
        Ok(build(&info, cur, p, dt))
    }
}

/// Figures from one `INFO` and the counters of the sample before (`dt` seconds ago).
fn build(info: &BTreeMap<String, String>, cur: Counters, prev: Option<Counters>, dt: f64) -> Redis {
    let num = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok());
    let s = |k: &str| info.get(k).cloned();
    let r = |f: fn(&Counters) -> f64| rate(prev.as_ref().map(f), f(&cur), dt);
    let ratio = |h: f64, m: f64| (h + m > 0.0).then(|| h / (h + m));
    let window = prev.and_then(|p| {
        let (h, m) = (cur.hits - p.hits, cur.misses - p.misses);
        (h >= 0.0 && m >= 0.0).then(|| ratio(h, m)).flatten()
    });
    let used = num("used_memory");
    let max = num("maxmemory").filter(|m| *m > 0.0);
    let (keys, per_db) = keyspace(info);
    Redis {
        version: s("redis_version"),
        uptime_s: num("uptime_in_seconds"),
        ops_per_s: r(|c| c.commands),
        instantaneous_ops_per_s: num("instantaneous_ops_per_sec"),
        memory_used_bytes: used,
        memory_rss_bytes: num("used_memory_rss"),
        memory_peak_bytes: num("used_memory_peak"),
        // 0 in Redis means no limit: shown as null, never as 0 bytes.
        maxmemory_bytes: max,
        memory_percent: used.zip(max).map(|(u, m)| u / m * 100.0),
        maxmemory_policy: s("maxmemory_policy"),
        evicted_keys: cur.evicted,
        evictions_per_s: r(|c| c.evicted),
        expired_per_s: r(|c| c.expired),
        keyspace_hits: cur.hits,
        keyspace_misses: cur.misses,
        hit_ratio: ratio(cur.hits, cur.misses),
        hit_ratio_window: window,
        connected_clients: num("connected_clients"),
        blocked_clients: num("blocked_clients"),
        keys,
        keys_per_db: per_db,
        persistence: RedisPersistence {
            aof_enabled: num("aof_enabled").map(|v| v > 0.0),
            aof_last_write_status: s("aof_last_write_status"),
            rdb_last_save_time: num("rdb_last_save_time"),
            rdb_changes_since_last_save: num("rdb_changes_since_last_save"),
            rdb_last_bgsave_status: s("rdb_last_bgsave_status"),
            rdb_bgsave_in_progress: num("rdb_bgsave_in_progress").map(|v| v > 0.0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::probes::recording::{recorded, round_trips};
    use serde_json::json;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n\
        # Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n# Memory\r\n\
        used_memory:1048576\r\nused_memory_rss:4194304\r\nmaxmemory:2097152\r\n\
        maxmemory_policy:allkeys-lru\r\n# Persistence\r\naof_enabled:0\r\n\
        rdb_last_save_time:1700000000\r\nrdb_changes_since_last_save:10\r\n\
        rdb_last_bgsave_status:ok\r\n# Stats\r\ntotal_commands_processed:1000\r\n\
        instantaneous_ops_per_sec:50\r\nevicted_keys:30\r\nexpired_keys:0\r\n\
        keyspace_hits:75\r\nkeyspace_misses:25\r\n# Keyspace\r\n\
        db0:keys=12,expires=0,avg_ttl=0\r\ndb3:keys=3,expires=1,avg_ttl=9\r\n";

    #[test]
    fn info_gives_rates_ratios_and_memory_against_maxmemory() {
        let info = parse_info(INFO);
        let prev = Counters {
            commands: 800.0,
            evicted: 10.0,
            expired: 0.0,
            hits: 50.0,
            misses: 0.0,
        };
        let cur = Counters {
            commands: 1000.0,
            evicted: 30.0,
            expired: 0.0,
            hits: 75.0,
            misses: 25.0,
        };
        let v = serde_json::to_value(build(&info, cur, Some(prev), 2.0)).unwrap();
        assert_eq!(v["version"], "7.0.15");
        assert_eq!(v["ops_per_s"], 100.0);
        assert_eq!(v["evictions_per_s"], 10.0);
        assert_eq!(v["hit_ratio"], 0.75);
        assert_eq!(v["hit_ratio_window"], 0.5);
        assert_eq!(v["memory_percent"], 50.0);
        assert_eq!(v["maxmemory_policy"], "allkeys-lru");
        assert_eq!(v["keys"], 15);
        assert_eq!(v["persistence"]["aof_enabled"], false);
        let first = build(&info, cur, None, 0.0);
        assert!(first.ops_per_s.is_none(), "one sample is not a rate");
        let mut unlimited = info.clone();
        unlimited.insert("maxmemory".into(), "0".into());
        let v = build(&unlimited, cur, None, 0.0);
        assert!(v.maxmemory_bytes.is_none() && v.memory_percent.is_none());
    }

    #[test]
    fn redis_figures_keep_their_shape() {
        let info = parse_info(INFO);
        let cur = Counters {
            commands: 1000.0,
            evicted: 30.0,
            expired: 0.0,
            hits: 75.0,
            misses: 25.0,
        };
        let prev = Counters {
            commands: 800.0,
            hits: 50.0,
            ..cur
        };
        let mut unlimited = info.clone();
        unlimited.insert("maxmemory".into(), "0".into());
        recorded(
            "probe_figures_redis.json",
            &json!({
                "second": build(&info, cur, Some(prev), 2.0),
                "first_unlimited": build(&unlimited, cur, None, 0.0),
            }),
        );
    }

    /// The recorded figures read into their type and written back are the same JSON.
    #[test]
    fn recorded_figures_round_trip_through_their_type() {
        round_trips::<crate::model::figures::Redis>("probe_figures_redis.json");
    }
}
