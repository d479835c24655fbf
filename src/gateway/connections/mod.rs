//! The gateway's client connections, so that no client can hold the server hostage: its
//! own accept loop over hyper's HTTP/1 connections, a registry that knows what each
//! connection is doing (sending a request head, busy with a request, idle between
//! requests), the header-read, body-read and idle timeouts, a cap on connections that
//! sheds the one idle the longest, and the descriptor soft limit raised to the hard limit.
//!
//! hyper's own `header_read_timeout` restarts while a kept-alive connection waits for its
//! next request, so it cannot be told apart from an idle timeout; the registry keeps the
//! phase itself: an IO wrapper sees the first byte of a request head, a service wrapper
//! sees the head complete (the service is called) and the answer produced. One sweeper
//! task cuts what has overstayed; the body deadline lives in a body wrapper, so that the
//! client gets a 408 that says why.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use super::{AbortOnDrop, Gateway};
use crate::model::gateway::GatewayFile;

mod body;
mod limits;
pub use body::BodyTimeout;
use body::{TimedBody, TrackedIo};
pub use limits::{NofileLimit, Prepared, effective_cap, prepare, raise_nofile_limit};

/// Descriptors kept out of the connection cap for the gateway's own files and outgoing
/// connections (providers, Redis, Qdrant, n8n) and, in the console, its collectors; at
/// most half of the soft limit.
pub const FD_RESERVE: u64 = 256;

/// At most this many idle connections are shed at once when a new one finds the cap
/// reached (nginx drains up to 32 reusable connections the same way), so that a flood of
/// connects does not scan the registry once per connect.
const SHED_BATCH: usize = 32;

/// How long the accept loop pauses when no descriptor is left and nothing can be shed
/// (every connection busy): the connect waits in the backlog meanwhile.
const EXHAUSTED_PAUSE: Duration = Duration::from_millis(5);

/// The connection settings of `[gateway]` in `config/gateway.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Settings {
    pub fn from_file(f: &GatewayFile) -> Settings {
        Settings {
            header_read_timeout: f.header_read_timeout(),
            body_read_timeout: f.body_read_timeout(),
            idle_timeout: f.idle_timeout(),
            max_connections: f.gateway.max_connections.max(1),
        }
    }

    /// How often the sweeper looks: a twentieth of the shortest timeout, so a connection
    /// is cut at most 5% late (every 500 ms with the default 10 s header timeout).
    fn sweep_period(&self) -> Duration {
        let shortest = self.header_read_timeout.min(self.idle_timeout);
        (shortest / 20).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }
}

/// Why the gateway closed a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request head did not arrive in time.
    HeaderTimeout,
    /// The request body did not arrive in time (the client got a 408).
    BodyTimeout,
    /// A kept-alive connection waited too long for its next request.
    IdleTimeout,
    /// Closed to make room for a new connection at the cap.
    Shed,
    /// A new connection found the cap reached and every connection busy (it got a 503).
    Refused,
}

impl Reason {
    const ALL: [Reason; 5] = [
        Reason::HeaderTimeout,
        Reason::BodyTimeout,
        Reason::IdleTimeout,
        Reason::Shed,
        Reason::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::BodyTimeout => "body_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::Shed => "shed",
            Reason::Refused => "refused",
        }
    }
}

/// Counters and gauges for `/metrics`.
#[derive(Default)]
pub struct Stats {
    open: AtomicUsize,
    cap: AtomicUsize,
    closed: [AtomicU64; 5],
    fd_exhausted: AtomicU64,
    nofile_soft: AtomicU64,
}

impl Stats {
    fn count(&self, r: Reason) {
        self.closed[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed for this reason since start.
    pub fn closed(&self, r: Reason) -> u64 {
        self.closed[r as usize].load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The connection families of `/metrics` (Prometheus text).
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let mut family = |name: &str, typ: &str, help: &str, lines: &[(String, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {typ}");
            for (labels, v) in lines {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        family(
            "osmen_http_connections_open",
            "gauge",
            "Client connections open now.",
            &[(String::new(), self.open() as u64)],
        );
        family(
            "osmen_http_connections_max",
            "gauge",
            "Client connections held at once: gateway.max_connections, lowered to fit the \
             descriptor limit.",
            &[(String::new(), self.cap.load(Ordering::Relaxed) as u64)],
        );
        let closed: Vec<(String, u64)> = Reason::ALL
            .iter()
            .map(|r| (format!("{{reason=\"{}\"}}", r.as_str()), self.closed(*r)))
            .collect();
        family(
            "osmen_http_connections_closed_total",
            "counter",
            "Client connections the gateway closed, by reason (timeouts, shed at the cap, \
             refused with every connection busy).",
            &closed,
        );
        family(
            "osmen_http_accept_fd_exhausted_total",
            "counter",
            "Accepts that found no file descriptor left (EMFILE, ENFILE).",
            &[(String::new(), self.fd_exhausted.load(Ordering::Relaxed))],
        );
        family(
            "osmen_process_max_fds",
            "gauge",
            "The process's soft limit on open file descriptors (RLIMIT_NOFILE).",
            &[(String::new(), self.nofile_soft.load(Ordering::Relaxed))],
        );
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            family(
                "osmen_process_open_fds",
                "gauge",
                "File descriptors the process has open.",
                &[(String::new(), d.count().saturating_sub(1) as u64)],
            );
        }
        o
    }
}

/// The gateway's connection settings and what they did.
pub struct Connections {
    pub settings: Settings,
    pub stats: Stats,
}

impl Connections {
    pub fn new(settings: Settings) -> Connections {
        Connections {
            settings,
            stats: Stats::default(),
        }
    }
}

/// When a request began to arrive: the first byte of its head on the connection (for a
/// connection's first request, its accept). Set on every request the gateway serves.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// What a connection is doing.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head to complete, since its first byte (for a connection's
    /// first request: since the accept).
    Head(Instant),
    /// This many requests in the service (hyper serves one at a time).
    Busy(u32),
    /// Kept alive, waiting for the next request, since the last answer was produced.
    Idle(Instant),
}

struct Conn {
    id: u64,
    phase: Mutex<Phase>,
    /// Marked to be closed (by the sweeper, a shed or the end of the grace period).
    cut: AtomicBool,
    wake: tokio::sync::Notify,
    /// The body of the request in the service overran its deadline.
    body_timed_out: AtomicBool,
}

impl Conn {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes came in: while idle they are the start of the next request head.
    fn saw_bytes(&self) {
        let mut p = self.phase();
        if let Phase::Idle(_) = *p {
            *p = Phase::Head(Instant::now());
        }
    }

    fn begin(&self) {
        self.body_timed_out.store(false, Ordering::Relaxed);
        let mut p = self.phase();
        *p = match *p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    fn end(&self) {
        let mut p = self.phase();
        *p = match *p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// The open connections, bounded by the cap.
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Connections marked to be cut whose tasks have not ended yet.
    cutting: AtomicUsize,
    cap: usize,
    gw: Arc<Gateway>,
    /// Wakes the sweeper when the first connection arrives.
    not_empty: tokio::sync::Notify,
}

impl Registry {
    fn map(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> &Stats {
        &self.gw.connections.stats
    }

    /// Connections that count against the cap: the open ones not already on their way
    /// out.
    fn admitted(&self) -> usize {
        self.stats()
            .open
            .load(Ordering::Relaxed)
            .saturating_sub(self.cutting.load(Ordering::Relaxed))
    }

    fn insert(&self, now: Instant) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            phase: Mutex::new(Phase::Head(now)),
            cut: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            body_timed_out: AtomicBool::new(false),
        });
        let mut m = self.map();
        if m.is_empty() {
            self.not_empty.notify_one();
        }
        m.insert(conn.id, conn.clone());
        self.stats().open.fetch_add(1, Ordering::Relaxed);
        conn
    }

    fn remove(&self, conn: &Conn) {
        self.map().remove(&conn.id);
        self.stats().open.fetch_sub(1, Ordering::Relaxed);
        if conn.cut.load(Ordering::Relaxed) {
            self.cutting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Marks a connection to be closed and wakes its task; counted once.
    fn cut(&self, conn: &Conn, reason: Option<Reason>) -> bool {
        if conn.cut.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.cutting.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = reason {
            self.stats().count(r);
        }
        conn.wake.notify_one();
        true
    }

    /// Cuts the connections whose request head or idle wait overran its timeout.
    fn expire(&self, now: Instant) {
        let s = &self.gw.connections.settings;
        let m = self.map();
        for c in m.values() {
            if c.cut.load(Ordering::Relaxed) {
                continue;
            }
            let reason = match *c.phase() {
                Phase::Head(t) if now.saturating_duration_since(t) >= s.header_read_timeout => {
                    Some(Reason::HeaderTimeout)
                }
                Phase::Idle(t) if now.saturating_duration_since(t) >= s.idle_timeout => {
                    Some(Reason::IdleTimeout)
                }
                _ => None,
            };
            if let Some(r) = reason {
                self.cut(c, Some(r));
            }
        }
    }

    /// Sheds the connections with no request in the service that have waited the
    /// longest (idle, or stuck in a request head): an eighth of them, 1 to
    /// [`SHED_BATCH`]. Returns how many; 0 when every connection is busy.
    fn shed(&self) -> usize {
        let m = self.map();
        let mut idle: Vec<(Instant, &Arc<Conn>)> = m
            .values()
            .filter(|c| !c.cut.load(Ordering::Relaxed))
            .filter_map(|c| match *c.phase() {
                Phase::Head(t) | Phase::Idle(t) => Some((t, c)),
                Phase::Busy(_) => None,
            })
            .collect();
        if idle.is_empty() {
            return 0;
        }
        let n = (idle.len() / 8).clamp(1, SHED_BATCH);
        if n < idle.len() {
            idle.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        }
        let mut shed = 0;
        for (_, c) in &idle[..n] {
            shed += usize::from(self.cut(c, Some(Reason::Shed)));
        }
        shed
    }

    fn cut_all(&self) {
        for c in self.map().values() {
            self.cut(c, None);
        }
    }

    fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

/// Removes its connection from the registry when the connection's task ends, however it
/// ends.
struct Registered {
    reg: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.reg.remove(&self.conn);
    }
}

type Router = TowerToHyperService<axum::Router>;

/// The router for one connection: marks the connection busy from the request's head to
/// its answer, and gives the body its deadline.
struct ConnService {
    router: Router,
    conn: Arc<Conn>,
    gw: Arc<Gateway>,
}

/// Marks the connection idle again when the answer is produced, or the request dropped.
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<axum::body::Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // The request arrived when its head began to come in (a connection's first one:
        // when it was accepted); latency is measured from then.
        let arrived = match *self.conn.phase() {
            Phase::Head(t) => t,
            _ => Instant::now(),
        };
        self.conn.begin();
        let mut req = req;
        req.extensions_mut().insert(Arrival(arrived));
        let busy = Busy(self.conn.clone());
        let limit = self.gw.connections.settings.body_read_timeout;
        let req = req.map(|inner| TimedBody {
            inner,
            deadline: Instant::now() + limit,
            limit,
            sleep: None,
            conn: self.conn.clone(),
            expired: false,
        });
        let answer = self.router.call(req);
        let gw = self.gw.clone();
        Box::pin(async move {
            let mut r = answer.await?;
            if busy.0.body_timed_out.load(Ordering::Relaxed) {
                // The rest of the body is still on its way: close rather than read it.
                gw.connections.stats.count(Reason::BodyTimeout);
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            drop(busy);
            Ok(r)
        })
    }
}

/// Tells a newcomer that finds every connection busy why it is closed (best effort: one
/// non-blocking write), and closes it.
fn refuse(tcp: TcpStream, gw: &Gateway, cap: usize) {
    let body = serde_json::json!({"error": {"code": 503, "message": format!(
        "the gateway holds its limit of {cap} connections and every one is busy with a \
         request: retry in a moment"
    )}})
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if tcp.try_write(answer.as_bytes()).ok() == Some(answer.len()) {
        gw.metrics.answered_http(503);
    }
    gw.connections.stats.count(Reason::Refused);
}

/// Accept errors that concern one connection only (accept(2) says to retry at once).
fn per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EPERM
        )
    )
}

fn fd_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn sweep(reg: Arc<Registry>) {
    let period = reg.gw.connections.settings.sweep_period();
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // Quiet while there is nothing to watch.
        if reg.is_empty() {
            reg.not_empty.notified().await;
        }
        every.tick().await;
        reg.expire(Instant::now());
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, asks every
/// connection to finish its request and close, and waits for them up to the grace
/// period, after which the rest are closed.
pub async fn serve(
    gw: Arc<Gateway>,
    app: axum::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let prepared = prepare(&gw);
    let reg = Arc::new(Registry {
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        cutting: AtomicUsize::new(0),
        cap: prepared.cap,
        gw: gw.clone(),
        not_empty: tokio::sync::Notify::new(),
    });
    let _sweeper = AbortOnDrop(tokio::spawn(sweep(reg.clone())));
    let mut builder = http1::Builder::new();
    // Our own timeouts replace hyper's (it has no separate idle timeout).
    builder.keep_alive(true).header_read_timeout(None);
    let builder = Arc::new(builder);
    let router = TowerToHyperService::new(app);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut exhausted_in_a_row = 0u32;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => r,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) if fd_exhausted(&e) => {
                gw.connections
                    .stats
                    .fd_exhausted
                    .fetch_add(1, Ordering::Relaxed);
                exhausted_in_a_row += 1;
                // Free a descriptor by shedding and try again at once; pause briefly only
                // when nothing is on its way out (every connection busy, or descriptors
                // held elsewhere in the process).
                let freeing = reg.shed() > 0 || reg.cutting.load(Ordering::Relaxed) > 0;
                if freeing && exhausted_in_a_row < 64 {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(EXHAUSTED_PAUSE).await;
                }
                continue;
            }
            Err(e) if per_connection(&e) => continue,
            Err(_) => {
                tokio::time::sleep(EXHAUSTED_PAUSE).await;
                continue;
            }
        };
        exhausted_in_a_row = 0;
        // Answers go out as soon as they are written (no Nagle wait on a small response).
        let _ = tcp.set_nodelay(true);
        if reg.admitted() >= reg.cap && reg.shed() == 0 {
            refuse(tcp, &gw, reg.cap);
            continue;
        }
        let conn = reg.insert(Instant::now());
        let service = ConnService {
            router: router.clone(),
            conn: conn.clone(),
            gw: gw.clone(),
        };
        let registered = Registered {
            reg: reg.clone(),
            conn,
        };
        tokio::spawn(run(
            registered,
            tcp,
            builder.clone(),
            service,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = async {
        while !reg.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(gw.shutdown_grace, drained)
        .await
        .is_err()
    {
        reg.cut_all();
    }
    Ok(())
}

/// One connection, until it ends, is cut, or finishes after a graceful shutdown.
async fn run(
    registered: Registered,
    tcp: TcpStream,
    builder: Arc<http1::Builder>,
    service: ConnService,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let conn = registered.conn.clone();
    let io = TokioIo::new(TrackedIo {
        tcp,
        conn: conn.clone(),
    });
    // The connection (and its socket) is closed at the end of this block, before the
    // registry forgets it.
    {
        let mut http = std::pin::pin!(builder.serve_connection(io, service));
        let mut stopping = false;
        loop {
            if !stopping && *stop.borrow() {
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
            tokio::select! {
                _ = http.as_mut() => break,
                () = conn.wake.notified() => break,
                r = stop.changed(), if !stopping => {
                    if r.is_err() {
                        stopping = true;
                        http.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
    drop(registered);
}

#[cfg(test)]
mod tests;
