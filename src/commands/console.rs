//! `osmen` with no subcommand: the console. Wires the collectors, the log and event feeds,
//! the embedded gateway and the supervisor to the TUI, which sees only snapshots and sends
//! only `Command`s. Leaving the console (q, SIGTERM, SIGHUP, a dropped SSH link) stops
//! osmen's own tasks and never the stack.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, watch};

use super::engine_side::EngineSide;
use super::{Ctx, OK};
use crate::cli::{GatewayArgs, Global};
use crate::gateway::{self, Gateway};
use crate::hub::{ActivityChange, Update};
use crate::model::console::{Command, EventLine};
use crate::model::container::ContainerRow;
use crate::stack::engine::{DockerEngine, Engine};
use crate::stack::supervise::{Reporter, Supervisor, UpOptions};
use crate::sys::now_secs;
use crate::tui::{self, keymap::Keymap, theme};

pub struct ConsoleArgs {
    pub no_up: bool,
    pub ascii: bool,
}

fn activity(tx: &mpsc::Sender<Update>, c: ActivityChange) {
    let _ = tx.try_send(Update::Activity(c));
}

/// For the updates that end an operation: waits for room rather than dropping them, so
/// "running: …" never stays on screen after the work is done.
async fn activity_sure(tx: &mpsc::Sender<Update>, c: ActivityChange) {
    let _ = tx.send(Update::Activity(c)).await;
}

fn event(tx: &mpsc::Sender<Update>, service: &str, text: String) {
    let _ = tx.try_send(Update::Events(vec![EventLine {
        time: now_secs(),
        source: "console".into(),
        service: service.to_string(),
        text,
    }]));
}

/// The supervisor's progress lines go to the Events view, and "X waits for Y" lines
/// mark X as blocked until it starts.
fn reporter(tx: mpsc::Sender<Update>, services: BTreeSet<String>) -> Reporter {
    Arc::new(move |line: &str| {
        let line = crate::model::secret::mask_url_credentials(line);
        let first = line.split([' ', ':']).next().unwrap_or("");
        let service = if services.contains(first) {
            first.to_string()
        } else {
            String::new()
        };
        event(&tx, &service, line.clone());
        if line.contains(" waits for ") {
            activity(&tx, ActivityChange::Blocked { service, line });
        } else if !service.is_empty() {
            activity(&tx, ActivityChange::Unblocked(service));
        }
    })
}

pub async fn run(global: &Global, args: &ConsoleArgs) -> anyhow::Result<u8> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!(
            "the console needs a terminal; for scripts use `osmen status`, `osmen ps` or \
             `osmen status --json`"
        );
    }
    // The first console on a fresh clone creates what `up` needs (not one that only
    // watches).
    let mode = if global.read_only || args.no_up {
        super::FirstRun::Preview
    } else {
        super::FirstRun::Generate
    };
    let (ctx, first_run_note) = Ctx::load_first_run(global, mode)?;
    let read_only = global.read_only;
    let opts = ui_options(global, &ctx, args)?;
    // The embedded gateway: the same server as `osmen gateway`, on its default address.
    let mut gw_opts = super::gateway::options(
        global,
        &GatewayArgs {
            listen: None,
            gateway_config: None,
        },
    );
    // One connection to the engine for everything the console starts; the gateway needs
    // it first (to find the stack's Ollama).
    let engine = super::engine_side::connect().await;
    let found_ollama = discover_ollama(&ctx, engine.as_ref().ok(), &mut gw_opts).await;
    let (gw_stop_tx, gw_stop) = watch::channel(false);
    let runtime_dir = gw_opts.runtime_dir.clone();
    let embedded = start_gateway(&gw_opts, gw_stop, found_ollama).await;
    let gateway_addr = embedded.addr;
    tracing::info!(addr = ?gateway_addr, note = %embedded.note, "console's gateway");

    let side = EngineSide::start_on(&ctx, engine, gateway_addr, true).await;
    let (tx, rx, stop_tx) = (side.updates.clone(), side.snapshots.clone(), &side.stop);
    if let Some(gw) = embedded.gateway.clone() {
        tokio::spawn(follow_clients(gw, tx.clone(), stop_tx.subscribe()));
    }
    let deps = dependencies(&ctx);
    if let Some(n) = first_run_note {
        event(&tx, "", n.clone());
        activity(&tx, ActivityChange::FirstRunNote(n));
    }
    activity(
        &tx,
        ActivityChange::ConsoleStarted {
            read_only,
            gateway: embedded.note,
            dependencies: deps,
        },
    );

    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(16);
    // The sampling period is the console's own: set here, whatever the engine's state.
    let (ui_tx, ui_rx) = mpsc::channel::<Command>(16);
    activity(
        &tx,
        ActivityChange::Sampling(side.period.borrow().as_secs_f64()),
    );
    tokio::spawn(sampling_commands(
        ui_rx,
        cmd_tx,
        side.period.clone(),
        tx.clone(),
    ));
    // A shell in a container borrows the terminal from the UI loop through this.
    let (handover_tx, handover_rx) = mpsc::channel::<tui::Handover>(1);
    side.follow_feeds(&ctx.project.name);
    let io = Io {
        tx: tx.clone(),
        snapshots: rx.clone(),
        handover: handover_tx,
    };
    // Without an engine the UI's channels stay open all the same, as the UI expects.
    let _unused_io = start_actions(ctx, &side, !read_only && !args.no_up, cmd_rx, io)?;
    let result = tui::run(opts, rx, ui_tx, handover_rx).await;
    // Leaving: stop osmen's own tasks, let the gateway finish in-flight requests briefly.
    let _ = stop_tx.send(true);
    let _ = gw_stop_tx.send(true);
    if let Some(t) = embedded.task {
        let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
    }
    if embedded.owned
        && let Some(a) = gateway_addr
    {
        crate::gateway::addrfile::remove_if(&runtime_dir, a);
    }
    result?;
    Ok(OK)
}

/// Passes the UI's commands on, except the sampling period, which it sets (within 0.5 s
/// to 10 s) for every collector and reports.
async fn sampling_commands(
    mut ui: mpsc::Receiver<Command>,
    out: mpsc::Sender<Command>,
    period: Arc<watch::Sender<Duration>>,
    tx: mpsc::Sender<Update>,
) {
    use crate::collect::ticker::{MAX_PERIOD, MIN_PERIOD};
    while let Some(c) = ui.recv().await {
        let Command::SetSampling(ms) = c else {
            if out.send(c).await.is_err() {
                return;
            }
            continue;
        };
        let d = Duration::from_millis(ms).clamp(MIN_PERIOD, MAX_PERIOD);
        period.send_replace(d);
        tracing::info!(period = ?d, "sampling period changed");
        activity(&tx, ActivityChange::Sampling(d.as_secs_f64()));
        let what = Command::SetSampling(d.as_millis() as u64).describe();
        activity(&tx, ActivityChange::Result(format!("{what}: done")));
    }
}

/// The console's keymap (with the settings file's overrides), theme and switches.
fn ui_options(global: &Global, ctx: &Ctx, args: &ConsoleArgs) -> anyhow::Result<tui::Options> {
    let origin = global
        .config
        .clone()
        .unwrap_or_else(|| ctx.project.dir.join("config/osmen.toml"));
    let keymap = Keymap::with_overrides(&ctx.config.console.keys, &origin.display().to_string())
        .map_err(|e| anyhow::anyhow!(e))?;
    let env = |k: &str| std::env::var(k).ok();
    let theme = theme::Theme {
        color: theme::ColorMode::detect(
            env("NO_COLOR").as_deref(),
            env("TERM").as_deref(),
            env("COLORTERM").as_deref(),
        ),
        ascii: args.ascii,
    };
    let read_only = global.read_only;
    let mouse = ctx.config.console.mouse;
    Ok(tui::Options {
        read_only,
        mouse,
        keymap,
        theme,
    })
}

/// Each service's dependencies as the Overview names them: `db (service_healthy)`.
fn dependencies(ctx: &Ctx) -> BTreeMap<String, Vec<String>> {
    ctx.project
        .services
        .iter()
        .map(|(name, svc)| {
            let d = svc
                .depends_on
                .iter()
                .map(|(dep, how)| format!("{dep} ({})", how.condition.as_str()))
                .collect();
            (name.clone(), d)
        })
        .collect()
}

/// With an engine: the supervisor (bringing the stack up and watching it when
/// `bring_up`) and the task that carries out the console's commands; without one, the
/// console says that actions are refused, and `io` and `cmd_rx` come back unused.
fn start_actions(
    ctx: Ctx,
    side: &EngineSide,
    bring_up: bool,
    cmd_rx: mpsc::Receiver<Command>,
    io: Io,
) -> anyhow::Result<Option<(Io, mpsc::Receiver<Command>)>> {
    let (tx, stop_tx) = (&io.tx, &side.stop);
    match &side.engine {
        Ok(e) => {
            let sup = Supervisor::new(
                e.clone(),
                ctx.project.clone(),
                ctx.config.supervisor.clone(),
                ctx.journal(),
                reporter(tx.clone(), ctx.project.services.keys().cloned().collect()),
            );
            if bring_up {
                let targets = super::up::targets(&ctx, &[])?;
                tokio::spawn(stack_up(sup.clone(), targets, tx.clone()));
                let stop = stop_tx.subscribe();
                let s2 = sup.clone();
                let tx2 = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = s2.watch(stop).await {
                        event(&tx2, "", format!("supervision stopped: {e}"));
                    }
                });
            }
            let ctx = Arc::new(ctx);
            tokio::spawn(execute(ctx, e.clone(), sup, cmd_rx, io));
            Ok(None)
        }
        Err(e) => {
            let msg = format!("engine unavailable: {e}; actions are refused until it answers");
            activity(tx, ActivityChange::Result(msg));
            Ok(Some((io, cmd_rx)))
        }
    }
}

/// The console's gateway: its own, or another console's that already serves the project.
struct Embedded {
    /// Where its metrics are scraped.
    addr: Option<std::net::SocketAddr>,
    /// What the Overview and Agents views say of it.
    note: String,
    /// This console's own server (None when another console's is shown).
    gateway: Option<Arc<Gateway>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Whether this console wrote `runtime/gateway.addr`.
    owned: bool,
}

/// Starts the embedded gateway and records its address in `runtime/gateway.addr`. When
/// its port is taken by the gateway of another console on this project (the address
/// file names it and it answers), that one is shown instead of failing.
async fn start_gateway(
    opts: &crate::gateway::Options,
    mut stop: watch::Receiver<bool>,
    found_ollama: Option<String>,
) -> Embedded {
    let failed = |note: String| Embedded {
        addr: None,
        note,
        gateway: None,
        task: None,
        owned: false,
    };
    let gw = match Gateway::build(opts) {
        Err(e) => return failed(format!("not running: {e}")),
        Ok(gw) => Arc::new(gw),
    };
    let listener = match crate::gateway::listen(gw.listen).await {
        Ok(l) => l,
        Err(e) => {
            if let Some(other) = crate::gateway::addrfile::read(&opts.runtime_dir)
                && answers_health(other).await
            {
                return Embedded {
                    addr: Some(other),
                    note: format!(
                        "http://{other} (another osmen console's gateway for this project; \
                         this console shows it and stops nothing when it quits)"
                    ),
                    gateway: None,
                    task: None,
                    owned: false,
                };
            }
            return failed(format!("not running: cannot listen on {}: {e}", gw.listen));
        }
    };
    let addr = listener.local_addr().ok();
    let mut note = format!("http://{}", gw.listen);
    let connections = crate::gateway::connections::prepare(&gw);
    if connections.constrained() {
        note.push_str(&format!("; {connections}"));
    }
    if let Some(p) = &gw.generated_key_file {
        note.push_str(&format!(" (API key in {})", p.display()));
    }
    if let Some(u) = found_ollama {
        note.push_str(&format!(
            "; Ollama at {} (the stack's)",
            crate::model::secret::mask_url_credentials(&u)
        ));
    }
    let owned = match addr {
        Some(a) => match crate::gateway::addrfile::write(&opts.runtime_dir, a) {
            Ok(()) => true,
            Err(e) => {
                note.push_str(&format!(
                    "; cannot record the address in {}: {e}",
                    crate::gateway::addrfile::path(&opts.runtime_dir).display()
                ));
                false
            }
        },
        None => false,
    };
    let task = tokio::spawn(gateway::serve(gw.clone(), listener, async move {
        let _ = stop.changed().await;
    }));
    Embedded {
        addr,
        note,
        gateway: Some(gw),
        task: Some(task),
        owned,
    }
}

/// The Ollama URL `config/gateway.toml` ships with.
const SHIPPED_OLLAMA_URL: &str = "http://127.0.0.1:11434";

/// Whether a gateway answers `/health` at `addr` within a second.
async fn answers_health(addr: std::net::SocketAddr) -> bool {
    let client = crate::http::client(|b| b.timeout(Duration::from_secs(1)));
    client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// When `OLLAMA_URL` is not set, the stack's Ollama (`ollama::locate`: the compose file's
/// published port, else the running Ollama container's). Sets it for the gateway and
/// returns it.
async fn discover_ollama(
    ctx: &Ctx,
    engine: Option<&Arc<DockerEngine>>,
    opts: &mut crate::gateway::Options,
) -> Option<String> {
    if opts.env.get("OLLAMA_URL").is_some_and(|u| !u.is_empty()) {
        return None;
    }
    // An Ollama the gateway's settings name (other than the shipped loopback default) is
    // the operator's choice: the embedded gateway uses it, as the headless one does.
    let configured = opts
        .config_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| crate::model::gateway::GatewayFile::parse(&t, "gateway.toml").ok())
        .and_then(|f| f.providers.get("ollama").and_then(|p| p.base_url.clone()));
    if configured.is_some_and(|u| u.trim_end_matches('/') != SHIPPED_OLLAMA_URL) {
        return None;
    }
    let env = &mut opts.env;
    let url = super::ollama::locate(ctx, engine.map(|e| &**e)).await?;
    env.insert("OLLAMA_URL".into(), url.clone());
    Some(url)
}

/// Tells the console when the gateway last served an API client (each second, when it
/// changed): quitting asks first while that is recent.
async fn follow_clients(
    gw: Arc<Gateway>,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = gw.last_client_at();
        if now != last
            && tx
                .send(Update::Activity(ActivityChange::GatewayLastClient(now)))
                .await
                .is_ok()
        {
            last = now;
        }
    }
}

async fn stack_up(
    sup: Supervisor<DockerEngine>,
    targets: BTreeSet<String>,
    tx: mpsc::Sender<Update>,
) {
    activity(&tx, ActivityChange::UpStarted);
    // Every failed pull, whole, per service: handed over at once when `up` ends (a pull
    // failure stops `up` before anything is created).
    let failures: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Arc::default();
    let sink: crate::stack::provision::ImageSink = {
        let tx = tx.clone();
        let failures = failures.clone();
        Arc::new(move |e| {
            use crate::model::progress::ImageEvent;
            let text = match &e {
                ImageEvent::PullStarted { image, .. } => format!("pulling {image}"),
                ImageEvent::Pulled { image } => format!("pulled {image}"),
                ImageEvent::BuildStarted { image, .. } => format!("building {image}"),
                ImageEvent::Built { image, .. } => format!("built {image}"),
                ImageEvent::Note(n) => n.clone(),
                ImageEvent::PullFailed {
                    service, message, ..
                } => {
                    let message = crate::model::secret::mask_url_credentials(message);
                    event(&tx, service, message.replace('\n', "; "));
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(service.clone(), message);
                    return;
                }
                _ => return,
            };
            event(&tx, "", text);
        })
    };
    let r = sup.up(&targets, &UpOptions::default(), sink).await;
    let text = match r {
        Ok(o) => format!("up: {} services converged", o.len()),
        Err(crate::stack::supervise::SuperviseError::Failed(lines)) => {
            let images: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains(": cannot pull image ") || l.contains("pull policy"))
                .filter_map(|l| l.split(':').next())
                .collect();
            if images.is_empty() {
                format!("up failed: {}", lines.join("; "))
            } else {
                format!(
                    "up failed: {} image(s) cannot be pulled ({}): the Services view shows each \
                     with the registry's words and the fix",
                    images.len(),
                    images.join(", ")
                )
            }
        }
        Err(e) => format!("up failed: {e}"),
    };
    event(&tx, "", text.clone());
    let failures = std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
    activity_sure(
        &tx,
        ActivityChange::UpEnded {
            result: text,
            image_failures: failures,
        },
    )
    .await;
}

/// The channels the command side answers on: updates for the hub, the snapshots it
/// reads, and the UI loop's terminal (lent for a shell).
struct Io {
    tx: mpsc::Sender<Update>,
    snapshots: watch::Receiver<Arc<crate::model::snapshot::Snapshot>>,
    handover: mpsc::Sender<tui::Handover>,
}

/// Carries out the console's commands, one task each; results come back as activity.
async fn execute(
    ctx: Arc<Ctx>,
    engine: Arc<DockerEngine>,
    sup: Supervisor<DockerEngine>,
    mut rx: mpsc::Receiver<Command>,
    io: Io,
) {
    let Io {
        tx,
        snapshots,
        handover,
    } = io;
    while let Some(cmd) = rx.recv().await {
        if ctx.global.read_only && cmd.changes_stack() {
            continue;
        }
        let what = cmd.describe();
        activity(&tx, ActivityChange::Pending(what.clone()));
        event(&tx, "", format!("operator asked: {what}"));
        let (ctx, engine, sup, tx) = (ctx.clone(), engine.clone(), sup.clone(), tx.clone());
        let snap = snapshots.borrow().clone();
        let handover = handover.clone();
        tokio::spawn(async move {
            let r = match &cmd {
                Command::Exec(c) => super::console_shell::run(&*engine, c, &handover).await,
                Command::Inspect(c) => inspect(&engine, c, &tx).await,
                _ => carry_out(&ctx, &engine, &sup, &cmd, &tx, &snap).await,
            };
            let text = match r {
                // The status line has one line: the first says what happened.
                Ok(done) => format!("{what}: {}", done.lines().next().unwrap_or("done")),
                Err(e) => format!("{what}: failed: {e:#}"),
            };
            event(&tx, "", text.clone());
            activity_sure(
                &tx,
                ActivityChange::Done {
                    command: what,
                    result: text,
                },
            )
            .await;
        });
    }
}

/// Reads the container's inspection into the snapshot, where the inspect pane finds it.
async fn inspect(
    engine: &DockerEngine,
    container: &str,
    tx: &mpsc::Sender<Update>,
) -> anyhow::Result<String> {
    let i = engine.inspection(container).await?;
    let n = (i.env.len(), i.mounts.len(), i.health_log.len());
    activity_sure(tx, ActivityChange::Inspected(Box::new(i))).await;
    Ok(format!(
        "{} variables, {} mounts, {} health checks",
        n.0, n.1, n.2
    ))
}

async fn containers_of(
    engine: &DockerEngine,
    ctx: &Ctx,
    service: &str,
) -> anyhow::Result<Vec<ContainerRow>> {
    Ok(engine
        .list_containers(&ctx.project.name)
        .await?
        .into_iter()
        .filter(|r| r.service == service)
        .collect())
}

/// A supervisor over the compose file as `fresh` loaded it.
fn fresh_supervisor(
    fresh: &Ctx,
    engine: &Arc<DockerEngine>,
    tx: &mpsc::Sender<Update>,
) -> Supervisor<DockerEngine> {
    Supervisor::new(
        engine.clone(),
        fresh.project.clone(),
        fresh.config.supervisor.clone(),
        fresh.journal(),
        reporter(tx.clone(), fresh.project.services.keys().cloned().collect()),
    )
}

async fn carry_out(
    ctx: &Ctx,
    engine: &Arc<DockerEngine>,
    sup: &Supervisor<DockerEngine>,
    cmd: &Command,
    tx: &mpsc::Sender<Update>,
    snap: &crate::model::snapshot::Snapshot,
) -> anyhow::Result<String> {
    let journal = ctx.journal();
    match cmd {
        Command::Start(svc) => {
            let rows = containers_of(engine, ctx, svc).await?;
            if rows.is_empty() {
                // A service added to the file since the console opened has no container.
                let fresh = Ctx::load_first_run(&ctx.global, super::FirstRun::Generate)?.0;
                let targets = super::up::targets(&fresh, std::slice::from_ref(svc))?;
                let n = fresh_supervisor(&fresh, engine, tx)
                    .up(&targets, &UpOptions::default(), Arc::new(|_| {}))
                    .await?;
                return Ok(format!("created ({} services converged)", n.len()));
            }
            for r in rows.iter().filter(|r| r.state != "running") {
                journal.record(
                    svc,
                    "start",
                    &format!("operator asked in the console: {}", r.name),
                )?;
                sup.start_container(svc, &r.id).await?;
            }
            Ok("started".into())
        }
        Command::Stop(svc) => {
            let rows = containers_of(engine, ctx, svc).await?;
            for r in rows.iter().filter(|r| r.state == "running") {
                journal.record(
                    svc,
                    "stop",
                    &format!("operator asked in the console: {}", r.name),
                )?;
                sup.stop_container(svc, &r.id).await?;
            }
            Ok(format!("stopped {} container(s)", rows.len()))
        }
        Command::Restart(svc) => Ok(format!(
            "restarted {} container(s)",
            sup.restart(svc).await?
        )),
        Command::Scale(svc, n) => {
            let mut project = (*ctx.project).clone();
            let Some(s) = project.services.get_mut(svc) else {
                bail!("no service {svc} in the compose file");
            };
            s.replicas = *n;
            let scaled = Supervisor::new(
                engine.clone(),
                Arc::new(project),
                ctx.config.supervisor.clone(),
                journal,
                reporter(tx.clone(), ctx.project.services.keys().cloned().collect()),
            );
            let targets = BTreeSet::from([svc.clone()]);
            scaled
                .up(&targets, &UpOptions::default(), Arc::new(|_| {}))
                .await?;
            Ok(format!("{n} replicas (until the next `up` from the file)"))
        }
        Command::Up => {
            // The file as it is now: an edit since the console opened is honoured.
            let fresh = Ctx::load_first_run(&ctx.global, super::FirstRun::Generate)?.0;
            let targets = super::up::targets(&fresh, &[])?;
            let sup = fresh_supervisor(&fresh, engine, tx);
            stack_up(sup, targets, tx.clone()).await;
            Ok("done".into())
        }
        Command::Down => Ok(format!(
            "removed {} container(s); volumes kept",
            sup.down(false).await?
        )),
        Command::ProbeOllama(model) => {
            let Some(url) = super::ollama::locate(ctx, Some(engine)).await else {
                bail!("OLLAMA_URL is not set and the stack's Ollama publishes no port");
            };
            let client = crate::http::client(|b| b.timeout(Duration::from_secs(120)));
            let p = crate::collect::ollama::probe_generation(&client, &url, model.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok(p.to_string())
        }
        Command::ApplySuggestion(id) => {
            let Some(s) = snap.suggestions.iter().find(|x| &x.id == id) else {
                bail!("suggestion {id} no longer holds");
            };
            let report = reporter(tx.clone(), ctx.project.services.keys().cloned().collect());
            super::suggest::apply(ctx, engine, s, report).await
        }
        Command::Ollama(model, keep) => {
            let Some(url) = super::ollama::locate(ctx, Some(engine)).await else {
                bail!("OLLAMA_URL is not set and the stack's Ollama publishes no port");
            };
            let done = super::ollama::act(ctx, &url, model, *keep).await?;
            // What Ollama holds now, at once: the view does not wait for the next sample.
            let client = crate::http::client(|b| b.timeout(Duration::from_secs(5)));
            if let Ok(o) = crate::collect::ollama::sample(&client, &url).await {
                let _ = tx.send(Update::Ollama(o)).await;
            }
            Ok(done)
        }
        // Carried out by `execute` itself (they need the terminal or the hub).
        Command::Exec(_) | Command::Inspect(_) | Command::SetSampling(_) => {
            bail!("{} is not a stack action", cmd.describe())
        }
    }
}
