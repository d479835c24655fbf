//! Service probes: what PostgreSQL, Redis, Qdrant, n8n, Langflow and Ollama say about
//! themselves, beyond their containers' CPU and memory. Each probed service gets its own
//! task and period; every sample is sent to the hub as `Update::Probe` with the probe's
//! health and last error, like every other source.
//!
//! Which services are probed (`ProbeTarget`s) the command side decides from the compose
//! file. A probe reaches the service on its port published on loopback when there is one,
//! else on the container's address. Credentials come with the target and never leave the
//! probe.

pub mod http;
pub mod postgres;
pub mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::containers::ContainerSource;
use crate::hub::Update;
use crate::model::container::ContainerRow;
use crate::model::probe::{Figures, ProbeKind, ProbeReport, ProbeTarget};

/// Why a probe took no sample; the texts are the ones the console shows.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no running container of {0}")]
    NoContainer(String),
    #[error(
        "the engine is on {host} and {container} publishes port {port} only on that \
         machine's loopback (or not at all): publish it on an address this machine can \
         reach, or forward it (ssh -L)"
    )]
    RemoteOnly {
        host: String,
        container: String,
        port: u16,
    },
    #[error("{container} publishes no port {port} on loopback and has no network address")]
    NoAddress { container: String, port: u16 },
    #[error("cannot list containers: {0}")]
    List(ListError),
    #[error("no container list yet")]
    NotListed,
    #[error("no answer within {}s", SAMPLE_TIMEOUT.as_secs())]
    Timeout,
    #[error(transparent)]
    Postgres(#[from] postgres::PgProbeError),
    #[error(transparent)]
    Redis(#[from] redis::RedisProbeError),
    #[error(transparent)]
    Http(#[from] http::HttpProbeError),
    #[error(transparent)]
    Ollama(#[from] super::ollama::OllamaError),
}

/// `host:port` to reach the target: its port published on loopback (or on every
/// address), else the first running container's own address. For an engine on `remote`
/// only a port published on every address can be reached from here.
pub fn endpoint(
    rows: &[ContainerRow],
    t: &ProbeTarget,
    remote: Option<&str>,
) -> Result<String, ProbeError> {
    let mut running: Vec<&ContainerRow> = rows
        .iter()
        .filter(|r| r.service == t.service && r.state == "running")
        .collect();
    running.sort_by_key(|r| r.number);
    let Some(row) = running.first() else {
        return Err(ProbeError::NoContainer(t.service.clone()));
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
        return Err(ProbeError::RemoteOnly {
            host: h.to_string(),
            container: row.name.clone(),
            port: t.port,
        });
    }
    match row.addresses.first() {
        Some(ip) => Ok(format!("{ip}:{}", t.port)),
        None => Err(ProbeError::NoAddress {
            container: row.name.clone(),
            port: t.port,
        }),
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
    pub fn new(t: &ProbeTarget) -> Prober {
        match t.kind {
            ProbeKind::Postgres => Prober::Postgres(postgres::Probe::new(t.creds.clone())),
            ProbeKind::Redis => Prober::Redis(redis::Probe::new(t.creds.clone())),
            ProbeKind::Ollama => Prober::Ollama(super::ollama::Blobs::new(), http::client()),
            k => Prober::Http(http::Probe::new(k)),
        }
    }

    /// One sample of the service at `addr` (`host:port`).
    pub async fn sample(&mut self, addr: &str) -> Result<Figures, ProbeError> {
        Ok(match self {
            Prober::Postgres(p) => Figures::Postgres(p.sample(addr).await?),
            Prober::Redis(p) => Figures::Redis(p.sample(addr).await?),
            Prober::Http(p) => p.sample(addr).await?,
            Prober::Ollama(blobs, client) => {
                if blobs.len() > 256 {
                    blobs.clear();
                }
                let base = format!("http://{addr}");
                Figures::Ollama(super::ollama::sample_cached(client, &base, blobs).await?)
            }
        })
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
    targets: Vec<ProbeTarget>,
    tx: mpsc::Sender<Update>,
    stop: watch::Receiver<bool>,
) {
    if targets.is_empty() {
        let _ = tx.send(Update::Source("probes", Ok(()))).await;
        return;
    }
    let remote = src.remote_host();
    let (rows_tx, rows_rx) = watch::channel::<Option<Listed>>(None);
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
                let listed = src.list().await.map_err(|e| Arc::new(e) as ListError);
                let _ = rows_tx.send(Some(listed));
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

/// The last container list, or why it could not be read (shared by every probe task).
type Listed = Result<Vec<ContainerRow>, ListError>;
type ListError = Arc<dyn std::error::Error + Send + Sync>;

async fn run_one(
    t: ProbeTarget,
    remote: Option<String>,
    mut rows: watch::Receiver<Option<Listed>>,
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
            Some(Err(e)) => Err(ProbeError::List(e)),
            None => Err(ProbeError::NotListed),
        };
        let address = addr.as_ref().ok().cloned();
        let result = match addr {
            Ok(a) => match tokio::time::timeout(SAMPLE_TIMEOUT, prober.sample(&a)).await {
                Ok(r) => r,
                Err(_) => Err(ProbeError::Timeout),
            },
            Err(e) => Err(e),
        };
        let report = ProbeReport {
            service: t.service.clone(),
            kind: t.kind,
            address,
            every_s: t.every.as_secs_f64(),
            result: result.map_err(|e| t.creds.scrub(&e.to_string())),
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

    fn entries(name: &str) -> BTreeMap<String, Value> {
        let all: BTreeMap<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap();
        assert!(!all.is_empty(), "{name} records nothing");
        all
    }

    /// Each recorded entry read into `T` and written back is the same JSON.
    pub fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) {
        for (entry, v) in entries(name) {
            let typed: T = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&typed).unwrap(), v, "{name}: {entry}");
        }
    }

    /// The recording `name`, whole.
    pub fn read(name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap()
    }

    /// Each recorded entry read as `Figures` (untagged) is the kind `kind_of` names for it,
    /// and written back is the same JSON.
    pub fn figures_round_trip(
        name: &str,
        kind_of: impl Fn(&str) -> crate::model::probe::ProbeKind,
    ) {
        for (entry, v) in entries(name) {
            let typed: crate::model::probe::Figures = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("{name}: {entry}: {e}"));
            assert_eq!(typed.kind(), kind_of(&entry), "{name}: {entry}");
            assert_eq!(serde_json::to_value(&typed).unwrap(), v, "{name}: {entry}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::container::{Health, PortRow};
    use crate::model::probe::Creds;

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

    fn target(kind: ProbeKind) -> ProbeTarget {
        ProbeTarget {
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
        let err = endpoint(&rows, &t, Some("db-host"))
            .unwrap_err()
            .to_string();
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
        let err = endpoint(&[row("db", vec![], vec![])], &t, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p-db-1") && err.contains("5432"), "{err}");
        let err = endpoint(&[row("web", vec![], vec!["1.2.3.4"])], &t, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no running container of db"), "{err}");
    }

    /// A target's credentials never print, and a driver's error that echoes the password
    /// is scrubbed before it leaves the probe.
    #[test]
    fn credentials_never_print() {
        let t = ProbeTarget {
            creds: Creds {
                user: Some("postgres".into()),
                password: Some("hunter22".into()),
                database: Some("osmen".into()),
            },
            ..target(ProbeKind::Postgres)
        };
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("hunter22") && dbg.contains("osmen"), "{dbg}");
        assert_eq!(
            t.creds
                .scrub("auth failed for hunter22 at postgresql://u:hunter22@h"),
            "auth failed for ******** at postgresql://u:********@h"
        );
    }

    /// Every kind's recorded figures (status --json's) read into `Figures` find their own
    /// kind and write back the same JSON: Qdrant, n8n and Langflow from their probes'
    /// recorded shapes, PostgreSQL and Redis from theirs, Ollama and a probed service row
    /// from the snapshot's recording.
    #[test]
    fn recorded_figures_round_trip_by_kind() {
        use recording::{figures_round_trip, read};
        figures_round_trip("probe_figures.json", |entry| {
            match entry.split('_').next().unwrap_or(entry) {
                "qdrant" => ProbeKind::Qdrant,
                "n8n" => ProbeKind::N8n,
                _ => ProbeKind::Langflow,
            }
        });
        figures_round_trip("probe_figures_postgres.json", |_| ProbeKind::Postgres);
        figures_round_trip("probe_figures_redis.json", |_| ProbeKind::Redis);
        let status = read("status.json");
        let ollama: Figures = serde_json::from_value(status["ollama"].clone()).unwrap();
        assert_eq!(ollama.kind(), ProbeKind::Ollama);
        assert_eq!(serde_json::to_value(&ollama).unwrap(), status["ollama"]);
        let row = &status["services"][0]["probe"];
        let probe: crate::model::probe::ProbeState = serde_json::from_value(row.clone()).unwrap();
        assert!(probe.redis().is_some(), "{row}");
        assert_eq!(&serde_json::to_value(&probe).unwrap(), row);
    }

    /// JSON read back keeps a probe's figures its own kind: figures of another kind are
    /// refused, not taken for the probe's.
    #[test]
    fn a_probe_row_with_another_kinds_figures_is_refused() {
        let row = serde_json::json!({"kind": "postgres", "figures": {"maxmemory_bytes": 1.0}});
        let e = serde_json::from_value::<crate::model::probe::ProbeState>(row).unwrap_err();
        assert!(
            e.to_string()
                .contains("a postgres probe with redis figures"),
            "{e}"
        );
    }
}
