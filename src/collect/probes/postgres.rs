//! PostgreSQL through its own protocol (tokio-postgres): connections against
//! `max_connections`, transactions and inserts per second from `pg_stat_database`
//! deltas, cache hit ratio, the longest running query, database sizes, and the slowest
//! statements by mean time from `pg_stat_statements` when the extension is there.
//!
//! Each sample reads everything in one read-only transaction; that one transaction is
//! taken out of the next sample's rates, which are then the stack's own work.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use tokio_postgres::{Client, NoTls};

use super::rate;
use crate::model::figures::{PgConnections, PgDatabase, PgQuery, PgStatement, Postgres};
use crate::model::probe::Creds;

/// Counters summed over the databases, for rates.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    commits: f64,
    rollbacks: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
    fetched: f64,
    blks_hit: f64,
    blks_read: f64,
    stmt_calls: Option<f64>,
    stmt_ms: Option<f64>,
}

pub struct Probe {
    creds: Creds,
    client: Option<(String, Client)>,
    prev: Option<(Instant, Counters)>,
}

const HOW_TO_ENABLE: &str = "pg_stat_statements is not enabled: start postgres with \
     `-c shared_preload_libraries=pg_stat_statements` (compose `command:` or \
     postgresql.conf), then run `CREATE EXTENSION pg_stat_statements;` in";

/// Hides the value of `PASSWORD '...'` in a query text (ALTER ROLE ... PASSWORD '...'),
/// SQL's doubled quotes included.
pub fn mask_query(q: &str) -> String {
    let lower = q.to_ascii_lowercase();
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len());
    let mut i = 0;
    while let Some(at) = lower[i..].find("password") {
        let mut j = i + at + "password".len();
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'\'' {
            out.push_str(&q[i..j]);
            i = j;
            continue;
        }
        out.push_str(&q[i..j]);
        // The closing quote: a quote not followed by another one.
        let mut k = j + 1;
        loop {
            match b[k..].iter().position(|&c| c == b'\'') {
                Some(p) if k + p + 1 < b.len() && b[k + p + 1] == b'\'' => k += p + 2,
                Some(p) => {
                    k += p + 1;
                    break;
                }
                None => {
                    k = b.len();
                    break;
                }
            }
        }
        out.push('\'');
        out.push_str(crate::model::secret::MASK);
        out.push('\'');
        i = k;
    }
    out.push_str(&q[i..]);
    out
}

fn short(q: &str) -> String {
    let one: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
    let m = mask_query(&one);
    if m.chars().count() > 160 {
        m.chars().take(159).collect::<String>() + "…"
    } else {
        m
    }
}

impl Probe {
    pub fn new(creds: Creds) -> Probe {
        Probe {
            creds,
            client: None,
            prev: None,
        }
    }

    async fn connect(&mut self, addr: &str) -> Result<(), PgProbeError> {
        if let Some((a, c)) = &self.client
            && a == addr
            && !c.is_closed()
        {
            return Ok(());
        }
        self.client = None;
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| PgProbeError::BadAddress(addr.to_string()))?;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(host)
            .port(port)
            .application_name("osmen-probe")
            .connect_timeout(Duration::from_secs(3));
        if let Some(u) = &self.creds.user {
            cfg.user(u);
        }
        if let Some(p) = &self.creds.password {
            cfg.password(p);
        }
        if let Some(d) = &self.creds.database {
            cfg.dbname(d);
        }
        let (client, conn) = cfg
            .connect(NoTls)
            .await
            .map_err(|source| PgProbeError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.client = Some((addr.to_string(), client));
        Ok(())
    }

    pub async fn sample(&mut self, addr: &str) -> Result<Postgres, PgProbeError> {
        self.connect(addr).await?;
        let r = self.read().await;
        if r.is_err() {
            // A broken connection is opened afresh next time.
            self.client = None;
        }
        r
    }

    async fn read(&mut self) -> Result<Postgres, PgProbeError> {
        let Some((_, c)) = &self.client else {
            return Err(PgProbeError::NotConnected);
        };
        let q = PgProbeError::Query;
        c.batch_execute("BEGIN READ ONLY").await.map_err(q)?;
        let settings = c
            .query_one(
                "/* osmen-probe */ SELECT current_setting('server_version'), \
                 current_setting('max_connections')::int8, \
                 current_setting('superuser_reserved_connections')::int8, current_database()",
                &[],
            )
            .await
            .map_err(q)?;
        let (version, max, reserved, db): (String, i64, i64, String) = (
            settings.get(0),
            settings.get(1),
            settings.get(2),
            settings.get(3),
        );
        let states = c
            .query(
                "/* osmen-probe */ SELECT coalesce(state, 'unknown'), count(*)::int8 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' GROUP BY 1",
                &[],
            )
            .await
            .map_err(q)?;
        let mut used = 0i64;
        let mut by_state = BTreeMap::new();
        for r in &states {
            let (s, n): (String, i64) = (r.get(0), r.get(1));
            used += n;
            by_state.insert(s, n);
        }
        let mut cur = Counters::default();
        let (deadlocks, databases) = databases(c, &mut cur).await?;
        let longest = c
            .query_opt(
                "/* osmen-probe */ SELECT greatest(extract(epoch FROM clock_timestamp() - query_start), 0)::float8, state, \
                 coalesce(datname::text, ''), query FROM pg_stat_activity \
                 WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend' AND query_start IS NOT NULL \
                 ORDER BY query_start LIMIT 1",
                &[],
            )
            .await
            .map_err(q)?
            .map(|r| PgQuery {
                seconds: r.get::<_, f64>(0),
                state: r.get::<_, String>(1),
                database: r.get::<_, String>(2),
                query: short(&r.get::<_, String>(3)),
            });
        let (statements, top) = statements(c, &db, &mut cur).await?;
        c.batch_execute("COMMIT").await.map_err(q)?;

        let now = Instant::now();
        let (dt, p) = match self.prev {
            // The previous sample's own read-only transaction is not the stack's work.
            Some((t, mut p)) => {
                p.commits = (p.commits + 1.0).min(cur.commits);
                (now.duration_since(t).as_secs_f64(), Some(p))
            }
            None => (0.0, None),
        };
        self.prev = Some((now, cur));
        Ok(build(
            Read {
                version,
                db,
                max,
                reserved,
                used,
                by_state,
                deadlocks,
                databases,
                longest,
                statements,
                top,
            },
            cur,
            p,
            dt,
        ))
    }
}

/// Each database's size and connections, its counters summed into `cur`; and the
/// deadlocks over all of them.
async fn databases(c: &Client, cur: &mut Counters) -> Result<(i64, Vec<PgDatabase>), PgProbeError> {
    let q = PgProbeError::Query;
    let dbs = c
        .query(
            "/* osmen-probe */ SELECT d.datname::text, pg_database_size(d.oid)::int8, \
             s.xact_commit::int8, s.xact_rollback::int8, s.tup_inserted::int8, \
             s.tup_updated::int8, s.tup_deleted::int8, s.tup_fetched::int8, \
             s.blks_hit::int8, s.blks_read::int8, s.deadlocks::int8, s.numbackends::int8 \
             FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid \
             WHERE d.datallowconn AND NOT d.datistemplate ORDER BY 2 DESC",
            &[],
        )
        .await
        .map_err(q)?;
    let mut deadlocks = 0i64;
    let mut databases = Vec::new();
    for r in &dbs {
        let g = |i: usize| r.get::<_, i64>(i) as f64;
        cur.commits += g(2);
        cur.rollbacks += g(3);
        cur.inserted += g(4);
        cur.updated += g(5);
        cur.deleted += g(6);
        cur.fetched += g(7);
        cur.blks_hit += g(8);
        cur.blks_read += g(9);
        deadlocks += r.get::<_, i64>(10);
        databases.push(PgDatabase {
            name: r.get::<_, String>(0),
            size_bytes: r.get::<_, i64>(1),
            transactions: r.get::<_, i64>(2) + r.get::<_, i64>(3),
            connections: r.get::<_, i64>(11),
        });
    }
    Ok((deadlocks, databases))
}

/// The slowest statements by mean time from pg_stat_statements (their calls and time summed
/// into `cur`), or why they are not read and how to enable them.
async fn statements(
    c: &Client,
    db: &str,
    cur: &mut Counters,
) -> Result<(String, Option<Vec<PgStatement>>), PgProbeError> {
    let q = PgProbeError::Query;
    let has_ext = c
        .query_opt(
            "/* osmen-probe */ SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(q)?
        .is_some();
    let mut statements = String::from("on");
    let mut top = None;
    if has_ext {
        // The extension exists but the library may not be preloaded: that errors, and
        // aborts the transaction, so it is read inside a savepoint.
        c.batch_execute("SAVEPOINT s").await.map_err(q)?;
        match c
            .query(
                "/* osmen-probe */ WITH s AS (SELECT * FROM pg_stat_statements \
                 WHERE query NOT LIKE '%osmen-probe%' AND query NOT IN \
                 ('BEGIN READ ONLY', 'COMMIT', 'SAVEPOINT s', 'ROLLBACK TO SAVEPOINT s')) \
                 SELECT query, calls::int8, mean_exec_time::float8, \
                 total_exec_time::float8, rows::int8, \
                 (SELECT sum(calls)::float8 FROM s), \
                 (SELECT sum(total_exec_time)::float8 FROM s) \
                 FROM s ORDER BY mean_exec_time DESC LIMIT 10",
                &[],
            )
            .await
        {
            Ok(rows) => {
                let mut list = Vec::new();
                for r in &rows {
                    cur.stmt_calls = r.get::<_, Option<f64>>(5);
                    cur.stmt_ms = r.get::<_, Option<f64>>(6);
                    list.push(PgStatement {
                        query: short(&r.get::<_, String>(0)),
                        calls: r.get::<_, i64>(1),
                        mean_ms: r.get::<_, f64>(2),
                        total_ms: r.get::<_, f64>(3),
                        rows: r.get::<_, i64>(4),
                    });
                }
                top = Some(list);
            }
            Err(e) => {
                c.batch_execute("ROLLBACK TO SAVEPOINT s")
                    .await
                    .map_err(q)?;
                statements = format!("{HOW_TO_ENABLE} database {db} ({})", err_text(&e));
            }
        }
    } else {
        statements = format!("{HOW_TO_ENABLE} database {db}");
    }
    Ok((statements, top))
}

/// What one sample read, before rates.
struct Read {
    version: String,
    db: String,
    max: i64,
    reserved: i64,
    used: i64,
    by_state: BTreeMap<String, i64>,
    deadlocks: i64,
    databases: Vec<PgDatabase>,
    longest: Option<PgQuery>,
    statements: String,
    top: Option<Vec<PgStatement>>,
}

/// Figures from one sample's reads and the counters of the sample before (`dt` seconds
/// ago, its own transaction already taken out).
fn build(read: Read, cur: Counters, p: Option<Counters>, dt: f64) -> Postgres {
    let Read {
        version,
        db,
        max,
        reserved,
        used,
        by_state,
        deadlocks,
        databases,
        longest,
        statements,
        top,
    } = read;
    let r = |f: fn(&Counters) -> f64| rate(p.as_ref().map(f), f(&cur), dt);
    let xacts = |c: &Counters| c.commits + c.rollbacks;
    let ratio = |hit: f64, read: f64| (hit + read > 0.0).then(|| hit / (hit + read));
    let window_ratio = p.and_then(|p| {
        let (h, rd) = (cur.blks_hit - p.blks_hit, cur.blks_read - p.blks_read);
        (h >= 0.0 && rd >= 0.0).then(|| ratio(h, rd)).flatten()
    });
    let mean_ms_window = p.and_then(|p| {
        let calls = cur.stmt_calls? - p.stmt_calls?;
        let ms = cur.stmt_ms? - p.stmt_ms?;
        (calls > 0.0 && ms >= 0.0).then(|| ms / calls)
    });
    let usable = (max - reserved).max(1);
    Postgres {
        version,
        database: db,
        connections: PgConnections {
            used,
            max,
            reserved,
            percent: used as f64 / usable as f64 * 100.0,
            by_state,
        },
        transactions_per_s: r(xacts),
        commits_per_s: r(|c| c.commits),
        rollbacks_per_s: r(|c| c.rollbacks),
        inserts_per_s: r(|c| c.inserted),
        updates_per_s: r(|c| c.updated),
        deletes_per_s: r(|c| c.deleted),
        rows_fetched_per_s: r(|c| c.fetched),
        cache_hit_ratio: ratio(cur.blks_hit, cur.blks_read),
        cache_hit_ratio_window: window_ratio,
        deadlocks,
        longest_query: longest,
        databases,
        statements,
        top_queries: top,
        mean_query_ms_window: mean_ms_window,
    }
}

/// The server's message when there is one (tokio-postgres' Display says only "db error").
/// Why a PostgreSQL sample failed; the texts are the ones the console shows (the
/// server's severity and message, or the client's chain of causes).
#[derive(Debug, thiserror::Error)]
pub enum PgProbeError {
    #[error("bad address {0}")]
    BadAddress(String),
    #[error("connect {addr}: {}", err_text(source))]
    Connect {
        addr: String,
        source: tokio_postgres::Error,
    },
    #[error("not connected")]
    NotConnected,
    #[error("{}", err_text(.0))]
    Query(#[source] tokio_postgres::Error),
}

fn err_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::probes::recording::{recorded, round_trips};
    use serde_json::json;

    #[test]
    fn passwords_in_query_texts_are_masked() {
        assert_eq!(
            mask_query("ALTER ROLE app PASSWORD 'hunter2' VALID UNTIL 'x'"),
            "ALTER ROLE app PASSWORD '********' VALID UNTIL 'x'"
        );
        assert_eq!(
            mask_query("create user u with password  'a''b' login"),
            "create user u with password  '********' login"
        );
        assert_eq!(mask_query("password 'abc"), "password '********'");
        assert_eq!(
            mask_query("SELECT password FROM t"),
            "SELECT password FROM t"
        );
        assert_eq!(mask_query("x password '"), "x password '********'");
        assert_eq!(short("select 1,\n  2"), "select 1, 2");
    }

    /// What the queries of one sample return on a small stack: two databases, one
    /// query running, pg_stat_statements on (second) or off (first).
    fn read(top: bool) -> Read {
        let by_state = BTreeMap::from([("active".to_string(), 2), ("idle".to_string(), 5)]);
        Read {
            version: "16.4".into(),
            db: "osmen".into(),
            max: 100,
            reserved: 3,
            used: 7,
            by_state,
            deadlocks: 0,
            databases: vec![
                PgDatabase {
                    name: "osmen".into(),
                    size_bytes: 9_000_000,
                    transactions: 1200,
                    connections: 6,
                },
                PgDatabase {
                    name: "postgres".into(),
                    size_bytes: 7_500_000,
                    transactions: 30,
                    connections: 1,
                },
            ],
            longest: Some(PgQuery {
                seconds: 1.5,
                state: "active".into(),
                database: "osmen".into(),
                query: "SELECT pg_sleep($1)".into(),
            }),
            statements: if top {
                "on".into()
            } else {
                format!("{HOW_TO_ENABLE} database osmen")
            },
            top: top.then(|| {
                vec![PgStatement {
                    query: "SELECT * FROM t WHERE id = $1".into(),
                    calls: 40,
                    mean_ms: 2.5,
                    total_ms: 100.0,
                    rows: 40,
                }]
            }),
        }
    }

    #[test]
    fn postgres_figures_keep_their_shape() {
        let cur = Counters {
            commits: 1220.0,
            rollbacks: 10.0,
            inserted: 500.0,
            updated: 50.0,
            deleted: 5.0,
            fetched: 9000.0,
            blks_hit: 990.0,
            blks_read: 10.0,
            stmt_calls: Some(40.0),
            stmt_ms: Some(100.0),
        };
        let prev = Counters {
            commits: 1200.0,
            inserted: 400.0,
            blks_hit: 900.0,
            blks_read: 0.0,
            stmt_calls: Some(30.0),
            stmt_ms: Some(80.0),
            ..cur
        };
        recorded(
            "probe_figures_postgres.json",
            &json!({
                "first_no_statements": build(read(false), cur, None, 0.0),
                "second": build(read(true), cur, Some(prev), 5.0),
            }),
        );
    }

    /// The recorded figures read into their type and written back are the same JSON.
    #[test]
    fn recorded_figures_round_trip_through_their_type() {
        round_trips::<crate::model::figures::Postgres>("probe_figures_postgres.json");
    }
}
