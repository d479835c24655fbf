//! The load generator behind `osmen bench`: the guide's load test (N users x M requests
//! against an agent's execute route) with latencies in HDR histograms, so memory stays
//! flat however long it runs. Closed loop by default (each user waits for its answer);
//! `rate` switches to an open loop where each request has an intended start time and its
//! latency is measured from that time, so a slow server cannot hide behind the load
//! generator slowing down (coordinated omission). Plain HTTP/1.1 on one kept-alive
//! connection per user, as wrk and oha do.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;

/// Where and what to send.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub method: hyper::Method,
    pub body: Bytes,
    pub headers: Vec<(String, String)>,
    /// `{"input": "<text> <n>"}` with a request number, as the guide's script does, so
    /// that no two requests are the same (a response cache would otherwise answer).
    pub numbered_input: Option<String>,
}

impl Target {
    /// `http://HOST[:PORT]/PATH` (plain HTTP: the gateway listens on loopback).
    pub fn parse_url(url: &str) -> Result<(String, u16, String), UrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::NotHttp { url: url.into() })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>().map_err(|_| UrlError::BadPort {
                    url: url.into(),
                    port: p.into(),
                })?,
            ),
            None => (hostport.to_string(), 80),
        };
        if host.is_empty() {
            return Err(UrlError::NoHost { url: url.into() });
        }
        Ok((host, port, path.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub users: usize,
    /// Requests per user (closed loop) or in all (open loop), unless `duration` is set.
    pub requests: u64,
    pub duration: Option<Duration>,
    /// Open loop: requests started per second, in all.
    pub rate: Option<f64>,
    pub timeout: Duration,
}

/// Results so far (shared with the live view) and at the end.
pub struct Tally {
    pub done: AtomicU64,
    pub ok: AtomicU64,
    pub hist: Vec<Mutex<Histogram<u64>>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn new(users: usize) -> Tally {
        Tally {
            done: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            hist: (0..users).map(|_| Mutex::new(new_hist())).collect(),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    fn error(&self, kind: String) {
        self.done.fetch_add(1, Ordering::Relaxed);
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(kind)
            .or_insert(0) += 1;
    }

    /// Every user's histogram merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_hist();
        for h in &self.hist {
            let h = h.lock().unwrap_or_else(|p| p.into_inner());
            // Same bounds everywhere: add cannot fail.
            let _ = all.add(&*h);
        }
        all
    }
}

/// Microseconds from 1 µs to 1 hour, 3 significant digits.
fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| {
        // Bounds above are valid constants; this branch cannot run.
        Histogram::new(3).unwrap_or_else(|_| unreachable!())
    })
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub total_requests: u64,
    pub successes: u64,
    pub success_rate: f64,
    pub p50_seconds: f64,
    pub p95_seconds: f64,
    pub p99_seconds: f64,
    pub max_seconds: f64,
    pub throughput_rps: f64,
    pub errors: BTreeMap<String, u64>,
    pub elapsed_seconds: f64,
    /// `closed` (users wait for their answer) or `open` (arrival rate).
    pub mode: String,
}

impl Report {
    pub fn from_tally(t: &Tally, elapsed: Duration, open: bool) -> Report {
        let h = t.merged();
        let total = t.done.load(Ordering::Relaxed);
        let ok = t.ok.load(Ordering::Relaxed);
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p) as f64 / 1e6
            }
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            total_requests: total,
            successes: ok,
            success_rate: if total > 0 {
                ok as f64 / total as f64
            } else {
                0.0
            },
            p50_seconds: q(0.5),
            p95_seconds: q(0.95),
            p99_seconds: q(0.99),
            max_seconds: if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1e6
            },
            throughput_rps: total as f64 / secs,
            errors: t.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            elapsed_seconds: secs,
            mode: if open { "open" } else { "closed" }.into(),
        }
    }

    /// The guide's report, plus errors by kind.
    pub fn render(&self) -> String {
        let s = |x: f64| {
            if x < 1.0 {
                format!("{:.1}ms", x * 1000.0)
            } else {
                format!("{x:.2}s")
            }
        };
        let mut o = format!(
            "Total requests: {}\nSuccess rate: {:.1}%\nP50 latency: {}\nP95 latency: {}\n\
             P99 latency: {}\nMax latency: {}\nThroughput: {:.1} req/s ({} loop, {:.1}s)\n",
            self.total_requests,
            self.success_rate * 100.0,
            s(self.p50_seconds),
            s(self.p95_seconds),
            s(self.p99_seconds),
            s(self.max_seconds),
            self.throughput_rps,
            self.mode,
            self.elapsed_seconds
        );
        if self.errors.is_empty() {
            o.push_str("Errors: none\n");
        } else {
            let e: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            o.push_str(&format!("Errors: {}\n", e.join(", ")));
        }
        o
    }
}

/// A `--url` the load generator cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{url:?}: only http:// URLs are supported (the gateway speaks plain HTTP on loopback)")]
    NotHttp { url: String },
    #[error("{url:?}: bad port {port:?}")]
    BadPort { url: String, port: String },
    #[error("{url:?}: no host")]
    NoHost { url: String },
}

/// Why a connection to the target could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no answer within {}", crate::model::units::format_duration(*.0))]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Handshake(#[from] hyper::Error),
}

/// How one request failed, as the report counts it (`Display` is the report's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Failure {
    /// The server closed the connection after its last answer: reconnect and retry.
    #[error("closed")]
    Closed,
    #[error("connection")]
    Connection,
    #[error("timeout")]
    Timeout,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "cannot connect to {addr}: {reason}; is the gateway running? (`osmen gateway`, or the console)"
    )]
    Unreachable { addr: String, reason: ConnectError },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Invalid(String),
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((t.host.as_str(), t.port)),
    )
    .await
    .map_err(|_| ConnectError::Timeout(timeout))??;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(t: &Target, n: u64) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(t.method.clone())
        .uri(t.path.as_str())
        .header(hyper::header::HOST, format!("{}:{}", t.host, t.port));
    for (k, v) in &t.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match &t.numbered_input {
        Some(text) => {
            Bytes::from(serde_json::json!({ "input": format!("{text} {n}") }).to_string())
        }
        None => t.body.clone(),
    };
    b.body(Full::new(body))
        .unwrap_or_else(|_| hyper::Request::new(Full::new(Bytes::new())))
}

/// One request on `sender`: Ok(status) with the body read, or the error kind.
async fn once(sender: &mut Sender, t: &Target, n: u64, timeout: Duration) -> Result<u16, Failure> {
    let fut = async {
        // A connection the server closed after its last answer (Connection: close, idle
        // timeout) is not an error of this request: the caller reconnects and retries.
        sender.ready().await.map_err(|_| Failure::Closed)?;
        let resp = sender
            .send_request(request(t, n))
            .await
            .map_err(|_| Failure::Connection)?;
        let status = resp.status().as_u16();
        resp.into_body()
            .collect()
            .await
            .map_err(|_| Failure::Connection)?;
        Ok(status)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout),
    }
}

/// Checks the target before the run: it answers, and it does not refuse the key.
pub async fn preflight(t: &Target, timeout: Duration) -> Result<(), BenchError> {
    let addr = format!("{}:{}", t.host, t.port);
    let mut s = connect(t, timeout)
        .await
        .map_err(|reason| BenchError::Unreachable {
            addr: addr.clone(),
            reason,
        })?;
    match once(&mut s, t, 0, timeout).await {
        Ok(401) | Ok(403) => Err(BenchError::Refused(format!(
            "http://{addr}{} refused the API key (401): pass the gateway's key with --key or \
             OSMEN_API_KEYS",
            t.path
        ))),
        Ok(404) => Err(BenchError::Refused(format!(
            "http://{addr}{} does not exist (404): check --agent (GET /api/v1/agents lists them)",
            t.path
        ))),
        _ => Ok(()),
    }
}

/// Runs the plan; `tally` is shared with a live view while it runs.
pub async fn run(plan: &Plan, tally: Arc<Tally>) -> Report {
    let start = Instant::now();
    let deadline = plan.duration.map(|d| start + d);
    let next = Arc::new(AtomicU64::new(0));
    let open_total = match (plan.rate, plan.duration) {
        (Some(r), Some(d)) => (r * d.as_secs_f64()).ceil() as u64,
        _ => plan.requests,
    };
    let mut tasks = Vec::new();
    for user in 0..plan.users {
        let (t, tally, next) = (plan.target.clone(), tally.clone(), next.clone());
        let (rate, requests, timeout) = (plan.rate, plan.requests, plan.timeout);
        tasks.push(tokio::spawn(async move {
            let mut sender: Option<Sender> = None;
            let mut mine = 0u64;
            loop {
                // Which request, and when it was meant to start.
                let intended = match rate {
                    Some(r) => {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= open_total {
                            break;
                        }
                        let at = start + Duration::from_secs_f64(k as f64 / r);
                        if deadline.is_some_and(|d| at >= d) {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => {
                        if deadline.is_none() && mine >= requests {
                            break;
                        }
                        let now = Instant::now();
                        if deadline.is_some_and(|d| now >= d) {
                            break;
                        }
                        now
                    }
                };
                mine += 1;
                if sender.is_none() {
                    match connect(&t, timeout).await {
                        Ok(s) => sender = Some(s),
                        Err(_) => {
                            tally.error("connection".into());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
                let n = (user as u64) << 40 | mine;
                let mut result = Err(Failure::Closed);
                for _ in 0..2 {
                    if sender.is_none() {
                        match connect(&t, timeout).await {
                            Ok(s) => sender = Some(s),
                            Err(_) => break,
                        }
                    }
                    let Some(s) = sender.as_mut() else { break };
                    result = once(s, &t, n, timeout).await;
                    if result != Err(Failure::Closed) {
                        break;
                    }
                    sender = None;
                }
                let result = result.map_err(|e| match e {
                    Failure::Closed => Failure::Connection,
                    other => other,
                });
                match result {
                    Ok(status) => {
                        let us = intended.elapsed().as_micros().max(1) as u64;
                        let mut h = tally.hist[user].lock().unwrap_or_else(|p| p.into_inner());
                        h.saturating_record(us);
                        drop(h);
                        if (200..300).contains(&status) {
                            // `done` first: a reader of `ok` then `done` never sees ok > done.
                            tally.done.fetch_add(1, Ordering::Relaxed);
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.error(format!("status {status}"));
                        }
                    }
                    Err(kind) => {
                        // A timeout is a latency too: leaving it out would hide exactly
                        // the stalls an open loop is meant to show.
                        let us = intended.elapsed().as_micros().max(1) as u64;
                        tally.hist[user]
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .saturating_record(us);
                        // The connection's state is unknown: start a fresh one.
                        sender = None;
                        tally.error(kind.to_string());
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Report::from_tally(&tally, start.elapsed(), plan.rate.is_some())
}

pub fn new_tally(users: usize) -> Arc<Tally> {
    Arc::new(Tally::new(users))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Target::parse_url("http://127.0.0.1:8080/api/v1/x").unwrap(),
            ("127.0.0.1".into(), 8080, "/api/v1/x".into())
        );
        assert_eq!(
            Target::parse_url("http://h").unwrap(),
            ("h".into(), 80, "/".into())
        );
        assert!(
            Target::parse_url("https://h/")
                .unwrap_err()
                .to_string()
                .contains("only http://")
        );
        assert!(
            Target::parse_url("http://h:x/")
                .unwrap_err()
                .to_string()
                .contains("bad port")
        );
    }

    #[test]
    fn report_from_known_latencies() {
        let t = Tally::new(2);
        for i in 1..=100u64 {
            t.hist[(i % 2) as usize]
                .lock()
                .unwrap()
                .record(i * 1000)
                .unwrap();
            t.ok.fetch_add(1, Ordering::Relaxed);
            t.done.fetch_add(1, Ordering::Relaxed);
        }
        t.error("status 500".into());
        let r = Report::from_tally(&t, Duration::from_secs(2), false);
        assert_eq!(r.total_requests, 101);
        assert_eq!(r.successes, 100);
        assert!((r.p50_seconds - 0.050).abs() < 0.0001, "{}", r.p50_seconds);
        assert!((r.p99_seconds - 0.099).abs() < 0.0001, "{}", r.p99_seconds);
        assert!((r.max_seconds - 0.100).abs() < 0.0001);
        assert!((r.throughput_rps - 50.5).abs() < 1e-9);
        assert_eq!(r.errors["status 500"], 1);
        let text = r.render();
        assert!(
            text.contains("Success rate: 99.0%") && text.contains("Errors: status 500: 1"),
            "{text}"
        );
    }
}
