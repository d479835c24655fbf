//! What the console's commands do: the task that carries out each `Command` on the stack
//! the console shows (this machine's, or a fleet host's after a switch), the supervisor
//! that brings this machine's stack up and watches it, and the activity lines they report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, watch};

use super::Ctx;
use super::engine_side::EngineSide;
use crate::hub::{ActivityChange, Update};
use crate::model::console::{Command, EventLine};
use crate::model::container::ContainerRow;
use crate::stack::engine::{DockerEngine, Engine};
use crate::stack::supervise::{Reporter, Supervisor, UpOptions};
use crate::sys::now_secs;
use crate::tui;

pub fn activity(tx: &mpsc::Sender<Update>, c: ActivityChange) {
    let _ = tx.try_send(Update::Activity(c));
}

/// For the updates that end an operation: waits for room rather than dropping them, so
/// "running: …" never stays on screen after the work is done.
pub async fn activity_sure(tx: &mpsc::Sender<Update>, c: ActivityChange) {
    let _ = tx.send(Update::Activity(c)).await;
}

pub fn event(tx: &mpsc::Sender<Update>, service: &str, text: String) {
    let _ = tx.try_send(Update::Events(vec![EventLine {
        time: now_secs(),
        source: "console".into(),
        service: service.to_string(),
        text,
    }]));
}

/// The supervisor's progress lines go to the Events view, and "X waits for Y" lines
/// mark X as blocked until it starts.
pub fn reporter(tx: mpsc::Sender<Update>, services: BTreeSet<String>) -> Reporter {
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

/// Each service's dependencies as the Overview names them: `db (service_healthy)`.
pub fn dependencies(ctx: &Ctx) -> BTreeMap<String, Vec<String>> {
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

/// With an engine: the supervisor (bringing the stack up when `up`, watching it when
/// `watch`: this machine's stack only) and the task that carries out the console's
/// commands; without one, the console says that actions are refused, and `io` and
/// `cmd_rx` come back unused.
pub fn start_actions(
    ctx: Ctx,
    side: &EngineSide,
    (up, watch): (bool, bool),
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
            if up {
                let targets = super::up::targets(&ctx, &[])?;
                tokio::spawn(stack_up(sup.clone(), targets, tx.clone()));
            }
            if watch {
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

pub async fn stack_up(
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
pub struct Io {
    pub tx: mpsc::Sender<Update>,
    pub snapshots: watch::Receiver<Arc<crate::model::snapshot::Snapshot>>,
    pub handover: mpsc::Sender<tui::Handover>,
}

/// Carries out the console's commands, one task each; results come back as activity.
pub async fn execute(
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
        if cmd.needs_compose() && ctx.project.sources.is_empty() {
            let text = format!("{what}: refused: {}", no_compose(&ctx));
            event(&tx, "", text.clone());
            activity(&tx, ActivityChange::Result(text));
            continue;
        }
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

/// Why a command that works from the compose file is refused on a fleet host whose
/// `[[fleet]]` entry names only its project.
fn no_compose(ctx: &Ctx) -> String {
    format!(
        "the fleet entry names only the project {} and no compose file; add `compose = \
         \"PATH\"` to its [[fleet]] entry in config/osmen.toml to do this from here",
        ctx.project.name
    )
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
                if ctx.project.sources.is_empty() {
                    bail!("{svc} has no container, and {}", no_compose(ctx));
                }
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
        // Carried out by `execute` itself (they need the terminal or the hub), or by the
        // console's switcher (the engine side itself).
        Command::Exec(_) | Command::Inspect(_) | Command::SetSampling(_) | Command::Switch(_) => {
            bail!("{} is not a stack action", cmd.describe())
        }
    }
}
