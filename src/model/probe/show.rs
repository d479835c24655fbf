//! Text of a probe's figures for people: one summary line and detail rows (label, value),
//! shared by `osmen status` and the console's Services detail pane. A figure that is
//! missing reads `-`.

use super::{Figures, ProbeState};
use crate::model::figures::{Langflow, N8n, Postgres, Qdrant, Redis};
use crate::model::ollama::Ollama;
use crate::model::units::format_bytes;

/// A figure JSON can write: NaN and the infinities are missing there too.
fn fin(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}
fn rate(v: Option<f64>) -> String {
    match fin(v) {
        Some(x) if x >= 100.0 => format!("{x:.0}/s"),
        Some(x) => format!("{x:.1}/s"),
        None => "-".into(),
    }
}
fn pct(v: Option<f64>) -> String {
    fin(v)
        .map(|x| format!("{x:.0}%"))
        .unwrap_or_else(|| "-".into())
}
fn ratio(v: Option<f64>) -> String {
    fin(v)
        .map(|x| format!("{:.1}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}
fn ms(v: Option<f64>) -> String {
    match fin(v) {
        Some(x) if x >= 100.0 => format!("{x:.0} ms"),
        Some(x) if x >= 1.0 => format!("{x:.1} ms"),
        Some(x) => format!("{x:.3} ms"),
        None => "-".into(),
    }
}
fn bytes(v: Option<f64>) -> String {
    fin(v)
        .map(|x| format_bytes(x as u64))
        .unwrap_or_else(|| "-".into())
}
/// A number as its JSON reads: whole numbers without a fraction, the rest as JSON writes
/// them (not finite: `-`, as JSON has no such number).
fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
        Some(x) => serde_json::Number::from_f64(x)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into()),
        None => "-".into(),
    }
}
fn int(v: Option<u64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}
fn text(v: Option<&str>) -> String {
    v.map(String::from).unwrap_or_else(|| "-".into())
}
fn yes(v: Option<bool>) -> String {
    v.map(|b| b.to_string()).unwrap_or_else(|| "-".into())
}

/// One line: the figures an operator reads first, then the error if the last
/// sample failed.
pub fn summary(p: &ProbeState) -> String {
    let mut s = match &p.figures {
        None => format!("{}: no sample yet", p.kind.as_str()),
        Some(Figures::Postgres(x)) => summary_postgres(x),
        Some(Figures::Redis(x)) => summary_redis(x),
        Some(Figures::Qdrant(x)) => format!(
            "qdrant {}  {} collections {:.0} points  search {} P95 {}  insert {}",
            text(x.version.as_deref()),
            x.collections.len(),
            x.points,
            rate(x.searches_per_s),
            ms(x.search_p95_ms),
            rate(x.inserts_per_s),
        ),
        Some(Figures::N8n(x)) => format!(
            "n8n {}  health {} ({})  ready {}  metrics {}",
            text(x.version.as_deref()),
            text(x.status.as_deref()),
            ms(Some(x.health_ms)),
            yes(x.ready),
            if x.metrics == "on" { "on" } else { "off" },
        ),
        Some(Figures::Langflow(x)) => format!(
            "langflow {}  health ok ({})  checks {}",
            text(x.version.as_deref()),
            ms(Some(x.health_ms)),
            x.checks
                .as_ref()
                .map(|o| o
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "-".into()),
        ),
        Some(Figures::Ollama(x)) => format!(
            "ollama {}  {} installed, {} loaded",
            text(x.version.as_deref()),
            x.installed.len(),
            x.loaded.len(),
        ),
    };
    if let Some(e) = &p.last_error {
        s.push_str(&format!("  error: {e}"));
    }
    s
}

fn summary_postgres(x: &Postgres) -> String {
    let c = &x.connections;
    format!(
        "postgres {}  conn {}/{} ({})  {} tx  {} ins  cache {}{}",
        x.version,
        c.used,
        c.max,
        pct(Some(c.percent)),
        rate(x.transactions_per_s),
        rate(x.inserts_per_s),
        ratio(x.cache_hit_ratio),
        match &x.longest_query {
            Some(q) => format!("  longest {:.1}s", q.seconds),
            None => String::new(),
        }
    )
}

fn summary_redis(x: &Redis) -> String {
    format!(
        "redis {}  {} ops  mem {}/{} ({}) {}  evict {}  hit {}  clients {}",
        text(x.version.as_deref()),
        rate(x.ops_per_s),
        bytes(x.memory_used_bytes),
        match x.maxmemory_bytes {
            None => "no max".into(),
            m => bytes(m),
        },
        pct(x.memory_percent),
        text(x.maxmemory_policy.as_deref()),
        rate(x.evictions_per_s),
        ratio(x.hit_ratio_window.or(x.hit_ratio)),
        num(x.connected_clients),
    )
}

/// Detail rows for the selected service.
pub fn details(p: &ProbeState) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row(
        "probe",
        format!(
            "{} at {} every {}s",
            p.kind.as_str(),
            p.address.as_deref().unwrap_or("-"),
            num(Some(p.every_s))
        ),
    );
    row("status", p.status.clone());
    let Some(x) = &p.figures else {
        return out;
    };
    match x {
        Figures::Postgres(x) => details_postgres(x, &mut out),
        Figures::Redis(x) => details_redis(x, &mut out),
        Figures::Qdrant(x) => details_qdrant(x, &mut out),
        Figures::N8n(x) => details_n8n(x, &mut out),
        Figures::Langflow(x) => details_langflow(x, &mut out),
        Figures::Ollama(x) => details_ollama(x, &mut out),
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
fn details_postgres(x: &Postgres, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    let c = &x.connections;
    row("version", x.version.clone());
    row(
        "connections",
        format!(
            "{} of {} ({} reserved) = {}   {}",
            c.used,
            c.max,
            c.reserved,
            pct(Some(c.percent)),
            c.by_state
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    row(
        "transactions",
        format!(
            "{}  (commits {}, rollbacks {})",
            rate(x.transactions_per_s),
            rate(x.commits_per_s),
            rate(x.rollbacks_per_s)
        ),
    );
    row(
        "rows",
        format!(
            "inserted {}  updated {}  deleted {}  fetched {}",
            rate(x.inserts_per_s),
            rate(x.updates_per_s),
            rate(x.deletes_per_s),
            rate(x.rows_fetched_per_s)
        ),
    );
    row(
        "cache hit",
        format!(
            "{} since start, {} since the last sample",
            ratio(x.cache_hit_ratio),
            ratio(x.cache_hit_ratio_window)
        ),
    );
    if let Some(m) = x.mean_query_ms_window {
        row("mean query", ms(Some(m)));
    }
    row(
        "longest query",
        match &x.longest_query {
            Some(q) => format!(
                "{:.2}s {} in {}: {}",
                q.seconds, q.state, q.database, q.query
            ),
            None => "none running".into(),
        },
    );
    for d in &x.databases {
        row(
            "database",
            format!(
                "{}  {}  {} connections",
                d.name,
                bytes(Some(d.size_bytes as f64)),
                d.connections
            ),
        );
    }
    match &x.top_queries {
        Some(q) if !q.is_empty() => {
            for t in q.iter().take(5) {
                row(
                    "slow query",
                    format!(
                        "{} mean, {} calls: {}",
                        ms(Some(t.mean_ms)),
                        t.calls,
                        t.query
                    ),
                );
            }
        }
        Some(_) => row("slow queries", "none recorded yet".into()),
        None => row("slow queries", x.statements.clone()),
    }
}

/// Detail rows of a redis probe's figures.
fn details_redis(x: &Redis, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row(
        "version",
        format!("{}  up {}s", text(x.version.as_deref()), num(x.uptime_s)),
    );
    row(
        "operations",
        format!(
            "{}  (Redis' instantaneous {})",
            rate(x.ops_per_s),
            rate(x.instantaneous_ops_per_s)
        ),
    );
    row(
        "memory",
        format!(
            "{} of maxmemory {} ({})  rss {}  peak {}",
            bytes(x.memory_used_bytes),
            match x.maxmemory_bytes {
                None => "unlimited".into(),
                m => bytes(m),
            },
            pct(x.memory_percent),
            bytes(x.memory_rss_bytes),
            bytes(x.memory_peak_bytes)
        ),
    );
    row("policy", text(x.maxmemory_policy.as_deref()));
    row(
        "evictions",
        format!(
            "{}  ({} keys evicted since start)  expired {}",
            rate(x.evictions_per_s),
            num(Some(x.evicted_keys)),
            rate(x.expired_per_s)
        ),
    );
    row(
        "hit ratio",
        format!(
            "{} since start, {} since the last sample",
            ratio(x.hit_ratio),
            ratio(x.hit_ratio_window)
        ),
    );
    row(
        "clients",
        format!(
            "{} connected, {} blocked   keys {}",
            num(x.connected_clients),
            num(x.blocked_clients),
            x.keys
        ),
    );
    let ps = &x.persistence;
    row(
        "persistence",
        format!(
            "AOF {}  last save {}  {} changes since  bgsave {}",
            if ps.aof_enabled == Some(true) {
                "on"
            } else {
                "off"
            },
            ps.rdb_last_save_time
                .map(|t| crate::model::units::format_rfc3339(t as u64, 0))
                .unwrap_or("-".into()),
            num(ps.rdb_changes_since_last_save),
            text(ps.rdb_last_bgsave_status.as_deref())
        ),
    );
}

/// Detail rows of a qdrant probe's figures.
fn details_qdrant(x: &Qdrant, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row("version", text(x.version.as_deref()));
    row(
        "searches",
        format!(
            "{}  P50 {}  P95 {}  P99 {}  mean {}  (Qdrant's avg since start {})",
            rate(x.searches_per_s),
            ms(x.search_p50_ms),
            ms(x.search_p95_ms),
            ms(x.search_p99_ms),
            ms(x.search_mean_ms),
            ms(x.search_avg_since_start_ms)
        ),
    );
    row(
        "inserts",
        format!(
            "{}  failures {}",
            rate(x.inserts_per_s),
            rate(x.failures_per_s)
        ),
    );
    row(
        "memory",
        format!(
            "resident {}  allocated {}  vectors {}",
            bytes(x.memory_resident_bytes),
            bytes(x.memory_allocated_bytes),
            num(x.vectors_total)
        ),
    );
    for c in &x.collections {
        let info = c.info();
        row(
            "collection",
            format!(
                "{} {}  points {}  indexed {}  segments {}",
                c.name(),
                text(info.and_then(|i| i.status.as_deref())),
                int(info.and_then(|i| i.points)),
                int(info.and_then(|i| i.indexed_vectors)),
                int(info.and_then(|i| i.segments))
            ),
        );
    }
}

/// Detail rows of a n8n probe's figures.
fn details_n8n(x: &N8n, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row("version", text(x.version.as_deref()));
    row(
        "health",
        format!(
            "{} {} ({})",
            x.health,
            text(x.status.as_deref()),
            ms(Some(x.health_ms))
        ),
    );
    row("ready", yes(x.ready));
    row("metrics", x.metrics.clone());
    if let Some(m) = &x.figures {
        for (k, v) in m.named() {
            if fin(v).is_some() {
                row(&k.replace('_', " "), num(v));
            }
        }
    }
}

/// Detail rows of a langflow probe's figures.
fn details_langflow(x: &Langflow, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row(
        "version",
        format!(
            "{} {}",
            text(x.version.as_deref()),
            text(x.package.as_deref())
        ),
    );
    row(
        "health",
        format!("{} ({})", x.health, ms(Some(x.health_ms))),
    );
    for (k, v) in x.checks.iter().flatten() {
        row(&format!("check {k}"), v.clone());
    }
}

/// Detail rows of a ollama probe's figures.
fn details_ollama(x: &Ollama, out: &mut Vec<(String, String)>) {
    let mut row = |k: &str, v: String| out.push((k.to_string(), v));
    row("version", text(x.version.as_deref()));
    row("installed", x.installed.join(", "));
    for m in &x.loaded {
        row(
            "loaded",
            format!(
                "{}  {} ({:.0}% on GPU){}",
                m.name,
                bytes(Some(m.size_bytes as f64)),
                m.gpu_percent,
                if m.partly_on_cpu {
                    "  partly on CPU"
                } else {
                    ""
                }
            ),
        );
    }
}
