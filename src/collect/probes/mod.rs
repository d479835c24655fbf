//! Service probes: what PostgreSQL, Redis, Qdrant, n8n, Langflow and Ollama say about
//! themselves, beyond their containers' CPU and memory. Each probed service gets its own
//! task and period; every sample is sent to the hub as `Update::Probe` with the probe's
//! health and last error, like every other source.
//!
//! Which services are probed: an `x-osmen-probe` key in the compose file, else the image
//! name (`postgres:15`, `redis:7-alpine`, `qdrant/qdrant`...). A probe reaches the service
//! on its port published on loopback when there is one, else on the container's address.
//! Credentials come from the service's environment and never leave the probe.

pub mod http;
pub mod postgres;
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::containers::ContainerSource;
use crate::hub::Update;
use crate::model::container::ContainerRow;
use crate::model::probe::{ProbeKind, ProbeReport, ProbeState};
use crate::stack::compose::Project;

/// One probed service.
#[derive(Clone)]
pub struct Target {
    pub service: String,
    pub kind: ProbeKind,
    /// The port inside the container.
    pub port: u16,
    pub every: Duration,
    pub creds: Creds,
}

/// What a probe logs in with. Debug never prints the password.
#[derive(Clone, Default)]
pub struct Creds {
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("user", &self.user)
            .field(
                "password",
                &self.password.as_ref().map(|_| crate::model::secret::MASK),
            )
            .field("database", &self.database)
            .finish()
    }
}

impl Creds {
    /// Removes the password from a message (a driver's error may echo what it was given).
    pub fn scrub(&self, msg: &str) -> String {
        let mut m = crate::model::secret::mask_url_credentials(msg);
        if let Some(p) = self.password.as_deref().filter(|p| p.len() >= 3) {
            m = m.replace(p, crate::model::secret::MASK);
        }
        m
    }
}

/// The value of `--flag value` or `--flag=value` in a command line.
fn flag(command: &[String], name: &str) -> Option<String> {
    let mut it = command.iter();
    while let Some(a) = it.next() {
        if a == name {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

fn creds_for(kind: ProbeKind, svc: &crate::stack::compose::Service) -> Creds {
    let env = |k: &str| svc.environment.get(k).filter(|v| !v.is_empty()).cloned();
    let command = svc.command.clone().unwrap_or_default();
    match kind {
        ProbeKind::Postgres => {
            let user = env("POSTGRES_USER").unwrap_or_else(|| "postgres".into());
            Creds {
                database: env("POSTGRES_DB").or_else(|| Some(user.clone())),
                password: env("POSTGRES_PASSWORD"),
                user: Some(user),
            }
        }
        ProbeKind::Redis => Creds {
            user: None,
            password: flag(&command, "--requirepass")
                .or_else(|| env("REDIS_PASSWORD"))
                .filter(|p| !p.is_empty()),
            database: None,
        },
        // The HTTP services' health and version endpoints need no credentials.
        _ => Creds::default(),
    }
}

/// The services of the project osmen probes, in name order.
pub fn targets(project: &Project) -> Vec<Target> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        let kind = match &svc.probe {
            Some(spec) => spec.kind,
            None => svc.image.as_deref().and_then(ProbeKind::from_image),
        };
        let Some(kind) = kind else { continue };
        let spec = svc.probe.as_ref();
        out.push(Target {
            service: name.clone(),
            kind,
            port: spec.and_then(|s| s.port).unwrap_or(kind.default_port()),
            every: spec.and_then(|s| s.every).unwrap_or(kind.default_period()),
            creds: creds_for(kind, svc),
        });
    }
    out
}

/// `host:port` to reach the target: its port published on loopback (or on every
/// address), else the first running container's own address. For an engine on `remote`
/// only a port published on every address can be reached from here.
pub fn endpoint(rows: &[ContainerRow], t: &Target, remote: Option<&str>) -> Result<String, String> {
    let mut running: Vec<&ContainerRow> = rows
        .iter()
        .filter(|r| r.service == t.service && r.state == "running")
        .collect();
    running.sort_by_key(|r| r.number);
    let Some(row) = running.first() else {
        return Err(format!("no running container of {}", t.service));
    };
    let published = row
        .ports
        .iter()
        .filter(|p| p.container_port == t.port && p.protocol == "tcp" && p.host_port != 0);
    for p in published {
        if let Some(host) = crate::model::container::published_host(remote, &p.host_ip) {
            return Ok(format!("{host}:{}", p.host_port));
        }
    }
    if let Some(h) = remote {
        return Err(format!(
            "the engine is on {h} and {} publishes port {} only on that machine's loopback \
             (or not at all): publish it on an address this machine can reach, or forward \
             it (ssh -L)",
            row.name, t.port
        ));
    }
    match row.addresses.first() {
        Some(ip) => Ok(format!("{ip}:{}", t.port)),
        None => Err(format!(
            "{} publishes no port {} on loopback and has no network address",
            row.name, t.port
        )),
    }
}

/// Per-second rate of a counter between two samples (None on a reset or no time).
pub fn rate(prev: Option<f64>, now: f64, dt: f64) -> Option<f64> {
    let p = prev?;
    (dt > 0.0 && now >= p).then(|| (now - p) / dt)
}

/// One probe's own state (connections, previous counters for rates).
pub enum Prober {
    Postgres(postgres::Probe),
    Redis(redis::Probe),
    Http(http::Probe),
    Ollama(super::ollama::Blobs, reqwest::Client),
}

impl Prober {
    pub fn new(t: &Target) -> Prober {
        match t.kind {
            ProbeKind::Postgres => Prober::Postgres(postgres::Probe::new(t.creds.clone())),
            ProbeKind::Redis => Prober::Redis(redis::Probe::new(t.creds.clone())),
            ProbeKind::Ollama => Prober::Ollama(super::ollama::Blobs::new(), http::client()),
            k => Prober::Http(http::Probe::new(k)),
        }
    }

    /// One sample of the service at `addr` (`host:port`).
    pub async fn sample(&mut self, addr: &str) -> Result<Value, String> {
        match self {
            Prober::Postgres(p) => p.sample(addr).await,
            Prober::Redis(p) => p.sample(addr).await,
            Prober::Http(p) => p.sample(addr).await,
            Prober::Ollama(blobs, client) => {
                if blobs.len() > 256 {
                    blobs.clear();
                }
                let o =
                    super::ollama::sample_cached(client, &format!("http://{addr}"), blobs).await?;
                serde_json::to_value(o).map_err(|e| e.to_string())
            }
        }
    }
}

/// The longest one sample may take.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(4);
/// How often the container list (addresses, published ports) is refreshed.
const RELIST_EVERY: Duration = Duration::from_secs(5);

/// Runs every target until `stop`. Sends `Source("probes", Ok)` once each target has
/// taken its first two samples (or failed), so that a one-shot `status` can wait for
/// the first rates: the second sample comes one second after the first.
pub async fn run<S: ContainerSource>(
    src: Arc<S>,
    targets: Vec<Target>,
    tx: mpsc::Sender<Update>,
    stop: watch::Receiver<bool>,
) {
    if targets.is_empty() {
        let _ = tx.send(Update::Source("probes", Ok(()))).await;
        return;
    }
    let remote = src.remote_host();
    let (rows_tx, rows_rx) = watch::channel::<Option<Result<Vec<ContainerRow>, String>>>(None);
    let lister = {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELIST_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                let _ = rows_tx.send(Some(src.list().await));
            }
        })
    };
    let pending = Arc::new(AtomicUsize::new(targets.len()));
    let mut tasks = Vec::new();
    for t in targets {
        tasks.push(tokio::spawn(run_one(
            t,
            remote.clone(),
            rows_rx.clone(),
            tx.clone(),
            stop.clone(),
            pending.clone(),
        )));
    }
    for h in tasks {
        let _ = h.await;
    }
    lister.abort();
}

async fn run_one(
    t: Target,
    remote: Option<String>,
    mut rows: watch::Receiver<Option<Result<Vec<ContainerRow>, String>>>,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
    pending: Arc<AtomicUsize>,
) {
    let mut prober = Prober::new(&t);
    let mut taken = 0u32;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        // The first listing may not be there yet.
        if rows.borrow().is_none() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rows.changed()).await;
        }
        let listed = rows.borrow().clone();
        let addr = match listed {
            Some(Ok(r)) => endpoint(&r, &t, remote.as_deref()),
            Some(Err(e)) => Err(format!("cannot list containers: {e}")),
            None => Err("no container list yet".into()),
        };
        let result = match &addr {
            Ok(a) => match tokio::time::timeout(SAMPLE_TIMEOUT, prober.sample(a)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}s", SAMPLE_TIMEOUT.as_secs())),
            },
            Err(e) => Err(e.clone()),
        };
        let report = ProbeReport {
            service: t.service.clone(),
            kind: t.kind,
            address: addr.ok(),
            every_s: t.every.as_secs_f64(),
            result: result.map_err(|e| t.creds.scrub(&e)),
        };
        if tx.send(Update::Probe(Box::new(report))).await.is_err() {
            return;
        }
        taken += 1;
        if taken == 2 && pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = tx.send(Update::Source("probes", Ok(()))).await;
        }
        next = Instant::now()
            + if taken == 1 {
                Duration::from_secs(1).min(t.every)
            } else {
                t.every
            };
    }
}

/// The figures of a report as the hub keeps them: the last good figures stay (marked by
/// `last_sample`) while the probe fails, with the error beside them.
pub fn merge(prev: Option<&ProbeState>, r: &ProbeReport, now: f64) -> ProbeState {
    let (status, last_error, last_sample, figures) = match &r.result {
        Ok(figures) => ("ok".to_string(), None, Some(now), Some(figures.clone())),
        Err(e) => (
            format!("error: {e}"),
            Some(e.clone()),
            prev.and_then(|p| p.last_sample),
            prev.and_then(|p| p.figures.clone()),
        ),
    };
    ProbeState {
        kind: r.kind,
        address: r.address.clone(),
        every_s: r.every_s,
        status,
        last_error,
        last_sample,
        figures,
    }
}

/// Figures by name for the advisor and the console: `probe.figures[key]` as f64.
pub fn figure(probe: &ProbeState, key: &str) -> Option<f64> {
    probe.figure(key)
}

/// Used by tests and the hub: services keyed by name.
pub type Reports = BTreeMap<String, Value>;

/// The probes' recorded-figures tests: figures compared with their recording under
/// `tests/fixtures/snapshot/` (`UPDATE_SNAPSHOT_JSON=1` records it again; a missing
/// recording fails, so deleting one cannot make its test pass).
#[cfg(test)]
pub(crate) mod recording {
    use std::collections::BTreeMap;

    use serde_json::Value;

    fn path(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/snapshot")
            .join(name)
    }

    /// The JSON `status --json` prints under `services[].probe.figures` keeps its shape
    /// and values.
    pub fn recorded(name: &str, got: &Value) {
        let text = serde_json::to_string_pretty(got).unwrap() + "\n";
        if std::env::var_os("UPDATE_SNAPSHOT_JSON").is_some() {
            std::fs::write(path(name), &text).unwrap();
        }
        let want = std::fs::read_to_string(path(name))
            .unwrap_or_else(|e| panic!("{name}: {e} (UPDATE_SNAPSHOT_JSON=1 records it)"));
        let want: Value = serde_json::from_str(&want).unwrap();
        assert_eq!(got, &want, "the figures changed; got:\n{text}");
    }

    /// Each recorded entry read into `T` and written back is the same JSON.
    pub fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) {
        let all: BTreeMap<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap();
        assert!(!all.is_empty(), "{name} records nothing");
        for (entry, v) in all {
            let typed: T = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&typed).unwrap(), v, "{name}: {entry}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::container::{Health, PortRow};

    fn row(service: &str, ports: Vec<PortRow>, addresses: Vec<&str>) -> ContainerRow {
        ContainerRow {
            service: service.into(),
            name: format!("p-{service}-1"),
            id: "x".into(),
            number: 1,
            image: "i".into(),
            state: "running".into(),
            health: Health::None,
            exit_code: None,
            restart_count: 0,
            started_at: String::new(),
            created: String::new(),
            oom_killed: false,
            ports,
            health_output: String::new(),
            config_hash: String::new(),
            managed: true,
            cpu_limit: None,
            memory_limit: None,
            addresses: addresses.into_iter().map(String::from).collect(),
        }
    }

    fn target(kind: ProbeKind) -> Target {
        Target {
            service: "db".into(),
            kind,
            port: kind.default_port(),
            every: kind.default_period(),
            creds: Creds::default(),
        }
    }

    #[test]
    fn endpoint_prefers_loopback_then_container_address() {
        let t = target(ProbeKind::Postgres);
        let published = PortRow {
            host_ip: "127.0.0.1".into(),
            host_port: 15432,
            container_port: 5432,
            protocol: "tcp".into(),
        };
        let rows = vec![row("db", vec![published.clone()], vec!["172.18.0.2"])];
        assert_eq!(endpoint(&rows, &t, None).unwrap(), "127.0.0.1:15432");
        // An engine on another machine: its loopback and its container network are not
        // reachable from here; a port published on every address is, on that host.
        let err = endpoint(&rows, &t, Some("db-host")).unwrap_err();
        assert!(err.contains("engine is on db-host"), "{err}");
        let everywhere = PortRow {
            host_ip: "0.0.0.0".into(),
            ..published
        };
        let rows = vec![row("db", vec![everywhere], vec!["172.18.0.2"])];
        assert_eq!(
            endpoint(&rows, &t, Some("db-host")).unwrap(),
            "db-host:15432"
        );
        assert_eq!(
            endpoint(&rows, &t, Some("fd00::5")).unwrap(),
            "[fd00::5]:15432"
        );
        let rows = vec![row("db", vec![], vec!["172.18.0.2"])];
        assert_eq!(endpoint(&rows, &t, None).unwrap(), "172.18.0.2:5432");
        let err = endpoint(&[row("db", vec![], vec![])], &t, None).unwrap_err();
        assert!(err.contains("p-db-1") && err.contains("5432"), "{err}");
        let err = endpoint(&[row("web", vec![], vec!["1.2.3.4"])], &t, None).unwrap_err();
        assert!(err.contains("no running container of db"), "{err}");
    }

    #[test]
    fn credentials_come_from_the_environment_and_never_print() {
        let yaml = "services:\n  db:\n    image: postgres:15\n    environment:\n      \
                    POSTGRES_PASSWORD: hunter22\n      POSTGRES_DB: osmen\n  cache:\n    \
                    image: redis:7\n    command: [redis-server, --requirepass, s3cr3tpw]\n  \
                    web:\n    image: nginx\n  vec:\n    image: mine/vectors\n    \
                    x-osmen-probe: {kind: qdrant, port: 7000, every: 2s}\n  off:\n    \
                    image: redis:7\n    x-osmen-probe: none\n";
        let p = crate::stack::compose::load_str(
            yaml,
            std::path::Path::new("/tmp/x.yml"),
            &crate::stack::compose::LoadOptions::default(),
        )
        .unwrap();
        let t = targets(&p);
        let names: Vec<_> = t.iter().map(|t| (t.service.as_str(), t.kind)).collect();
        assert_eq!(
            names,
            [
                ("cache", ProbeKind::Redis),
                ("db", ProbeKind::Postgres),
                ("vec", ProbeKind::Qdrant)
            ]
        );
        assert_eq!(t[0].creds.password.as_deref(), Some("s3cr3tpw"));
        assert_eq!(t[1].creds.database.as_deref(), Some("osmen"));
        assert_eq!(t[1].creds.user.as_deref(), Some("postgres"));
        assert_eq!((t[2].port, t[2].every), (7000, Duration::from_secs(2)));
        let dbg = format!("{:?}", t[1].creds);
        assert!(!dbg.contains("hunter22"), "{dbg}");
        assert_eq!(
            t[1].creds
                .scrub("auth failed for hunter22 at postgresql://u:hunter22@h"),
            "auth failed for ******** at postgresql://u:********@h"
        );
    }

    #[test]
    fn a_failing_probe_keeps_its_last_figures() {
        let ok = ProbeReport {
            service: "db".into(),
            kind: ProbeKind::Redis,
            address: Some("127.0.0.1:6379".into()),
            every_s: 2.0,
            result: Ok(serde_json::json!({"ops_per_s": 5.0})),
        };
        let first = merge(None, &ok, 100.0);
        assert_eq!(first.status, "ok");
        let bad = ProbeReport {
            result: Err("connection refused".into()),
            ..ok
        };
        let second = merge(Some(&first), &bad, 102.0);
        assert_eq!(second.status, "error: connection refused");
        assert_eq!(second.last_sample, Some(100.0));
        assert_eq!(figure(&second, "ops_per_s"), Some(5.0));
    }
}
