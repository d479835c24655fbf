//! The HTTP services: Qdrant (collections, and search and insert rates and latency from
//! its `/metrics`), n8n (health, readiness, version, and its metrics when
//! `N8N_METRICS=true`) and Langflow (health, the checks of `/health_check`, version).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rate;
use crate::collect::prometheus::{Family, bucket_delta, histogram_quantile, parse};
use crate::model::figures::{
    Langflow, N8n, N8nMetrics, Qdrant, QdrantCollection, QdrantCollectionInfo,
};
use crate::model::probe::{Figures, ProbeKind};

/// A client for probes: short timeouts, no proxy (the services are local).
pub fn client() -> reqwest::Client {
    crate::http::client(|b| b.timeout(Duration::from_secs(3)).no_proxy())
}

/// Qdrant's REST counters and latency buckets (by class: search or insert).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QdrantCounters {
    pub searches: f64,
    pub inserts: f64,
    pub failures: f64,
    /// (le, cumulative count) of search responses, summed over the search endpoints.
    pub search_buckets: Vec<(f64, f64)>,
    /// The histogram's `_sum` and `_count` over the search endpoints.
    pub search_seconds: f64,
    pub search_count: f64,
}

pub struct Probe {
    kind: ProbeKind,
    client: reqwest::Client,
    prev: Option<(Instant, QdrantCounters)>,
}

/// Why an HTTP probe's sample failed; the texts are the ones the console shows.
#[derive(Debug, thiserror::Error)]
pub enum HttpProbeError {
    /// The request got no answer (`why` is the whole chain of causes).
    #[error("GET {path}: {why}")]
    Send { path: String, why: String },
    #[error("GET {path}: {source}")]
    Body {
        path: String,
        source: reqwest::Error,
    },
    #[error("GET {path}: 404")]
    NotFound { path: String },
    /// `body` holds the answer's first 120 characters.
    #[error("GET {path}: HTTP {status} {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("GET /collections gave no JSON list")]
    NoCollections,
    #[error("/metrics {0}")]
    Metrics(crate::collect::prometheus::ParseError),
}

struct Answer {
    status: u16,
    body: String,
    ms: f64,
}

impl Probe {
    pub fn new(kind: ProbeKind) -> Probe {
        Probe {
            kind,
            client: client(),
            prev: None,
        }
    }

    async fn get(&self, base: &str, path: &str) -> Result<Answer, HttpProbeError> {
        let t = Instant::now();
        let r = self
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .map_err(|e| HttpProbeError::Send {
                path: path.into(),
                why: crate::http::why(&e),
            })?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|source| HttpProbeError::Body {
            path: path.into(),
            source,
        })?;
        Ok(Answer {
            status,
            body,
            ms: t.elapsed().as_secs_f64() * 1000.0,
        })
    }

    async fn json(&self, base: &str, path: &str) -> Option<Value> {
        let a = self.get(base, path).await.ok()?;
        (a.status == 200).then(|| serde_json::from_str(&a.body).ok())?
    }

    pub async fn sample(&mut self, addr: &str) -> Result<Figures, HttpProbeError> {
        let base = format!("http://{addr}");
        match self.kind {
            ProbeKind::Qdrant => self.qdrant(&base).await.map(Figures::Qdrant),
            ProbeKind::N8n => self.n8n(&base).await.map(Figures::N8n),
            _ => self.langflow(&base).await.map(Figures::Langflow),
        }
    }

    /// The health endpoint's answer: fails the sample when it is not 2xx.
    async fn health(&self, base: &str, paths: &[&str]) -> Result<(String, Answer), HttpProbeError> {
        for p in paths {
            match self.get(base, p).await {
                Ok(a) if (200..300).contains(&a.status) => return Ok((p.to_string(), a)),
                Ok(a) if a.status == 404 => {}
                Ok(a) => {
                    return Err(HttpProbeError::Status {
                        path: p.to_string(),
                        status: a.status,
                        body: a.body.chars().take(120).collect(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        // Every path answered 404: name the last one tried.
        Err(HttpProbeError::NotFound {
            path: paths.last().copied().unwrap_or_default().into(),
        })
    }

    async fn qdrant(&mut self, base: &str) -> Result<Qdrant, HttpProbeError> {
        let (path, h) = self.health(base, &["/healthz", "/"]).await?;
        let root = self.json(base, "/").await;
        let list = self
            .json(base, "/collections")
            .await
            .ok_or(HttpProbeError::NoCollections)?;
        let mut collections = Vec::new();
        let names: Vec<String> = list["result"]["collections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        for name in names.iter().take(32) {
            let Some(info) = self.json(base, &format!("/collections/{name}")).await else {
                collections.push(QdrantCollection::Unanswered {
                    name: name.clone(),
                    error: "no answer".into(),
                });
                continue;
            };
            let r = &info["result"];
            collections.push(QdrantCollection::Read(QdrantCollectionInfo {
                name: name.clone(),
                status: r["status"].as_str().map(String::from),
                optimizer_status: serde_json::from_value(r["optimizer_status"].clone()).ok(),
                points: r["points_count"].as_u64(),
                vectors: r["vectors_count"].as_u64(),
                indexed_vectors: r["indexed_vectors_count"].as_u64(),
                segments: r["segments_count"].as_u64(),
            }));
        }
        let metrics = match self.get(base, "/metrics").await {
            Ok(a) if a.status == 200 => parse(&a.body).map_err(HttpProbeError::Metrics)?,
            _ => Vec::new(),
        };
        let cur = qdrant_counters(&metrics);
        let now = Instant::now();
        let (dt, prev) = match self.prev.take() {
            Some((t, p)) => (now.duration_since(t).as_secs_f64(), Some(p)),
            None => (0.0, None),
        };
        let window: Option<Vec<(f64, f64)>> = prev
            .as_ref()
            .map(|p| bucket_delta(&p.search_buckets, &cur.search_buckets));
        let q = |x: f64| {
            window
                .as_deref()
                .and_then(|b| histogram_quantile(x, b))
                .map(|s| s * 1000.0)
        };
        let gauge = |name: &str| sum_family(&metrics, name, |_| true);
        let search_avg = search_avg_since_start(&metrics);
        let mean_window = prev.as_ref().and_then(|p| {
            let n = cur.search_count - p.search_count;
            let secs = cur.search_seconds - p.search_seconds;
            (n > 0.0 && secs >= 0.0).then(|| secs / n * 1000.0)
        });
        let points = collections
            .iter()
            .filter_map(|c| c.info().and_then(|i| i.points))
            .map(|p| p as f64)
            .sum::<f64>();
        let out = Qdrant {
            version: root
                .as_ref()
                .and_then(|r| r["version"].as_str().map(String::from)),
            health: path,
            health_ms: h.ms,
            collections,
            points,
            metrics: !metrics.is_empty(),
            vectors_total: gauge("collections_vector_total"),
            memory_resident_bytes: gauge("memory_resident_bytes"),
            memory_allocated_bytes: gauge("memory_allocated_bytes"),
            searches_per_s: rate(prev.as_ref().map(|p| p.searches), cur.searches, dt),
            inserts_per_s: rate(prev.as_ref().map(|p| p.inserts), cur.inserts, dt),
            failures_per_s: rate(prev.as_ref().map(|p| p.failures), cur.failures, dt),
            searches_total: cur.searches,
            inserts_total: cur.inserts,
            // From the histogram's buckets over the time since the last sample; null when
            // Qdrant has no histogram (before 1.8) or nothing was searched meanwhile.
            search_p50_ms: q(0.5),
            search_p95_ms: q(0.95),
            search_p99_ms: q(0.99),
            search_mean_ms: mean_window,
            // Qdrant's own average since it started (not a percentile, not this window).
            search_avg_since_start_ms: search_avg.map(|s| s * 1000.0),
        };
        self.prev = Some((now, cur));
        Ok(out)
    }

    async fn n8n(&mut self, base: &str) -> Result<N8n, HttpProbeError> {
        let (path, h) = self.health(base, &["/healthz", "/health"]).await?;
        let ready = match self.get(base, "/healthz/readiness").await {
            Ok(a) if a.status == 404 => None,
            Ok(a) => Some((200..300).contains(&a.status)),
            Err(_) => Some(false),
        };
        let settings = self.json(base, "/rest/settings").await;
        let mut version = settings
            .as_ref()
            .and_then(|s| s["data"]["versionCli"].as_str().map(String::from));
        let metrics = match self.get(base, "/metrics").await {
            Ok(a) if a.status == 200 => parse(&a.body).ok(),
            _ => None,
        };
        let mut m = None;
        if let Some(f) = &metrics {
            if version.is_none() {
                version = f
                    .iter()
                    .find(|x| x.name == "n8n_version_info")
                    .and_then(|x| x.samples.first())
                    .and_then(|s| s.label("version"))
                    .map(|v| v.trim_start_matches('v').to_string());
            }
            let g = |n: &str| sum_family(f, n, |_| true);
            m = Some(N8nMetrics {
                active_workflows: g("n8n_active_workflow_count"),
                queue_waiting: g("n8n_scaling_mode_queue_jobs_waiting"),
                queue_active: g("n8n_scaling_mode_queue_jobs_active"),
                queue_failed: g("n8n_scaling_mode_queue_jobs_failed"),
                event_loop_lag_p99_ms: g("nodejs_eventloop_lag_p99_seconds").map(|s| s * 1000.0),
                resident_memory_bytes: g("process_resident_memory_bytes"),
                heap_used_bytes: g("nodejs_heap_size_used_bytes"),
            });
        }
        Ok(N8n {
            health: path,
            health_ms: h.ms,
            status: serde_json::from_str::<Value>(&h.body)
                .ok()
                .and_then(|b| b["status"].as_str().map(String::from)),
            ready,
            version,
            metrics: if metrics.is_some() {
                "on".into()
            } else {
                "off: set N8N_METRICS=true in n8n's environment to export /metrics".into()
            },
            figures: m,
        })
    }

    async fn langflow(&mut self, base: &str) -> Result<Langflow, HttpProbeError> {
        let (path, h) = self.health(base, &["/health", "/api/v1/health"]).await?;
        // Each check's answer as text (Langflow answers strings: `ok`, or the error).
        let checks = self.json(base, "/health_check").await.and_then(|c| {
            c.as_object().map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), String::from),
                        )
                    })
                    .collect()
            })
        });
        let version = self.json(base, "/api/v1/version").await;
        Ok(Langflow {
            health: path,
            health_ms: h.ms,
            checks,
            version: version
                .as_ref()
                .and_then(|v| v["version"].as_str().map(String::from)),
            package: version
                .as_ref()
                .and_then(|v| v["package"].as_str().map(String::from)),
        })
    }
}

fn sum_family(
    f: &[Family],
    name: &str,
    keep: impl Fn(&crate::collect::prometheus::Sample) -> bool,
) -> Option<f64> {
    let fam = f.iter().find(|x| x.name == name)?;
    let v: Vec<f64> = fam
        .samples
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn is_search(endpoint: &str) -> bool {
    ["/points/search", "/points/query", "/points/recommend"]
        .iter()
        .any(|p| endpoint.contains(p))
}

fn is_insert(method: &str, endpoint: &str) -> bool {
    (method.eq_ignore_ascii_case("PUT") && endpoint.ends_with("/points"))
        || endpoint.ends_with("/points/batch")
}

/// Qdrant's own average duration since start over the search endpoints: each endpoint's
/// `rest_responses_avg_duration_seconds` weighted by its `rest_responses_total`.
fn search_avg_since_start(f: &[Family]) -> Option<f64> {
    let avg = f
        .iter()
        .find(|x| x.name == "rest_responses_avg_duration_seconds")?;
    let totals = f.iter().find(|x| x.name == "rest_responses_total")?;
    let (mut weighted, mut n) = (0.0, 0.0);
    for s in avg.samples.iter().filter(|s| s.value.is_finite()) {
        let ep = s.label("endpoint").unwrap_or("");
        if !is_search(ep) {
            continue;
        }
        let count: f64 = totals
            .samples
            .iter()
            .filter(|t| t.label("endpoint") == Some(ep) && t.label("method") == s.label("method"))
            .map(|t| t.value)
            .sum();
        weighted += s.value * count;
        n += count;
    }
    (n > 0.0).then(|| weighted / n)
}

/// Search and insert counts and the search latency buckets of one `/metrics`.
pub fn qdrant_counters(f: &[Family]) -> QdrantCounters {
    let mut c = QdrantCounters::default();
    if let Some(fam) = f.iter().find(|x| x.name == "rest_responses_total") {
        for s in fam.samples.iter().filter(|s| s.name == fam.name) {
            let ep = s.label("endpoint").unwrap_or("");
            let method = s.label("method").unwrap_or("");
            if is_search(ep) {
                c.searches += s.value;
            } else if is_insert(method, ep) {
                c.inserts += s.value;
            }
        }
    }
    c.failures = sum_family(f, "rest_responses_fail_total", |_| true).unwrap_or(0.0);
    if let Some(fam) = f
        .iter()
        .find(|x| x.name == "rest_responses_duration_seconds")
    {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in fam.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
            if !is_search(s.label("endpoint").unwrap_or("")) {
                continue;
            }
            let Some(le) = s.label("le").and_then(|l| {
                if l == "+Inf" {
                    Some(f64::INFINITY)
                } else {
                    l.parse::<f64>().ok()
                }
            }) else {
                continue;
            };
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        }
        for smp in fam
            .samples
            .iter()
            .filter(|s| is_search(s.label("endpoint").unwrap_or("")))
        {
            if smp.name.ends_with("_sum") {
                c.search_seconds += smp.value;
            } else if smp.name.ends_with("_count") {
                c.search_count += smp.value;
            }
        }
        let mut b: Vec<(f64, f64)> = by_le.into_values().collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        c.search_buckets = b;
    }
    c
}
