//! The engine side, started in one place for `status`, `suggest` and the console: the
//! connection to the engine, the hub, the collectors and replica discovery, plus the
//! adapter that lets the collectors read the engine (`EngineSource`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::Ctx;
use crate::cli::Global;
use crate::collect::containers::ContainerSource;
use crate::collect::feed::{EventStream, FeedSource, LineStream};
use crate::collect::gpu::{GpuSource, NvmlSource};
use crate::collect::ticker::Ticker;
use crate::hub::{self, Update};
use crate::model::container::ContainerRow;
use crate::model::container::published_host;
use crate::model::probe::{Creds, ProbeKind, ProbeTarget};
use crate::model::snapshot::{RawStats, Snapshot};
use crate::stack::compose::Project;
use crate::stack::engine::{DockerEngine, Engine, EngineError, LogStream};

/// How often the host, containers and (in multiples) the other sources are sampled.
pub const PERIOD: Duration = Duration::from_secs(1);

/// The Docker adapter as the container collector's source.
pub struct EngineSource {
    pub engine: Arc<DockerEngine>,
    pub project: String,
}

impl ContainerSource for EngineSource {
    type Error = EngineError;
    async fn list(&self) -> Result<Vec<ContainerRow>, EngineError> {
        self.engine.list_containers(&self.project).await
    }
    async fn stats(&self, id: &str) -> Result<RawStats, EngineError> {
        self.engine.stats_once(id).await
    }
    fn remote_host(&self) -> Option<String> {
        self.engine.remote_host()
    }
    fn events(
        &self,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<String, EngineError>> + Send>>
    {
        Box::pin(
            self.engine
                .events(&self.project)
                .map(|r| r.map(|e| e.container_id)),
        )
    }
}

impl FeedSource for EngineSource {
    type Error = EngineError;
    async fn list(&self) -> Result<Vec<ContainerRow>, EngineError> {
        self.engine.list_containers(&self.project).await
    }
    fn follow(&self, id: &str, since: i64, tail: Option<u64>) -> LineStream<EngineError> {
        Box::pin(
            self.engine
                .follow_logs(id, since, tail)
                .map(|r| r.map(|(t, c)| (t, c.stream == LogStream::Stderr, c.text))),
        )
    }
    fn events(&self) -> EventStream<EngineError> {
        Box::pin(self.engine.events(&self.project).map(|r| {
            r.map(|e| {
                let text = match e.exit_code {
                    Some(c) if e.action == "die" => format!("die (exit code {c})"),
                    _ => e.action,
                };
                (e.service, text)
            })
        }))
    }
}

/// The engine side as one part: the one connection to the engine, the hub, and every
/// collector feeding it (replica discovery and the compose watch included).
pub struct EngineSide {
    /// The connection every part shares; its error, when the engine did not answer.
    pub engine: Result<Arc<DockerEngine>, String>,
    /// The hub's input, for the console's feeds and activity.
    pub updates: mpsc::Sender<Update>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Stops every task started here.
    pub stop: watch::Sender<bool>,
    /// The sampling period of the host, container, GPU and Ollama collectors.
    pub period: Arc<watch::Sender<Duration>>,
}

/// The one connection to the engine, for `EngineSide::start_on`.
pub async fn connect() -> Result<Arc<DockerEngine>, String> {
    DockerEngine::connect()
        .await
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// What an engine side measures beside its project's containers.
#[derive(Debug, Clone, Default)]
pub struct SideOptions {
    /// The embedded gateway's address when one runs (scraped instead of the default).
    pub gateway: Option<std::net::SocketAddr>,
    /// The hub keeps its history file (this machine's own stack only).
    pub persist_history: bool,
    /// The fleet collector over the settings' `[[fleet]]` hosts (the console runs its
    /// own, which outlives a switch).
    pub fleet: bool,
    /// The console's own stack: the gateway, Qdrant and `scrape` targets are scraped.
    pub home: bool,
    /// The engine is on this machine: its host figures, NVML and Ollama apply.
    pub local_machine: bool,
    /// The compose file is followed (a fleet host named by its project only has none).
    pub compose: bool,
    /// The sampling period to start with (default `PERIOD`).
    pub period: Option<Duration>,
}

impl SideOptions {
    /// Everything, for this machine's own stack.
    pub fn home() -> SideOptions {
        SideOptions {
            fleet: true,
            home: true,
            local_machine: true,
            compose: true,
            ..SideOptions::default()
        }
    }
}

impl EngineSide {
    /// `status` and `suggest`: connects, then starts every collector.
    pub async fn start(ctx: &Ctx) -> EngineSide {
        EngineSide::start_on(ctx, connect().await, SideOptions::home()).await
    }

    /// Starts the hub and every collector on `engine` (connected once by the caller, the
    /// console, whose gateway needs it first), as `o` says.
    pub async fn start_on(
        ctx: &Ctx,
        engine: Result<Arc<DockerEngine>, String>,
        o: SideOptions,
    ) -> EngineSide {
        let (tx, rx) = hub::spawn_with(
            &ctx.project.name,
            Some(ctx.runtime_dir.clone()),
            Some(ctx.config.advisor.clone()),
            o.persist_history,
        );
        let (stop_tx, stop) = watch::channel(false);
        // The sampling period the console's `[` and `]` change.
        let (period_tx, period) = watch::channel(o.period.unwrap_or(PERIOD));
        let every = |factor: u32| Ticker::new(period.clone(), factor, Duration::ZERO);
        let _ = tx
            .send(Update::OllamaParallel(ollama_num_parallel(&ctx.project)))
            .await;
        if o.local_machine {
            start_machine(&engine, &period, &tx, &stop).await;
        } else {
            elsewhere(&engine, &tx).await;
        }
        start_container_collectors(ctx, &engine, &tx, &stop, every(1)).await;
        tokio::spawn(crate::collect::disk::watch_journal(
            ctx.runtime_dir.join("journal.jsonl"),
            PERIOD * 5,
            tx.clone(),
            stop.clone(),
        ));
        let ollama = if o.local_machine {
            follow_ollama(ctx, &engine, &tx, &stop)
        } else {
            watch::channel(None).1
        };
        tokio::spawn(crate::collect::ollama::run(
            ollama,
            every(10),
            tx.clone(),
            stop.clone(),
        ));
        let mut targets = if o.home {
            scrape_targets(ctx)
        } else {
            Vec::new()
        };
        if let (Some(g), Some(first)) = (o.gateway, targets.first_mut()) {
            *first = format!("http://{g}/metrics");
        }
        let groups_rx = discover_replicas(ctx, &engine, &stop);
        tokio::spawn(crate::collect::prometheus::run_targets(
            targets,
            groups_rx,
            PERIOD * 2,
            tx.clone(),
            stop.clone(),
        ));
        if o.fleet && !ctx.config.fleet.is_empty() {
            tokio::spawn(crate::collect::fleet::run(
                Arc::new(super::fleet_engines::FleetEngines::new(&ctx.config.fleet)),
                PERIOD,
                tx.clone(),
                stop.clone(),
            ));
        }
        tokio::spawn(crate::collect::feed::run_journal(
            ctx.runtime_dir.join("journal.jsonl"),
            tx.clone(),
            stop.clone(),
        ));
        if o.compose {
            let watch = watch_compose(ctx.global.clone(), declared(ctx), tx.clone(), stop);
            tokio::spawn(watch);
        }
        EngineSide {
            engine,
            updates: tx,
            snapshots: rx,
            stop: stop_tx,
            period: Arc::new(period_tx),
        }
    }

    /// The console's log and event feeds, on the same connection.
    pub fn follow_feeds(&self, project: &str) {
        let Ok(e) = &self.engine else {
            return;
        };
        let src = Arc::new(EngineSource {
            engine: e.clone(),
            project: project.to_string(),
        });
        tokio::spawn(crate::collect::feed::run_logs(
            src.clone(),
            self.updates.clone(),
            self.stop.subscribe(),
        ));
        tokio::spawn(crate::collect::feed::run_events(
            src,
            self.updates.clone(),
            self.stop.subscribe(),
        ));
    }
}

/// This machine's own figures: its host (with the engine's data root among the disks)
/// and its GPUs.
async fn start_machine(
    engine: &Result<Arc<DockerEngine>, String>,
    period: &watch::Receiver<Duration>,
    tx: &mpsc::Sender<Update>,
    stop: &watch::Receiver<bool>,
) {
    let mut mounts = vec!["/".to_string()];
    if let Ok(e) = engine
        && let Ok(Ok(i)) = tokio::time::timeout(PERIOD * 5, e.info()).await
        && let Some(root) = i.root_dir
    {
        mounts.push(root);
    }
    tokio::spawn(crate::collect::host::run(
        mounts,
        Ticker::new(period.clone(), 1, sysinfo::MINIMUM_CPU_UPDATE_INTERVAL),
        tx.clone(),
        stop.clone(),
    ));
    let gpu = NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>);
    crate::collect::gpu::spawn(
        gpu,
        Ticker::new(period.clone(), 2, Duration::ZERO),
        tx.clone(),
        stop.clone(),
    );
}

/// For an engine on another machine: this machine's host, GPU and Ollama figures would
/// not be that host's, so the sources say why they show none.
async fn elsewhere(engine: &Result<Arc<DockerEngine>, String>, tx: &mpsc::Sender<Update>) {
    let at = match engine {
        Ok(e) => e.remote_host().unwrap_or_else(|| "another machine".into()),
        Err(_) => "another machine".into(),
    };
    for name in ["host", "gpu"] {
        let why = format!("not measured: the engine is on {at}, not on this machine");
        let _ = tx.send(Update::Source(name, Err(why))).await;
    }
}

/// Where the stack's Ollama answers, followed: found again every `PERIOD * 10`, so an
/// Ollama started (or recreated on another port) after osmen is still found. On the same
/// round, the running container's `OLLAMA_NUM_PARALLEL` replaces the compose file's (the
/// container may have been created from an older file).
fn follow_ollama(
    ctx: &Ctx,
    engine: &Result<Arc<DockerEngine>, String>,
    updates: &mpsc::Sender<Update>,
    stop: &watch::Receiver<bool>,
) -> watch::Receiver<Option<String>> {
    let (tx, rx) = watch::channel(ollama_url(ctx));
    let (project, engine, mut stop) = (ctx.project.clone(), engine.clone().ok(), stop.clone());
    let updates = updates.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD * 10);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut parallel = None;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            let found = super::ollama::locate_in(&project, engine.as_deref()).await;
            if found.is_some() {
                tx.send_if_modified(|u| {
                    let changed = *u != found;
                    *u = found.clone();
                    changed
                });
            }
            let Some(e) = engine.as_deref() else { continue };
            let running = super::ollama::running_num_parallel(&project, e).await;
            if running.is_some() && running != parallel {
                parallel = running;
                let _ = updates
                    .send(Update::OllamaParallel(running.flatten()))
                    .await;
            }
        }
    });
    rx
}

/// The container and probe collectors; without an engine, both report it unavailable.
async fn start_container_collectors(
    ctx: &Ctx,
    engine: &Result<Arc<DockerEngine>, String>,
    tx: &mpsc::Sender<Update>,
    stop: &watch::Receiver<bool>,
    tick: Ticker,
) {
    match engine {
        Ok(e) => {
            let src = Arc::new(EngineSource {
                engine: e.clone(),
                project: ctx.project.name.clone(),
            });
            tokio::spawn(crate::collect::probes::run(
                src.clone(),
                probe_targets(&ctx.project),
                tx.clone(),
                stop.clone(),
            ));
            tokio::spawn(crate::collect::containers::run(
                src,
                tick,
                tx.clone(),
                stop.clone(),
            ));
        }
        Err(e) => {
            for name in ["containers", "probes"] {
                let _ = tx
                    .send(Update::Source(name, Err(format!("unavailable: {e}"))))
                    .await;
            }
        }
    }
}

/// Lists the replicas of scaled gateways every `REPLICA_RELIST` for the scraper; with no
/// engine, the list stays empty.
fn discover_replicas(
    ctx: &Ctx,
    engine: &Result<Arc<DockerEngine>, String>,
    stop: &watch::Receiver<bool>,
) -> watch::Receiver<Vec<crate::collect::prometheus::ReplicaGroup>> {
    let (groups_tx, groups_rx) = watch::channel(Vec::new());
    if let Ok(e) = engine {
        let (e, project, mut stop) = (e.clone(), ctx.project.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPLICA_RELIST);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut first = true;
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {}
                }
                if let Ok(rows) = e.list_containers(&project.name).await {
                    let g = replica_groups(&project, &rows, e.remote_host().as_deref());
                    // The first answer is always announced: the scraper waits for it.
                    groups_tx.send_if_modified(|cur| {
                        let changed = first || *cur != g;
                        *cur = g;
                        changed
                    });
                    first = false;
                }
            }
        });
    }
    groups_rx
}

/// How often the compose file and its `.env` are looked at for a change.
pub const COMPOSE_WATCH_EVERY: Duration = Duration::from_secs(2);

/// The services the compose file declares for the active profiles.
fn declared(ctx: &Ctx) -> Vec<String> {
    ctx.project
        .active_services(&ctx.global.profiles, &[])
        .into_iter()
        .collect()
}

/// The modification times of the compose file and the `.env` beside it.
/// The modification times of every compose file and of the first one's `.env`.
fn compose_stamp(files: &[std::path::PathBuf]) -> Vec<Option<std::time::SystemTime>> {
    let env = files.first().map(|f| f.with_file_name(".env"));
    files
        .iter()
        .chain(env.as_ref())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Follows the compose files: when one (or the `.env`) changes, it is loaded again and the
/// services it declares are sent to the hub (a new one shows as `not created`); a file
/// that no longer loads is reported as the `compose` source's error, with the loader's
/// words, until it loads again.
async fn watch_compose(
    global: Global,
    first: Vec<String>,
    tx: tokio::sync::mpsc::Sender<Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // As `config` reads it: a fresh clone's missing database password (which `up`
    // creates) does not stop the watching.
    let load = || super::Ctx::load_first_run(&global, super::FirstRun::Preview).map(|(c, _)| c);
    let _ = tx.send(Update::Declared(first)).await;
    let file = match load() {
        Ok(ctx) => {
            let _ = tx.send(Update::Source("compose", Ok(()))).await;
            let _ = tx
                .send(Update::ComposeForms(ctx.project.compose_forms()))
                .await;
            ctx.project.sources.clone()
        }
        Err(e) => {
            let _ = tx
                .send(Update::Source("compose", Err(format!("{e:#}"))))
                .await;
            global.compose_files().unwrap_or_default()
        }
    };
    let mut file = file;
    let mut stamp = compose_stamp(&file);
    let mut tick = tokio::time::interval(COMPOSE_WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = compose_stamp(&file);
        if now == stamp {
            continue;
        }
        stamp = now;
        let update = match load() {
            Ok(c) => {
                // An include or extends base added or dropped changes what is followed.
                if c.project.sources != file {
                    file = c.project.sources.clone();
                    stamp = compose_stamp(&file);
                }
                let _ = tx.send(Update::Declared(declared(&c))).await;
                let _ = tx
                    .send(Update::ComposeForms(c.project.compose_forms()))
                    .await;
                Ok(())
            }
            Err(e) => Err(format!("{e:#}")),
        };
        let _ = tx.send(Update::Source("compose", update)).await;
    }
}

/// How often the replicas of scaled gateways are looked up again.
const REPLICA_RELIST: Duration = Duration::from_secs(5);

/// The running replicas of every osmen gateway service (named `gateway`, or running
/// `osmen gateway`), each with its /metrics: on a published port, else (local engine)
/// the container's address; for a remote engine only a port published on every address
/// of its host will do.
pub fn replica_groups(
    project: &crate::stack::compose::Project,
    rows: &[crate::model::container::ContainerRow],
    remote: Option<&str>,
) -> Vec<crate::collect::prometheus::ReplicaGroup> {
    let mut out = Vec::new();
    for svc in project.services.values() {
        if !crate::stack::k8s::is_gateway(svc) {
            continue;
        }
        // The port it listens on: `--listen ADDR:PORT` in its command, else 8080.
        let cmd = svc.command.clone().unwrap_or_default();
        let port = cmd
            .iter()
            .position(|w| w == "--listen")
            .and_then(|i| cmd.get(i + 1))
            .or_else(|| {
                cmd.iter()
                    .find_map(|w| w.strip_prefix("--listen=").map(|_| w))
            })
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(8080);
        let mut running: Vec<&crate::model::container::ContainerRow> = rows
            .iter()
            .filter(|r| r.service == svc.name && r.state == "running")
            .collect();
        running.sort_by_key(|r| r.number);
        let members: Vec<(String, String)> = running
            .iter()
            .filter_map(|r| {
                // A published port first (reachable wherever Docker runs, Docker Desktop
                // and rootless included); the container's own address on a local engine.
                let published = r.ports.iter().find_map(|p| {
                    (p.container_port == port && p.host_port != 0)
                        .then(|| published_host(remote, &p.host_ip))
                        .flatten()
                        .map(|h| format!("{h}:{}", p.host_port))
                });
                let addr = match remote {
                    None => {
                        published.or_else(|| r.addresses.first().map(|a| format!("{a}:{port}")))
                    }
                    Some(_) => published,
                }?;
                Some((r.name.clone(), format!("http://{addr}/metrics")))
            })
            .collect();
        if !members.is_empty() {
            out.push(crate::collect::prometheus::ReplicaGroup {
                service: svc.name.clone(),
                members,
            });
        }
    }
    out
}

/// What `status` scrapes: the embedded gateway, Qdrant published on loopback, and every
/// target in the settings file (gateway replicas are found and merged apart).
pub fn scrape_targets(ctx: &Ctx) -> Vec<String> {
    let listen = crate::gateway::addrfile::listen(&ctx.runtime_dir);
    let mut t = vec![format!("http://{listen}/metrics")];
    let remote = crate::stack::remote::remote_host_from_env();
    for (name, target) in [("qdrant", 6333u16)] {
        if let Some(svc) = ctx.project.services.get(name) {
            for p in svc.ports.iter().filter(|p| p.target == target) {
                let ip = p.host_ip.as_deref().unwrap_or("");
                if let (Some(port), Some(host)) =
                    (p.host_port(), published_host(remote.as_deref(), ip))
                {
                    t.push(format!("http://{host}:{port}/metrics"));
                }
            }
        }
    }
    t.extend(ctx.config.scrape.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    t.retain(|u| seen.insert(u.clone()));
    t
}

/// `OLLAMA_URL`, else the stack's ollama service on its published loopback port.
pub fn ollama_url(ctx: &Ctx) -> Option<String> {
    super::ollama::ollama_url_in(&ctx.project)
}

/// The stack's Ollama service's `OLLAMA_NUM_PARALLEL` as the compose project sets it (the
/// environment its container is created with); None when it sets none (Ollama's default
/// applies) or the stack has no Ollama service.
pub fn ollama_num_parallel(project: &Project) -> Option<u32> {
    let name = crate::stack::compose::models::ollama_service(&project.services).ok()?;
    let svc = project.services.get(&name)?;
    svc.environment
        .get("OLLAMA_NUM_PARALLEL")?
        .trim()
        .parse()
        .ok()
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

/// The services of the project osmen probes, in name order: an `x-osmen-probe` key in the
/// compose file, else the image name (`postgres:15`, `redis:7-alpine`, `qdrant/qdrant`...);
/// credentials from the service's environment and command.
pub fn probe_targets(project: &Project) -> Vec<ProbeTarget> {
    let mut out = Vec::new();
    for (name, svc) in &project.services {
        let kind = match &svc.probe {
            Some(spec) => spec.kind,
            None => svc.image.as_deref().and_then(ProbeKind::from_image),
        };
        let Some(kind) = kind else { continue };
        let spec = svc.probe.as_ref();
        out.push(ProbeTarget {
            service: name.clone(),
            kind,
            port: spec.and_then(|s| s.port).unwrap_or(kind.default_port()),
            every: spec.and_then(|s| s.every).unwrap_or(kind.default_period()),
            creds: creds_for(kind, svc),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = probe_targets(&p);
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
}
