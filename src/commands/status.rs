//! `osmen status`: the snapshot without the console, from the same collectors and hub.
//! Works with no engine, no GPU and no Ollama, and says so in `sources`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{Ctx, OK, out};
use crate::cli::{Global, StatusArgs};
use crate::collect::containers::ContainerSource;
use crate::collect::gpu::{GpuSource, NvmlSource};
use crate::hub::{self, Update};
use crate::model::container::ContainerRow;
use crate::model::container::published_host;
use crate::model::secret::mask_url_credentials;
use crate::model::snapshot::{RawStats, Snapshot};
use crate::model::units::format_bytes;
use crate::stack::engine::{DockerEngine, Engine};

pub const PERIOD: Duration = Duration::from_secs(1);

/// The Docker adapter as the container collector's source.
pub struct EngineSource {
    pub engine: Arc<DockerEngine>,
    pub project: String,
}

impl ContainerSource for EngineSource {
    async fn list(&self) -> Result<Vec<ContainerRow>, String> {
        self.engine
            .list_containers(&self.project)
            .await
            .map_err(|e| e.to_string())
    }
    async fn stats(&self, id: &str) -> Result<RawStats, String> {
        self.engine.stats_once(id).await.map_err(|e| e.to_string())
    }
    fn remote_host(&self) -> Option<String> {
        self.engine.remote_host()
    }
    fn events(
        &self,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<String, String>> + Send>> {
        Box::pin(
            self.engine
                .events(&self.project)
                .map(|r| r.map(|e| e.container_id).map_err(|e| e.to_string())),
        )
    }
}

/// Starts every collector for the project; returns the snapshots and a stop switch.
pub async fn start(
    ctx: &Ctx,
) -> (
    tokio::sync::watch::Receiver<Arc<Snapshot>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (_, rx, stop) = start_collectors(ctx, None, false).await;
    (rx, stop)
}

/// Starts every collector; `gateway` is the embedded gateway's address when one runs
/// (scraped instead of the default). Returns the hub's input too, for the console's feeds.
pub async fn start_collectors(
    ctx: &Ctx,
    gateway: Option<std::net::SocketAddr>,
    persist_history: bool,
) -> (
    tokio::sync::mpsc::Sender<Update>,
    tokio::sync::watch::Receiver<Arc<Snapshot>>,
    tokio::sync::watch::Sender<bool>,
) {
    let (tx, rx) = hub::spawn_with(
        &ctx.project.name,
        Some(ctx.runtime_dir.clone()),
        Some(ctx.config.advisor.clone()),
        persist_history,
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let engine = DockerEngine::connect().await.map(Arc::new);
    let mut mounts = vec!["/".to_string()];
    if let Ok(e) = &engine
        && let Ok(i) = e.info().await
        && let Some(root) = i.root_dir
    {
        mounts.push(root);
    }
    tokio::spawn(crate::collect::host::run(
        mounts,
        PERIOD,
        tx.clone(),
        stop.clone(),
    ));
    let engine_for_groups = engine.as_ref().map(Arc::clone).map_err(|_| ());
    match engine {
        Ok(e) => {
            let src = Arc::new(EngineSource {
                engine: e,
                project: ctx.project.name.clone(),
            });
            tokio::spawn(crate::collect::probes::run(
                src.clone(),
                crate::collect::probes::targets(&ctx.project),
                tx.clone(),
                stop.clone(),
            ));
            tokio::spawn(crate::collect::containers::run(
                src,
                PERIOD,
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
    tokio::spawn(crate::collect::disk::watch_journal(
        ctx.runtime_dir.join("journal.jsonl"),
        PERIOD * 5,
        tx.clone(),
        stop.clone(),
    ));
    let gpu = NvmlSource::open().map(|s| Box::new(s) as Box<dyn GpuSource>);
    crate::collect::gpu::spawn(gpu, PERIOD * 2, tx.clone(), stop.clone());
    tokio::spawn(crate::collect::ollama::run(
        ollama_url(ctx),
        PERIOD * 10,
        tx.clone(),
        stop.clone(),
    ));
    let mut targets = scrape_targets(ctx);
    if let Some(g) = gateway {
        targets[0] = format!("http://{g}/metrics");
    }
    let (groups_tx, groups_rx) = tokio::sync::watch::channel(Vec::new());
    if let Ok(e) = &engine_for_groups {
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
    tokio::spawn(crate::collect::prometheus::run_targets(
        targets,
        groups_rx,
        PERIOD * 2,
        tx.clone(),
        stop.clone(),
    ));
    tokio::spawn(crate::collect::feed::run_journal(
        ctx.runtime_dir.join("journal.jsonl"),
        tx.clone(),
        stop.clone(),
    ));
    tokio::spawn(watch_compose(
        ctx.global.clone(),
        declared(ctx),
        tx.clone(),
        stop,
    ));
    (tx, rx, stop_tx)
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
    std::env::var("OLLAMA_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let svc = ctx.project.services.get("ollama")?;
            let p = svc.ports.iter().find(|p| p.target == 11434)?;
            let remote = crate::stack::remote::remote_host_from_env();
            let host = published_host(remote.as_deref(), p.host_ip.as_deref().unwrap_or(""))?;
            Some(format!("http://{host}:{}", p.host_port()?))
        })
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}%")).unwrap_or_else(|| "-".into())
}

pub fn render(s: &Snapshot) -> String {
    let mut o = format!("project {}\n", s.project);
    match &s.host {
        Some(h) => {
            o.push_str(&format!(
                "host     cpu {:.1}% ({} cores)  memory {} used, {} available of {}  swap {}/{}",
                h.cpu_percent,
                h.per_core_percent.len(),
                format_bytes(h.memory_used_bytes),
                format_bytes(h.memory_available_bytes),
                format_bytes(h.memory_total_bytes),
                format_bytes(h.swap_used_bytes),
                format_bytes(h.swap_total_bytes),
            ));
            if let Some(l) = h.load {
                o.push_str(&format!("  load {:.2} {:.2} {:.2}", l[0], l[1], l[2]));
            }
            o.push_str(&format!(
                "\n         net rx {}/s tx {}/s  osmen {:.1}% cpu, {}\n",
                format_bytes(h.net_rx_bytes_per_s as u64),
                format_bytes(h.net_tx_bytes_per_s as u64),
                h.osmen_cpu_percent,
                format_bytes(h.osmen_memory_bytes)
            ));
        }
        None => o.push_str("host     (no sample yet)\n"),
    }
    let head = [
        "SERVICE",
        "CONTAINER",
        "STATE",
        "UP",
        "HEALTH",
        "CPU",
        "CPU/LIMIT",
        "MEMORY",
        "MEM%",
        "RESTARTS",
        "VRAM",
    ];
    let rows: Vec<[String; 11]> = s
        .services
        .iter()
        .map(|x| {
            [
                x.display_name(),
                if x.container.is_empty() {
                    "-".into()
                } else {
                    x.container.clone()
                },
                x.state_label(),
                x.uptime_s
                    .map(|u| crate::model::units::format_duration(Duration::from_secs(u as u64)))
                    .unwrap_or_else(|| "-".into()),
                if x.health.is_empty() {
                    "-".into()
                } else {
                    x.health.clone()
                },
                pct(x.cpu_percent),
                pct(x.cpu_limit_percent),
                match (x.memory_bytes, x.memory_limit_bytes) {
                    (Some(m), Some(l)) => format!("{} / {}", format_bytes(m), format_bytes(l)),
                    (Some(m), None) => format_bytes(m),
                    _ => "-".into(),
                },
                pct(x.memory_percent),
                x.restarts.to_string(),
                x.gpu_memory_bytes
                    .map(format_bytes)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    o.push('\n');
    o.push_str(&line(head.to_vec()));
    for r in &rows {
        o.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    if s.services.is_empty() {
        o.push_str("(no containers)\n");
    }
    // One probe line per service (the first container carries it).
    let mut probed = std::collections::BTreeSet::new();
    for x in &s.services {
        if let Some(p) = &x.probe
            && probed.insert(x.service.as_str())
        {
            o.push_str(&format!(
                "probe {:<w$} {}\n",
                x.service,
                crate::model::probe::show::summary(p),
                w = w[0]
            ));
        }
    }
    o.push('\n');
    for g in &s.gpus {
        o.push_str(&format!(
            "gpu {} {}  vram {} / {}  util {}%  {}°C\n",
            g.index,
            g.name,
            format_bytes(g.memory_used_bytes),
            format_bytes(g.memory_total_bytes),
            g.gpu_util_percent
                .map(|u| u.to_string())
                .unwrap_or_else(|| "-".into()),
            g.temperature_c
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
    }
    if let Some(ol) = &s.ollama {
        o.push_str(&format!(
            "ollama {} at {}: {} installed, {} loaded\n",
            // As JSON: quoted, or `null` without a version.
            serde_json::json!(ol.version),
            serde_json::json!(ol.url),
            ol.installed.len(),
            ol.loaded.len()
        ));
    }
    for t in &s.scrapes {
        if !t.up {
            continue;
        }
        let label = match (&t.replica_of, &t.name) {
            (Some(svc), Some(n)) if t.url.starts_with("merged:") => format!("{svc} {n}"),
            (Some(svc), Some(n)) => format!("{svc} replica {n} {}", t.url),
            _ => t.url.clone(),
        };
        for l in &t.latencies {
            // The gateway's own families are the agent lines below (one P99 each); a
            // series with no observation has nothing to say.
            if l.family.starts_with("osmen_") || (l.p50, l.p95, l.p99) == (None, None, None) {
                continue;
            }
            let f = |v: Option<f64>| {
                v.map(|x| scrape_figure(&l.family, x))
                    .unwrap_or_else(|| "-".into())
            };
            o.push_str(&format!(
                "scrape {} {}{{{}}} p50 {} p95 {} p99 {} ({})\n",
                label,
                l.family,
                l.labels,
                f(l.p50),
                f(l.p95),
                f(l.p99),
                l.source
            ));
        }
    }
    for a in &s.agents {
        let ms = |v: Option<f64>| {
            v.map(|v| format!("{:.0}ms", v * 1000.0))
                .unwrap_or_else(|| "-".into())
        };
        let g = a.gpu.as_ref();
        let model = match (a.provider.as_deref(), a.model.as_deref()) {
            (Some(p), Some(m)) => {
                let mut t = format!(" model {p}/{m}");
                match g.map(|g| g.state.as_str()) {
                    Some("remote") | None => {}
                    Some(st @ ("loaded" | "offloaded" | "cpu")) => t.push_str(&format!(
                        " {st} {}",
                        g.and_then(|g| g.vram_bytes)
                            .map(crate::model::units::format_bytes)
                            .unwrap_or_default()
                    )),
                    Some(st) => t.push_str(&format!(" {st}")),
                }
                if g.and_then(|g| g.shared_with.as_ref())
                    .is_some_and(|x| !x.is_empty())
                {
                    t.push_str(" shared");
                }
                t
            }
            _ => String::new(),
        };
        let tps = a
            .tokens_per_second_p50
            .flatten()
            .map(|v| format!(" {v:.1} tok/s"))
            .unwrap_or_default();
        let cost = a
            .cost_per_request_dollars
            .map(|v| format!(" ${v:.5}/req"))
            .unwrap_or_default();
        let mut errs = match (a.window_errors, a.window_requests) {
            (Some(e), Some(n)) if e > 0.0 => format!(
                " errors {e:.0} of {n:.0} requests in the last minute{}",
                if a.is_failing() { " FAILING" } else { "" }
            ),
            _ => String::new(),
        };
        if let Some(k) = a.last_error_kind.as_deref() {
            let kind =
                crate::model::agent_error::ErrorKind::from_label(k).map_or(k, |k| k.describe());
            errs.push_str(&format!(
                "; last error ({kind}): {}",
                a.last_error.as_deref().unwrap_or("-")
            ));
        }
        let name = a.agent.as_str();
        if a.p99_seconds.flatten().is_none() && errs.is_empty() {
            let served: f64 = a.requests_total();
            let what = if served > 0.0 {
                format!("no requests in the last minute ({served:.0} since start)")
            } else {
                "no requests yet".to_string()
            };
            o.push_str(&format!("agent {name:<22} {what}{model}\n"));
            continue;
        }
        let source = a
            .latency_source
            .as_deref()
            .unwrap_or("the gateway's summary osmen_request_duration_seconds");
        let ttft = a
            .ttft_p50_seconds
            .flatten()
            .map(|v| format!(" ttft p50 {}", ms(Some(v))))
            .unwrap_or_default();
        let wait = a
            .wait_p95_seconds
            .map(|v| format!(" wait p95 {}", ms(Some(v))))
            .unwrap_or_default();
        o.push_str(&format!(
            "agent {name:<22} p50 {} p95 {} p99 {} ({source}){wait}{ttft}{tps}{cost}{model}{errs}\n",
            ms(a.p50_seconds.flatten()),
            ms(a.p95_seconds.flatten()),
            ms(a.p99_seconds.flatten()),
        ));
    }
    o.push_str("sources: ");
    o.push_str(
        &s.sources
            .iter()
            .map(|(k, v)| format!("{k} {}", v.status))
            .collect::<Vec<_>>()
            .join("; "),
    );
    o.push('\n');
    mask_url_credentials(&o)
}

/// A scraped quantile in the unit its family's name gives it (Prometheus naming:
/// `_seconds`, `_bytes`, `_per_second`, `_ratio`), never seconds by default.
fn scrape_figure(family: &str, v: f64) -> String {
    let base = family
        .trim_end_matches("_bucket")
        .trim_end_matches("_total");
    if base.ends_with("_seconds") {
        crate::model::units::format_latency(v)
    } else if base.ends_with("_bytes") {
        format_bytes(v.max(0.0) as u64)
    } else if base.ends_with("_per_second") {
        format!("{v:.1}/s")
    } else if base.ends_with("_ratio") {
        format!("{:.1}%", v * 100.0)
    } else {
        format!("{v:.3}")
    }
}

fn ready(s: &Snapshot) -> bool {
    let containers_done = s
        .sources
        .get("containers")
        .is_some_and(|h| h.status != "ok")
        || (s.sources.contains_key("containers")
            && s.services
                .iter()
                .filter(|x| x.state == "running")
                .all(|x| x.cpu_percent.is_some()));
    let host_done = s.host.as_ref().is_some_and(|h| h.cpu_percent > 0.0)
        || s.sources.get("host").is_some_and(|h| h.status != "ok");
    containers_done
        && host_done
        && s.sources.contains_key("gpu")
        && s.sources.contains_key("ollama")
        && s.sources.contains_key("scrape")
        && s.sources.contains_key("probes")
}

pub async fn run(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<u8> {
    let (mut rx, stop) = start(ctx).await;
    // `--probe-ollama`'s answer shows as `ollama.probe`.
    let json = |s: &Snapshot, probe: Option<&serde_json::Value>| -> anyhow::Result<String> {
        let mut v = serde_json::to_value(s)?;
        if let Some(p) = probe {
            if !v["ollama"].is_object() {
                v["ollama"] = serde_json::json!({});
            }
            v["ollama"]["probe"] = p.clone();
        }
        if let Some(services) = v.get_mut("services").and_then(|x| x.as_array_mut()) {
            for svc in services {
                if let Some(h) = svc
                    .get_mut("health_output")
                    .and_then(|x| x.as_str().map(mask_url_credentials))
                {
                    svc["health_output"] = serde_json::Value::String(h);
                }
            }
        }
        Ok(serde_json::to_string_pretty(&v)? + "\n")
    };
    // Wait for rates (two samples) or for every source to have answered, at most 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if ready(&rx.borrow()) {
            break;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let probe = if args.probe_ollama {
        let client = crate::http::client(|b| b.timeout(Duration::from_secs(120)));
        Some(match ollama_url(ctx) {
            Some(u) => crate::collect::ollama::probe_generation(&client, &u, None)
                .await
                .unwrap_or_else(|e| serde_json::json!({"error": e})),
            None => {
                serde_json::json!({"error": "OLLAMA_URL is not set and the stack has no ollama port"})
            }
        })
    } else {
        None
    };
    loop {
        let snap = (*rx.borrow().clone()).clone();
        let mut text = if args.json {
            json(&snap, probe.as_ref())?
        } else {
            render(&snap)
        };
        if let (Some(p), false) = (&probe, args.json) {
            text.push_str(&format!("ollama probe: {p}\n"));
        }
        if args.watch && !args.json {
            out(&format!("\x1b[H\x1b[2J{text}"))?;
        } else {
            out(&text)?;
        }
        if !args.watch {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(PERIOD) => {}
        }
    }
    let _ = stop.send(true);
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraped_figures_carry_their_families_units() {
        assert_eq!(scrape_figure("osmen_tokens_per_second", 80.063), "80.1/s");
        assert_eq!(scrape_figure("grpc_duration_seconds", 0.0123), "12.3ms");
        assert_eq!(
            scrape_figure("qdrant_rest_responses_duration_seconds", 2.5),
            "2.50s"
        );
        assert_eq!(
            scrape_figure("process_resident_memory_bytes", 1536.0),
            "1.5KiB"
        );
        assert_eq!(scrape_figure("cache_hit_ratio", 0.5), "50.0%");
    }

    #[test]
    fn agents_without_requests_say_so_instead_of_dashes() {
        let s = Snapshot {
            agents: vec![
                serde_json::from_value::<crate::model::agent::AgentRow>(
                    serde_json::json!({"agent": "idle_agent"}),
                )
                .unwrap(),
                serde_json::from_value::<crate::model::agent::AgentRow>(
                    serde_json::json!({"agent": "busy", "p50_seconds": 0.01, "p95_seconds": 0.02,
                    "p99_seconds": 0.05}),
                )
                .unwrap(),
            ],
            scrapes: vec![crate::model::snapshot::ScrapeTarget {
                url: "http://127.0.0.1:8080/metrics".into(),
                replica_of: None,
                name: None,
                up: true,
                error: None,
                families: 3,
                samples: 9,
                latencies: vec![
                    crate::model::snapshot::LatencySeries {
                        family: "osmen_tokens_per_second".into(),
                        labels: "agent=busy".into(),
                        p50: Some(80.0),
                        p95: None,
                        p99: None,
                        source: "histogram".into(),
                    },
                    crate::model::snapshot::LatencySeries {
                        family: "qdrant_duration_seconds".into(),
                        labels: "".into(),
                        p50: None,
                        p95: None,
                        p99: None,
                        source: "histogram".into(),
                    },
                ],
            }],
            ..Default::default()
        };
        let text = render(&s);
        assert!(text.contains("agent idle_agent"), "{text}");
        assert!(text.contains("no requests yet"), "{text}");
        assert!(!text.contains("p50 - p95 - p99 -"), "{text}");
        let busy = text.lines().find(|l| l.starts_with("agent busy")).unwrap();
        assert_eq!(busy.matches("p99").count(), 1, "one P99 per agent: {busy}");
        assert!(
            busy.contains("(the gateway's summary"),
            "its source: {busy}"
        );
        assert!(
            !text.contains("80000.0ms") && !text.contains("scrape "),
            "{text}"
        );
    }
}
