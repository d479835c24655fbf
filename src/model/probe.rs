//! Service probes: which kind of service a compose service is (from its image name or an
//! `x-osmen-probe` key), and how often and on which container port it is asked.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Postgres,
    Redis,
    Qdrant,
    N8n,
    Langflow,
    Ollama,
}

pub const KINDS: [ProbeKind; 6] = [
    ProbeKind::Postgres,
    ProbeKind::Redis,
    ProbeKind::Qdrant,
    ProbeKind::N8n,
    ProbeKind::Langflow,
    ProbeKind::Ollama,
];

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
            ProbeKind::Qdrant => "qdrant",
            ProbeKind::N8n => "n8n",
            ProbeKind::Langflow => "langflow",
            ProbeKind::Ollama => "ollama",
        }
    }

    pub fn parse(s: &str) -> Option<ProbeKind> {
        let s = s.trim().to_ascii_lowercase();
        let s = if s == "postgresql" { "postgres" } else { &s };
        KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind an image is, by its repository name without registry or tag:
    /// `postgres:15-alpine`, `docker.io/library/redis:7`, `qdrant/qdrant`,
    /// `n8nio/n8n`, `langflowai/langflow`, `ollama/ollama`, `bitnami/postgresql`.
    pub fn from_image(image: &str) -> Option<ProbeKind> {
        let no_digest = image.split('@').next().unwrap_or(image);
        let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
        let repo = last.split(':').next().unwrap_or(last).to_ascii_lowercase();
        // `osmen-redis`, `redis-stack`, `pgvector`-style names: the kind as a word of it.
        let words: Vec<&str> = repo.split(['-', '_', '.']).collect();
        KINDS.into_iter().find(|k| {
            let name = k.as_str();
            repo == name
                || words.contains(&name)
                || (*k == ProbeKind::Postgres && words.contains(&"postgresql"))
        })
    }

    /// The port the service listens on inside its container.
    pub fn default_port(self) -> u16 {
        match self {
            ProbeKind::Postgres => 5432,
            ProbeKind::Redis => 6379,
            ProbeKind::Qdrant => 6333,
            ProbeKind::N8n => 5678,
            ProbeKind::Langflow => 7860,
            ProbeKind::Ollama => 11434,
        }
    }

    /// How often it is asked: databases often (their rates move), UIs rarely.
    pub fn default_period(self) -> Duration {
        Duration::from_secs(match self {
            ProbeKind::Redis => 2,
            ProbeKind::Postgres | ProbeKind::Qdrant => 5,
            ProbeKind::Ollama => 10,
            ProbeKind::N8n | ProbeKind::Langflow => 15,
        })
    }
}

/// `x-osmen-probe` of a service: a kind (`x-osmen-probe: redis`), `none` (never probe), or
/// a mapping `{kind, port, every}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSpec {
    /// None: probing is turned off for this service.
    pub kind: Option<ProbeKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub every: Option<Duration>,
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// One sample of one probed service, as the probe sends it to the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub service: String,
    pub kind: ProbeKind,
    /// `host:port` it was asked at (None: it could not be reached at all).
    pub address: Option<String>,
    pub every_s: f64,
    /// The figures it measured, or why it could not (credentials already scrubbed).
    pub result: Result<serde_json::Value, String>,
}

/// A service probe's last report as a service row carries it (`ServiceStats::probe`):
/// what was asked where, how it went, and the figures of the last good sample (kept
/// while the probe fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    pub kind: ProbeKind,
    /// `host:port` it was asked at (None: it could not be reached at all).
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub every_s: f64,
    /// `ok`, or `error: <why>`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last good sample was taken (seconds since the Unix epoch).
    #[serde(default)]
    pub last_sample: Option<f64>,
    /// The figures of the last good sample, by kind (None before the first).
    #[serde(default)]
    pub figures: Option<serde_json::Value>,
}

impl ProbeState {
    /// A figure of the last good sample by its name, as a number.
    pub fn figure(&self, key: &str) -> Option<f64> {
        self.figures.as_ref()?.get(key)?.as_f64()
    }
}

/// The kinds as a list for error messages.
pub fn kinds_list() -> String {
    KINDS
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_images() {
        for (image, kind) in [
            ("postgres:15-alpine", Some(ProbeKind::Postgres)),
            (
                "docker.io/library/postgres@sha256:abc",
                Some(ProbeKind::Postgres),
            ),
            ("bitnami/postgresql:16", Some(ProbeKind::Postgres)),
            ("redis:7-alpine", Some(ProbeKind::Redis)),
            ("osmen-redis:test", Some(ProbeKind::Redis)),
            ("qdrant/qdrant:v1.12.4", Some(ProbeKind::Qdrant)),
            ("n8nio/n8n:latest", Some(ProbeKind::N8n)),
            ("langflowai/langflow:1.0.19", Some(ProbeKind::Langflow)),
            ("ollama/ollama", Some(ProbeKind::Ollama)),
            ("localhost:5000/redis", Some(ProbeKind::Redis)),
            ("nginx:1.27", None),
            ("osmen-standin:test", None),
            ("redisinsight/redisinsight", None),
        ] {
            assert_eq!(ProbeKind::from_image(image), kind, "{image}");
        }
        assert_eq!(ProbeKind::parse("PostgreSQL"), Some(ProbeKind::Postgres));
        assert_eq!(ProbeKind::parse("mysql"), None);
    }
}

/// Text of a probe's figures for people: one summary line and detail rows (label, value),
/// shared by `osmen status` and the console's Services detail pane.
pub mod show {
    use serde_json::Value;

    use crate::model::units::format_bytes;

    fn f(v: &Value) -> Option<f64> {
        v.as_f64()
    }
    fn rate(v: &Value) -> String {
        match f(v) {
            Some(x) if x >= 100.0 => format!("{x:.0}/s"),
            Some(x) => format!("{x:.1}/s"),
            None => "-".into(),
        }
    }
    fn pct(v: &Value) -> String {
        f(v).map(|x| format!("{x:.0}%"))
            .unwrap_or_else(|| "-".into())
    }
    fn ratio(v: &Value) -> String {
        f(v).map(|x| format!("{:.1}%", x * 100.0))
            .unwrap_or_else(|| "-".into())
    }
    fn ms(v: &Value) -> String {
        match f(v) {
            Some(x) if x >= 100.0 => format!("{x:.0} ms"),
            Some(x) if x >= 1.0 => format!("{x:.1} ms"),
            Some(x) => format!("{x:.3} ms"),
            None => "-".into(),
        }
    }
    fn bytes(v: &Value) -> String {
        f(v).map(|x| format_bytes(x as u64))
            .unwrap_or_else(|| "-".into())
    }
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n)
                if n.as_f64()
                    .is_some_and(|x| x.fract() == 0.0 && x.abs() < 1e15) =>
            {
                format!("{}", n.as_f64().unwrap_or(0.0) as i64)
            }
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    }

    /// One line: the figures an operator reads first, then the error if the last
    /// sample failed.
    pub fn summary(p: &super::ProbeState) -> String {
        let x = p.figures.as_ref().unwrap_or(&Value::Null);
        let mut s = match p.kind.as_str() {
            "postgres" => format!(
                "postgres {}  conn {}/{} ({})  {} tx  {} ins  cache {}{}",
                text(&x["version"]),
                text(&x["connections"]["used"]),
                text(&x["connections"]["max"]),
                pct(&x["connections"]["percent"]),
                rate(&x["transactions_per_s"]),
                rate(&x["inserts_per_s"]),
                ratio(&x["cache_hit_ratio"]),
                match f(&x["longest_query"]["seconds"]) {
                    Some(sec) => format!("  longest {sec:.1}s"),
                    None => String::new(),
                }
            ),
            "redis" => format!(
                "redis {}  {} ops  mem {}/{} ({}) {}  evict {}  hit {}  clients {}",
                text(&x["version"]),
                rate(&x["ops_per_s"]),
                bytes(&x["memory_used_bytes"]),
                if x["maxmemory_bytes"].is_null() {
                    "no max".into()
                } else {
                    bytes(&x["maxmemory_bytes"])
                },
                pct(&x["memory_percent"]),
                text(&x["maxmemory_policy"]),
                rate(&x["evictions_per_s"]),
                ratio(if x["hit_ratio_window"].is_null() {
                    &x["hit_ratio"]
                } else {
                    &x["hit_ratio_window"]
                }),
                text(&x["connected_clients"]),
            ),
            "qdrant" => format!(
                "qdrant {}  {} collections {} points  search {} P95 {}  insert {}",
                text(&x["version"]),
                x["collections"].as_array().map(Vec::len).unwrap_or(0),
                f(&x["points"])
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or("-".into()),
                rate(&x["searches_per_s"]),
                ms(&x["search_p95_ms"]),
                rate(&x["inserts_per_s"]),
            ),
            "n8n" => format!(
                "n8n {}  health {} ({})  ready {}  metrics {}",
                text(&x["version"]),
                text(&x["status"]),
                ms(&x["health_ms"]),
                text(&x["ready"]),
                if x["metrics"] == "on" { "on" } else { "off" },
            ),
            "langflow" => format!(
                "langflow {}  health ok ({})  checks {}",
                text(&x["version"]),
                ms(&x["health_ms"]),
                x["checks"]
                    .as_object()
                    .map(|o| o
                        .iter()
                        .map(|(k, v)| format!("{k} {}", text(v)))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_else(|| "-".into()),
            ),
            "ollama" => format!(
                "ollama {}  {} installed, {} loaded",
                text(&x["version"]),
                x["installed"].as_array().map(Vec::len).unwrap_or(0),
                x["loaded"].as_array().map(Vec::len).unwrap_or(0),
            ),
            k => format!("{k}: no figures"),
        };
        if x.is_null() {
            s = format!("{}: no sample yet", p.kind.as_str());
        }
        if let Some(e) = &p.last_error {
            s.push_str(&format!("  error: {e}"));
        }
        s
    }

    /// Detail rows for the selected service.
    pub fn details(p: &super::ProbeState) -> Vec<(String, String)> {
        let x = p.figures.as_ref().unwrap_or(&Value::Null);
        let mut out: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row(
            "probe",
            format!(
                "{} at {} every {}s",
                p.kind.as_str(),
                p.address.as_deref().unwrap_or("-"),
                text(&Value::from(p.every_s))
            ),
        );
        row("status", p.status.clone());
        if x.is_null() {
            return out;
        }
        match p.kind.as_str() {
            "postgres" => details_postgres(x, &mut out),
            "redis" => details_redis(x, &mut out),
            "qdrant" => details_qdrant(x, &mut out),
            "n8n" => details_n8n(x, &mut out),
            "langflow" => details_langflow(x, &mut out),
            "ollama" => details_ollama(x, &mut out),
            _ => {}
        }
        if let Some(t) = p.last_sample {
            out.push((
                "sampled".into(),
                crate::model::units::format_rfc3339(t as u64, 0),
            ));
        }
        out
    }

    /// Detail rows of a postgres probe's figures.
    fn details_postgres(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        let c = &x["connections"];
        row("version", text(&x["version"]));
        row(
            "connections",
            format!(
                "{} of {} ({} reserved) = {}   {}",
                text(&c["used"]),
                text(&c["max"]),
                text(&c["reserved"]),
                pct(&c["percent"]),
                c["by_state"]
                    .as_object()
                    .map(|o| o
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
        );
        row(
            "transactions",
            format!(
                "{}  (commits {}, rollbacks {})",
                rate(&x["transactions_per_s"]),
                rate(&x["commits_per_s"]),
                rate(&x["rollbacks_per_s"])
            ),
        );
        row(
            "rows",
            format!(
                "inserted {}  updated {}  deleted {}  fetched {}",
                rate(&x["inserts_per_s"]),
                rate(&x["updates_per_s"]),
                rate(&x["deletes_per_s"]),
                rate(&x["rows_fetched_per_s"])
            ),
        );
        row(
            "cache hit",
            format!(
                "{} since start, {} since the last sample",
                ratio(&x["cache_hit_ratio"]),
                ratio(&x["cache_hit_ratio_window"])
            ),
        );
        if !x["mean_query_ms_window"].is_null() {
            row("mean query", ms(&x["mean_query_ms_window"]));
        }
        row(
            "longest query",
            match f(&x["longest_query"]["seconds"]) {
                Some(s) => format!(
                    "{s:.2}s {} in {}: {}",
                    text(&x["longest_query"]["state"]),
                    text(&x["longest_query"]["database"]),
                    text(&x["longest_query"]["query"])
                ),
                None => "none running".into(),
            },
        );
        for d in x["databases"].as_array().into_iter().flatten() {
            row(
                "database",
                format!(
                    "{}  {}  {} connections",
                    text(&d["name"]),
                    bytes(&d["size_bytes"]),
                    text(&d["connections"])
                ),
            );
        }
        match x["top_queries"].as_array() {
            Some(q) if !q.is_empty() => {
                for t in q.iter().take(5) {
                    row(
                        "slow query",
                        format!(
                            "{} mean, {} calls: {}",
                            ms(&t["mean_ms"]),
                            text(&t["calls"]),
                            text(&t["query"])
                        ),
                    );
                }
            }
            Some(_) => row("slow queries", "none recorded yet".into()),
            None => row("slow queries", text(&x["statements"])),
        }
    }

    /// Detail rows of a redis probe's figures.
    fn details_redis(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row(
            "version",
            format!("{}  up {}s", text(&x["version"]), text(&x["uptime_s"])),
        );
        row(
            "operations",
            format!(
                "{}  (Redis' instantaneous {})",
                rate(&x["ops_per_s"]),
                rate(&x["instantaneous_ops_per_s"])
            ),
        );
        row(
            "memory",
            format!(
                "{} of maxmemory {} ({})  rss {}  peak {}",
                bytes(&x["memory_used_bytes"]),
                if x["maxmemory_bytes"].is_null() {
                    "unlimited".into()
                } else {
                    bytes(&x["maxmemory_bytes"])
                },
                pct(&x["memory_percent"]),
                bytes(&x["memory_rss_bytes"]),
                bytes(&x["memory_peak_bytes"])
            ),
        );
        row("policy", text(&x["maxmemory_policy"]));
        row(
            "evictions",
            format!(
                "{}  ({} keys evicted since start)  expired {}",
                rate(&x["evictions_per_s"]),
                text(&x["evicted_keys"]),
                rate(&x["expired_per_s"])
            ),
        );
        row(
            "hit ratio",
            format!(
                "{} since start, {} since the last sample",
                ratio(&x["hit_ratio"]),
                ratio(&x["hit_ratio_window"])
            ),
        );
        row(
            "clients",
            format!(
                "{} connected, {} blocked   keys {}",
                text(&x["connected_clients"]),
                text(&x["blocked_clients"]),
                text(&x["keys"])
            ),
        );
        let ps = &x["persistence"];
        row(
            "persistence",
            format!(
                "AOF {}  last save {}  {} changes since  bgsave {}",
                if ps["aof_enabled"] == true {
                    "on"
                } else {
                    "off"
                },
                f(&ps["rdb_last_save_time"])
                    .map(|t| crate::model::units::format_rfc3339(t as u64, 0))
                    .unwrap_or("-".into()),
                text(&ps["rdb_changes_since_last_save"]),
                text(&ps["rdb_last_bgsave_status"])
            ),
        );
    }

    /// Detail rows of a qdrant probe's figures.
    fn details_qdrant(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row("version", text(&x["version"]));
        row(
            "searches",
            format!(
                "{}  P50 {}  P95 {}  P99 {}  mean {}  (Qdrant's avg since start {})",
                rate(&x["searches_per_s"]),
                ms(&x["search_p50_ms"]),
                ms(&x["search_p95_ms"]),
                ms(&x["search_p99_ms"]),
                ms(&x["search_mean_ms"]),
                ms(&x["search_avg_since_start_ms"])
            ),
        );
        row(
            "inserts",
            format!(
                "{}  failures {}",
                rate(&x["inserts_per_s"]),
                rate(&x["failures_per_s"])
            ),
        );
        row(
            "memory",
            format!(
                "resident {}  allocated {}  vectors {}",
                bytes(&x["memory_resident_bytes"]),
                bytes(&x["memory_allocated_bytes"]),
                text(&x["vectors_total"])
            ),
        );
        for c in x["collections"].as_array().into_iter().flatten() {
            row(
                "collection",
                format!(
                    "{} {}  points {}  indexed {}  segments {}",
                    text(&c["name"]),
                    text(&c["status"]),
                    text(&c["points"]),
                    text(&c["indexed_vectors"]),
                    text(&c["segments"])
                ),
            );
        }
    }

    /// Detail rows of a n8n probe's figures.
    fn details_n8n(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row("version", text(&x["version"]));
        row(
            "health",
            format!(
                "{} {} ({})",
                text(&x["health"]),
                text(&x["status"]),
                ms(&x["health_ms"])
            ),
        );
        row("ready", text(&x["ready"]));
        row("metrics", text(&x["metrics"]));
        if let Some(o) = x["figures"].as_object() {
            for (k, v) in o.iter().filter(|(_, v)| !v.is_null()) {
                row(&k.replace('_', " "), text(v));
            }
        }
    }

    /// Detail rows of a langflow probe's figures.
    fn details_langflow(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row(
            "version",
            format!("{} {}", text(&x["version"]), text(&x["package"])),
        );
        row(
            "health",
            format!("{} ({})", text(&x["health"]), ms(&x["health_ms"])),
        );
        if let Some(o) = x["checks"].as_object() {
            for (k, v) in o {
                row(&format!("check {k}"), text(v));
            }
        }
    }

    /// Detail rows of a ollama probe's figures.
    fn details_ollama(x: &Value, out: &mut Vec<(String, String)>) {
        let mut row = |k: &str, v: String| out.push((k.to_string(), v));
        row("version", text(&x["version"]));
        row(
            "installed",
            x["installed"]
                .as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        );
        for m in x["loaded"].as_array().into_iter().flatten() {
            row(
                "loaded",
                format!(
                    "{}  {} ({:.0}% on GPU){}",
                    text(&m["name"]),
                    bytes(&m["size_bytes"]),
                    f(&m["gpu_percent"]).unwrap_or(0.0),
                    if m["partly_on_cpu"] == true {
                        "  partly on CPU"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
}
