//! Service probes against real PostgreSQL and Redis (images made from Debian's packages)
//! under load made here, and against stand-ins serving recorded Qdrant, n8n and Langflow
//! answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osmen::collect::probes::{http, postgres, redis as rprobe};
use osmen::model::probe::{Creds, ProbeKind};
use serde_json::{Value, json};

use crate::util::{Stack, docker_ready, inspect, wait_until};

const PG_PW: &str = "pg-probe-secret-4711";
const REDIS_PW: &str = "redis-probe-secret-0815";

fn ip(container: &str) -> String {
    inspect(
        container,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )
}

/// Figures as `status --json` prints them.
fn as_json<T: serde::Serialize>(figures: T) -> Value {
    serde_json::to_value(figures).unwrap()
}

fn healthy(st: &Stack, svc: &str) -> bool {
    wait_until(Duration::from_secs(60), || {
        inspect(&st.container(svc), "{{.State.Health.Status}}") == "healthy"
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn pg_client(addr: &str) -> tokio_postgres::Client {
    let (host, port) = addr.split_once(':').unwrap();
    let (c, conn) = tokio_postgres::Config::new()
        .host(host)
        .port(port.parse().unwrap())
        .user("postgres")
        .password(PG_PW)
        .dbname("osmen")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c
}

#[test]
fn postgres_and_redis_probes_see_real_load() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("probes", "probes");
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "up failed:\n{out}\n{err}");
    assert!(healthy(&st, "postgres") && healthy(&st, "redis"));
    let pg_addr = format!("{}:5432", ip(&st.container("postgres")));
    let redis_addr = format!("{}:6379", ip(&st.container("redis")));
    let rt = rt();

    // ---- PostgreSQL -----------------------------------------------------------------
    let creds = Creds {
        user: Some("postgres".into()),
        password: Some(PG_PW.into()),
        database: Some("osmen".into()),
    };
    let mut probe = postgres::Probe::new(creds.clone());
    let pg = rt.block_on(async {
        let c = pg_client(&pg_addr).await;
        // Without the extension the probe says how to enable it.
        let first = as_json(probe.sample(&pg_addr).await.unwrap());
        assert!(
            first["statements"]
                .as_str()
                .is_some_and(|s| s.contains("CREATE EXTENSION pg_stat_statements")),
            "{first}"
        );
        c.batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
             CREATE TABLE load (id serial PRIMARY KEY, body text)",
        )
        .await
        .unwrap();
        probe.sample(&pg_addr).await.unwrap();
        // 600 inserts and 600 selects, each its own transaction.
        let t = Instant::now();
        for i in 0..600i32 {
            c.execute(
                "INSERT INTO load (body) VALUES ($1)",
                &[&format!("row {i}")],
            )
            .await
            .unwrap();
            c.query("SELECT count(*) FROM load WHERE id > $1", &[&i])
                .await
                .unwrap();
        }
        let load_s = t.elapsed().as_secs_f64();
        // PostgreSQL publishes a backend's counters at most once a second, and when it
        // ends: closing the loading connection makes the counts complete.
        drop(c);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A long query in flight while the probe samples.
        let c2 = pg_client(&pg_addr).await;
        let sleeper = tokio::spawn(async move { c2.execute("SELECT pg_sleep(2)", &[]).await });
        tokio::time::sleep(Duration::from_millis(800)).await;
        let after = as_json(probe.sample(&pg_addr).await.unwrap());
        sleeper.await.unwrap().unwrap();
        (after, load_s)
    });
    let (pg, load_s) = pg;
    eprintln!("postgres after 1200 statements in {load_s:.2}s:\n{pg:#}");
    let tps = pg["transactions_per_s"].as_f64().unwrap();
    let ips = pg["inserts_per_s"].as_f64().unwrap();
    // 1200 transactions (+1 CREATE) over the sample interval: at least 1200 / (load + 3 s).
    let floor = 1200.0 / (load_s + 3.0);
    assert!(tps >= floor, "transactions/s {tps} below {floor}");
    assert!(ips >= 600.0 / (load_s + 3.0), "inserts/s {ips}");
    assert!(pg["connections"]["used"].as_i64().unwrap() >= 2, "{pg}");
    assert_eq!(pg["connections"]["max"], 20);
    let longest = &pg["longest_query"];
    assert!(
        longest["seconds"].as_f64().unwrap() >= 0.5
            && longest["query"].as_str().unwrap().contains("pg_sleep"),
        "{longest}"
    );
    let top = pg["top_queries"]
        .as_array()
        .expect("pg_stat_statements read");
    assert!(
        top.iter()
            .any(|q| q["query"].as_str().unwrap().contains("INSERT INTO load")),
        "{top:?}"
    );
    assert!(
        top.iter()
            .all(|q| !q["query"].as_str().unwrap().contains("pg_stat_database")),
        "the probe's own statements are left out: {top:?}"
    );
    assert!(pg["cache_hit_ratio"].as_f64().unwrap() > 0.5);
    assert!(!pg.to_string().contains(PG_PW));

    // A wrong password: a clear error, and the password never in it.
    let mut wrong = postgres::Probe::new(Creds {
        password: Some("not-the-password".into()),
        ..creds
    });
    let e = rt.block_on(wrong.sample(&pg_addr)).unwrap_err().to_string();
    assert!(e.contains("password authentication failed"), "{e}");

    // ---- Redis ------------------------------------------------------------------------
    let mut probe = rprobe::Probe::new(Creds {
        password: Some(REDIS_PW.into()),
        ..Default::default()
    });
    let (filled, mixed, hits_only) = rt.block_on(async {
        let client = redis::Client::open(format!("redis://:{REDIS_PW}@{redis_addr}")).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        probe.sample(&redis_addr).await.unwrap();
        // 400 values of 10 KiB against a 2 MiB maxmemory: allkeys-lru must evict.
        let v = "x".repeat(10 * 1024);
        for i in 0..400 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(&v)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let filled = as_json(probe.sample(&redis_addr).await.unwrap());
        // Half hits (the newest keys), half misses (the evicted oldest).
        for i in 0..100 {
            let k = if i % 2 == 0 { 399 - i / 2 } else { i / 2 };
            let _: Option<String> = redis::cmd("GET")
                .arg(format!("k{k}"))
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let mixed = as_json(probe.sample(&redis_addr).await.unwrap());
        for i in 0..100 {
            let _: Option<String> = redis::cmd("GET")
                .arg(format!("k{}", 399 - i % 20))
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let hits_only = as_json(probe.sample(&redis_addr).await.unwrap());
        // What an applied redis-evicting suggestion does live: maxmemory grows.
        let creds = Creds {
            password: Some(REDIS_PW.into()),
            ..Default::default()
        };
        osmen::stack::redis_admin::set_maxmemory(&redis_addr, &creds, 4 << 20)
            .await
            .unwrap();
        let raised = as_json(probe.sample(&redis_addr).await.unwrap());
        assert_eq!(raised["maxmemory_bytes"], 4.0 * 1024.0 * 1024.0, "{raised}");
        (filled, mixed, hits_only)
    });
    eprintln!("redis after 400 SETs of 10 KiB:\n{filled:#}");
    assert!(filled["evicted_keys"].as_f64().unwrap() > 100.0, "{filled}");
    assert!(filled["evictions_per_s"].as_f64().unwrap() > 0.0);
    assert!(filled["ops_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(filled["maxmemory_bytes"], 2.0 * 1024.0 * 1024.0);
    assert_eq!(filled["maxmemory_policy"], "allkeys-lru");
    let w1 = mixed["hit_ratio_window"].as_f64().unwrap();
    let w2 = hits_only["hit_ratio_window"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&w1), "half hits, half misses: {w1}");
    // Approximate LRU may evict a recent key while GET replies use memory: mostly hits.
    assert!(
        w2 >= 0.8 && w2 > w1 + 0.2,
        "only the newest keys read: {w2}"
    );
    assert!(
        hits_only["hit_ratio"].as_f64().unwrap() > w1,
        "the ratio moves"
    );

    // ---- status --json carries both probes, and neither secret ------------------------
    let (code, out, err) = st.run(&["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(PG_PW) && !out.contains(REDIS_PW));
    let v: Value = serde_json::from_str(&out).unwrap();
    for (svc, kind) in [("postgres", "postgres"), ("redis", "redis")] {
        let p = v["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == svc)
            .map(|s| s["probe"].clone())
            .unwrap();
        assert_eq!(p["kind"], kind, "{p}");
        assert_eq!(p["status"], "ok", "{p}");
        assert!(p["figures"].is_object(), "{p}");
    }
    let (code, out, _) = st.run(&["status"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("probe postgres") && out.contains("probe redis"),
        "{out}"
    );
    assert!(!out.contains(PG_PW) && !out.contains(REDIS_PW));
}

/// A stand-in speaking a recorded answer per path; `/metrics` advances through its
/// recordings one scrape at a time (staying on the last).
struct Recorded {
    routes: Vec<(&'static str, u16, String)>,
    metrics: Vec<String>,
    scrapes: usize,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::util::root().join("tests/fixtures/probes").join(name)).unwrap()
}

async fn serve(rec: Recorded) -> String {
    use axum::extract::{Request, State};
    use axum::response::IntoResponse;
    let state = Arc::new(Mutex::new(rec));
    let app = axum::Router::new()
        .fallback(
            |State(st): State<Arc<Mutex<Recorded>>>, req: Request| async move {
                let path = req.uri().path().to_string();
                let mut st = st.lock().unwrap();
                if path == "/metrics" && !st.metrics.is_empty() {
                    let i = st.scrapes.min(st.metrics.len() - 1);
                    st.scrapes += 1;
                    return (axum::http::StatusCode::OK, st.metrics[i].clone()).into_response();
                }
                match st.routes.iter().find(|(p, _, _)| *p == path) {
                    Some((_, code, body)) => (
                        axum::http::StatusCode::from_u16(*code).unwrap(),
                        [("content-type", "application/json")],
                        body.clone(),
                    )
                        .into_response(),
                    None => {
                        (axum::http::StatusCode::NOT_FOUND, "404 page not found").into_response()
                    }
                }
            },
        )
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

#[test]
fn qdrant_probe_reads_collections_rates_and_true_search_percentiles() {
    rt().block_on(async {
        let addr = serve(Recorded {
            routes: vec![
                ("/healthz", 200, "healthz check passed".into()),
                ("/", 200, fixture("qdrant_root.json")),
                ("/collections", 200, fixture("qdrant_collections.json")),
                (
                    "/collections/osmen_memories",
                    200,
                    fixture("qdrant_collection.json"),
                ),
            ],
            metrics: vec![
                fixture("qdrant_metrics_1.txt"),
                fixture("qdrant_metrics_2.txt"),
            ],
            scrapes: 0,
        })
        .await;
        let mut p = http::Probe::new(ProbeKind::Qdrant);
        let first = as_json(p.sample(&addr).await.unwrap());
        assert!(first["searches_per_s"].is_null() && first["search_p95_ms"].is_null());
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = as_json(p.sample(&addr).await.unwrap());
        let outer = t0.elapsed().as_secs_f64() + 0.2;
        eprintln!("qdrant:\n{v:#}");
        assert_eq!(v["version"], "1.12.4");
        assert_eq!(v["points"], 1250.0);
        let c = &v["collections"][0];
        assert_eq!(
            (
                c["name"].as_str(),
                c["indexed_vectors"].as_i64(),
                c["segments"].as_i64()
            ),
            (Some("osmen_memories"), Some(1024), Some(4))
        );
        // 200 searches and 50 upserts between the two recordings.
        let s = v["searches_per_s"].as_f64().unwrap();
        assert!(s >= 200.0 / outer && s <= 200.0 / 0.5, "{s}");
        let i = v["inserts_per_s"].as_f64().unwrap();
        assert!(i >= 50.0 / outer && i <= 50.0 / 0.5, "{i}");
        // The window's buckets: 20 <= 5 ms, 100 <= 10 ms, 180 <= 20 ms, 196 <= 50 ms, 200.
        // P95 = rank 190, 10 of the 16 in (20, 50] ms: 20 + 30 x 10/16 = 38.75 ms.
        assert!(
            (v["search_p95_ms"].as_f64().unwrap() - 38.75).abs() < 1e-6,
            "{v}"
        );
        assert!((v["search_p50_ms"].as_f64().unwrap() - 10.0).abs() < 1e-6);
        // The window's true mean from the histogram's _sum/_count: 2.84 s / 200.
        assert!(
            (v["search_mean_ms"].as_f64().unwrap() - 14.2).abs() < 1e-6,
            "{v}"
        );
        // Qdrant's averages weighted by count: (14.2 ms x 600 + 9.8 ms x 100) / 700.
        let avg = v["search_avg_since_start_ms"].as_f64().unwrap();
        assert!(
            (avg - (14.2 * 600.0 + 9.8 * 100.0) / 700.0).abs() < 1e-6,
            "{avg}"
        );
        assert_eq!(v["memory_resident_bytes"], 53477376.0);
    });
}

#[test]
fn n8n_and_langflow_probes_read_health_versions_and_metrics() {
    rt().block_on(async {
        let n8n = serve(Recorded {
            routes: vec![
                ("/healthz", 200, r#"{"status":"ok"}"#.into()),
                ("/healthz/readiness", 503, r#"{"status":"error"}"#.into()),
                ("/rest/settings", 200, fixture("n8n_settings.json")),
            ],
            metrics: vec![fixture("n8n_metrics.txt")],
            scrapes: 0,
        })
        .await;
        let v = as_json(http::Probe::new(ProbeKind::N8n).sample(&n8n).await.unwrap());
        assert_eq!(v["version"], "1.64.3");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["ready"], false, "readiness 503: not ready");
        assert_eq!(v["metrics"], "on");
        assert_eq!(v["figures"]["active_workflows"], 7.0);
        assert!((v["figures"]["event_loop_lag_p99_ms"].as_f64().unwrap() - 12.0).abs() < 1e-9);
        // Without N8N_METRICS the probe says how to turn them on.
        let bare = serve(Recorded {
            routes: vec![("/healthz", 200, r#"{"status":"ok"}"#.into())],
            metrics: vec![],
            scrapes: 0,
        })
        .await;
        let v = as_json(
            http::Probe::new(ProbeKind::N8n)
                .sample(&bare)
                .await
                .unwrap(),
        );
        assert!(v["metrics"].as_str().unwrap().contains("N8N_METRICS=true"));
        assert!(v["version"].is_null() && v["ready"].is_null());

        let lf = serve(Recorded {
            routes: vec![
                ("/health", 200, r#"{"status":"ok"}"#.into()),
                ("/health_check", 200, fixture("langflow_health_check.json")),
                ("/api/v1/version", 200, fixture("langflow_version.json")),
            ],
            metrics: vec![],
            scrapes: 0,
        })
        .await;
        let v = as_json(
            http::Probe::new(ProbeKind::Langflow)
                .sample(&lf)
                .await
                .unwrap(),
        );
        assert_eq!(v["version"], "1.0.19");
        assert_eq!(v["checks"]["db"], "ok");
        // A failing health endpoint fails the sample with what it said.
        let down = serve(Recorded {
            routes: vec![("/health", 503, r#"{"detail":"db down"}"#.into())],
            metrics: vec![],
            scrapes: 0,
        })
        .await;
        let e = http::Probe::new(ProbeKind::Langflow)
            .sample(&down)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("503") && e.contains("db down"), "{e}");
    });
}

/// The figures' shape (keys, nesting and the kind of each value: numbers as 0 or 0.0,
/// strings and booleans as they are) that `status --json` prints under
/// `services[].probe.figures`, for the probes that run on recordings (Qdrant, n8n,
/// Langflow); compared with `tests/fixtures/snapshot/probe_figures.json`
/// (`UPDATE_SNAPSHOT_JSON=1` records it). Rates and times change from run to run.
#[test]
fn probe_figures_keep_their_shape() {
    fn shape(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => json!(0.0),
            Value::Number(_) => json!(0),
            Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
            }
            other => other.clone(),
        }
    }
    let got = rt().block_on(async {
        let qdrant = serve(Recorded {
            routes: vec![
                ("/healthz", 200, "healthz check passed".into()),
                ("/", 200, fixture("qdrant_root.json")),
                ("/collections", 200, fixture("qdrant_collections.json")),
                (
                    "/collections/osmen_memories",
                    200,
                    fixture("qdrant_collection.json"),
                ),
            ],
            metrics: vec![
                fixture("qdrant_metrics_1.txt"),
                fixture("qdrant_metrics_2.txt"),
            ],
            scrapes: 0,
        })
        .await;
        let mut p = http::Probe::new(ProbeKind::Qdrant);
        let q1 = as_json(p.sample(&qdrant).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let q2 = as_json(p.sample(&qdrant).await.unwrap());
        let n8n = serve(Recorded {
            routes: vec![
                ("/healthz", 200, r#"{"status":"ok"}"#.into()),
                ("/healthz/readiness", 503, r#"{"status":"error"}"#.into()),
                ("/rest/settings", 200, fixture("n8n_settings.json")),
            ],
            metrics: vec![fixture("n8n_metrics.txt")],
            scrapes: 0,
        })
        .await;
        let n = as_json(http::Probe::new(ProbeKind::N8n).sample(&n8n).await.unwrap());
        let bare = serve(Recorded {
            routes: vec![("/healthz", 200, r#"{"status":"ok"}"#.into())],
            metrics: vec![],
            scrapes: 0,
        })
        .await;
        let nb = as_json(
            http::Probe::new(ProbeKind::N8n)
                .sample(&bare)
                .await
                .unwrap(),
        );
        let lf = serve(Recorded {
            routes: vec![
                ("/health", 200, r#"{"status":"ok"}"#.into()),
                ("/health_check", 200, fixture("langflow_health_check.json")),
                ("/api/v1/version", 200, fixture("langflow_version.json")),
            ],
            metrics: vec![],
            scrapes: 0,
        })
        .await;
        let l = as_json(
            http::Probe::new(ProbeKind::Langflow)
                .sample(&lf)
                .await
                .unwrap(),
        );
        json!({"qdrant_first": q1, "qdrant": q2, "n8n": n, "n8n_bare": nb, "langflow": l})
    });
    let got = shape(&got);
    crate::util::assert_recorded(
        "tests/fixtures/snapshot/probe_figures.json",
        &got,
        "the probe figures' shape",
    );
}
