//! The console's switch between stacks (issue 25 item 4): Enter on a fleet host shows
//! that host's project, read through its own engine connection, in every view; Enter on
//! the fleet list's first line (`here`) comes back. The TUI keeps one snapshot channel and
//! one command channel for its whole life; this task owns the engine side behind them,
//! stops it and starts another on a switch, and forwards: the current hub's snapshots to
//! the TUI, the TUI's commands to the current command task, and the updates that outlive
//! a switch (the fleet collector's, the gateway's clients) to the current hub.
//!
//! A fleet host is only watched: nothing is brought up there and no supervisor watches
//! it; the operator's actions go to its engine; a host that does not answer within
//! `SWITCH_TIMEOUT` is not switched to, and the console stays where it was.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::Ctx;
use super::console_actions::{self as actions, Io, activity};
use super::engine_side::{EngineSide, PERIOD, SideOptions};
use super::fleet_engines::{FleetEngines, fleet_env};
use crate::hub::{ActivityChange, Update};
use crate::model::console::{Command, SwitchedTo};
use crate::model::fleet::{FleetEngine, FleetEntry, FleetProject, FleetRow};
use crate::model::snapshot::Snapshot;
use crate::stack::engine::DockerEngine;
use crate::tui;

/// How long a fleet host's engine may take to answer (connect, version, ping) before a
/// switch to it is refused.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The fleet list's first line: this machine's own stack.
pub const HOME_NAME: &str = "here";

/// This machine's own stack as a fleet entry (the console's fleet list starts with it).
pub fn home_entry(ctx: &Ctx) -> FleetEntry {
    FleetEntry {
        name: HOME_NAME.into(),
        engine: FleetEngine::Here(crate::stack::remote::HostEnv::from_process().shown()),
        project: FleetProject::Name(ctx.project.name.clone()),
    }
}

/// The console's fleet collector: this machine's stack first, then every `[[fleet]]`
/// host; it runs until `stop`, whatever the console shows (none without `[[fleet]]`).
pub fn start_fleet(ctx: &Ctx, tx: mpsc::Sender<Update>, stop: watch::Receiver<bool>) {
    if ctx.config.fleet.is_empty() {
        return;
    }
    let mut entries = vec![home_entry(ctx)];
    entries.extend(ctx.config.fleet.iter().cloned());
    let src = Arc::new(FleetEngines::new(&entries));
    tokio::spawn(crate::collect::fleet::run(src, PERIOD, tx, stop));
}

/// What the console shows now: its engine side and the command task's input.
pub struct Shown {
    pub side: EngineSide,
    commands: mpsc::Sender<Command>,
    /// Without an engine the command side's channels stay open, unused.
    _unused: Option<(Io, mpsc::Receiver<Command>)>,
    /// The fleet entry shown (None: this machine's stack).
    at: Option<FleetEntry>,
}

/// What the embedded gateway is, for the views (it stays on this machine).
pub struct GatewayInfo {
    pub addr: Option<std::net::SocketAddr>,
    pub note: String,
}

/// What outlives a switch.
pub struct Switcher {
    home: Ctx,
    home_engine: Result<Arc<DockerEngine>, String>,
    gateway: GatewayInfo,
    /// This machine's stack is brought up and supervised (not `--no-up`, `--read-only`).
    supervise: bool,
    handover: mpsc::Sender<tui::Handover>,
    /// The last fleet lines and gateway client time, for the next hub.
    fleet: Option<Vec<FleetRow>>,
    last_client: Option<Option<f64>>,
}

/// The same context again (the command task takes its own).
fn copy(ctx: &Ctx) -> Ctx {
    Ctx {
        global: ctx.global.clone(),
        project: ctx.project.clone(),
        config: ctx.config.clone(),
        runtime_dir: ctx.runtime_dir.clone(),
    }
}

/// A fleet host's stack as a context: its compose file (or only its project's name),
/// this console's settings, and a runtime folder of its own under this one's
/// (`runtime/fleet/NAME`: the journal of what the operator did there).
pub fn host_ctx(home: &Ctx, e: &FleetEntry) -> anyhow::Result<Ctx> {
    let mut global = home.global.clone();
    global.dotenv_compose_file = None;
    let project = match &e.project {
        FleetProject::Compose(f) => {
            global.file = vec![f.clone()];
            global.project = None;
            let opts = crate::stack::compose::LoadOptions {
                project_name: None,
                env: std::env::vars().collect(),
            };
            let p = crate::stack::compose::load(f, &opts)
                .map_err(|err| anyhow::anyhow!("compose file {}: {err}", f.display()))?;
            Arc::new(p)
        }
        FleetProject::Name(n) => {
            global.file = Vec::new();
            global.project = Some(n.clone());
            Ctx::without_file(&global, n)?.project
        }
    };
    let folder: String = e
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(Ctx {
        global,
        project,
        config: home.config.clone(),
        runtime_dir: home.runtime_dir.join("fleet").join(folder),
    })
}

/// Connects to a fleet host's engine within `SWITCH_TIMEOUT`; the error is one line.
async fn reach(e: &FleetEntry) -> Result<Arc<DockerEngine>, String> {
    match tokio::time::timeout(SWITCH_TIMEOUT, DockerEngine::connect_to(&fleet_env(e))).await {
        Ok(Ok(d)) => Ok(Arc::new(d)),
        Ok(Err(err)) => Err(err.to_string().lines().next().unwrap_or("").trim().into()),
        Err(_) => Err(format!("no answer in {}s", SWITCH_TIMEOUT.as_secs())),
    }
}

impl Switcher {
    pub fn new(
        home: Ctx,
        home_engine: Result<Arc<DockerEngine>, String>,
        gateway: GatewayInfo,
        supervise: bool,
        handover: mpsc::Sender<tui::Handover>,
    ) -> Switcher {
        Switcher {
            home,
            home_engine,
            gateway,
            supervise,
            handover,
            fleet: None,
            last_client: None,
        }
    }

    /// This machine's stack: brought up when `first` (and the console supervises), and
    /// supervised again on the way back from a fleet host.
    pub async fn show_home(&self, first: bool, period: Duration) -> anyhow::Result<Shown> {
        let o = SideOptions {
            gateway: self.gateway.addr,
            persist_history: true,
            home: true,
            local_machine: true,
            compose: true,
            period: Some(period),
            ..SideOptions::default()
        };
        let side = EngineSide::start_on(&self.home, self.home_engine.clone(), o).await;
        side.follow_feeds(&self.home.project.name);
        self.announce(&side, &self.home, None).await;
        let up_watch = (first && self.supervise, self.supervise);
        self.actions(copy(&self.home), side, up_watch, None)
    }

    /// A fleet host's stack on its engine (already reached): watched, never brought up.
    async fn show_host(
        &self,
        e: &FleetEntry,
        engine: Arc<DockerEngine>,
        ctx: Ctx,
        period: Duration,
    ) -> anyhow::Result<Shown> {
        let o = SideOptions {
            local_machine: engine.remote_host().is_none(),
            compose: !ctx.project.sources.is_empty(),
            period: Some(period),
            ..SideOptions::default()
        };
        let side = EngineSide::start_on(&ctx, Ok(engine), o).await;
        side.follow_feeds(&ctx.project.name);
        let to = SwitchedTo {
            name: e.name.clone(),
            engine: e.engine_shown(),
        };
        self.announce(&side, &ctx, Some(to)).await;
        self.actions(ctx, side, (false, false), Some(e.clone()))
    }

    /// What a new hub is told first: the console's mode, gateway, the period, where it
    /// is, and the updates that outlive a switch.
    async fn announce(&self, side: &EngineSide, ctx: &Ctx, to: Option<SwitchedTo>) {
        let tx = &side.updates;
        let started = ActivityChange::ConsoleStarted {
            read_only: self.home.global.read_only,
            gateway: self.gateway.note.clone(),
            dependencies: actions::dependencies(ctx),
        };
        let period = side.period.borrow().as_secs_f64();
        for c in [
            started,
            ActivityChange::Sampling(period),
            ActivityChange::Switched(to),
        ] {
            let _ = tx.send(Update::Activity(c)).await;
        }
        if let Some(rows) = &self.fleet {
            let _ = tx.send(Update::Fleet(rows.clone())).await;
        }
        if let Some(t) = self.last_client {
            let _ = tx
                .send(Update::Activity(ActivityChange::GatewayLastClient(t)))
                .await;
        }
    }

    fn actions(
        &self,
        ctx: Ctx,
        side: EngineSide,
        up_watch: (bool, bool),
        at: Option<FleetEntry>,
    ) -> anyhow::Result<Shown> {
        let (commands, cmd_rx) = mpsc::channel::<Command>(16);
        let io = Io {
            tx: side.updates.clone(),
            snapshots: side.snapshots.clone(),
            handover: self.handover.clone(),
        };
        let unused = actions::start_actions(ctx, &side, up_watch, cmd_rx, io)?;
        Ok(Shown {
            side,
            commands,
            _unused: unused,
            at,
        })
    }

    /// Carries out a switch: the new stack, or None (refused, with the reason shown on
    /// the current one's status line).
    async fn switch(&self, shown: &Shown, to: Option<String>) -> Option<Shown> {
        let what = Command::Switch(to.clone()).describe();
        let say = |text: String| activity(&shown.side.updates, ActivityChange::Result(text));
        let period = *shown.side.period.borrow();
        let Some(name) = to else {
            if shown.at.is_none() {
                say(format!("{what}: already there"));
                return None;
            }
            let _ = shown.side.stop.send(true);
            return match self.show_home(false, period).await {
                Ok(s) => {
                    activity(
                        &s.side.updates,
                        ActivityChange::Result(format!("{what}: done")),
                    );
                    Some(s)
                }
                Err(e) => {
                    say(format!("{what}: failed: {e:#}"));
                    None
                }
            };
        };
        if shown.at.as_ref().is_some_and(|e| e.name == name) {
            say(format!("{what}: already there"));
            return None;
        }
        let Some(e) = self.home.config.fleet.iter().find(|e| e.name == name) else {
            say(format!(
                "{what}: refused: no [[fleet]] entry named {name:?}"
            ));
            return None;
        };
        let ctx = match host_ctx(&self.home, e) {
            Ok(c) => c,
            Err(err) => {
                say(format!("{what}: refused: {err:#}"));
                return None;
            }
        };
        let engine = match reach(e).await {
            Ok(d) => d,
            Err(why) => {
                say(format!(
                    "{what}: refused: {}",
                    self.unreachable(&name, &why)
                ));
                return None;
            }
        };
        tracing::info!(host = %name, engine = %e.engine_shown(), "console switched");
        let _ = shown.side.stop.send(true);
        match self.show_host(e, engine, ctx, period).await {
            Ok(s) => {
                let done = format!("{what}: done (watched only: nothing is brought up there)");
                activity(&s.side.updates, ActivityChange::Result(done));
                Some(s)
            }
            Err(err) => {
                // The old side is stopped: back home rather than nowhere.
                let home = self.show_home(false, period).await.ok()?;
                let t = format!("{what}: failed: {err:#}");
                activity(&home.side.updates, ActivityChange::Result(t));
                Some(home)
            }
        }
    }

    /// `unreachable since HH:MM:SS: why`, since the fleet line's time when it has one.
    fn unreachable(&self, name: &str, why: &str) -> String {
        let row = self
            .fleet
            .iter()
            .flatten()
            .find(|r| r.name == name && !r.home);
        let since = row
            .and_then(|r| r.unreachable_since)
            .unwrap_or_else(crate::sys::now_secs);
        let since = crate::model::fleet::clock(since);
        format!("{name} is unreachable since {since} UTC: {why}")
    }

    /// Forwards until the TUI's command channel closes (the console quits), then stops
    /// the engine side it shows.
    pub async fn run(
        mut self,
        mut shown: Shown,
        mut ui: mpsc::Receiver<Command>,
        mut updates: mpsc::Receiver<Update>,
        out: watch::Sender<Arc<Snapshot>>,
    ) {
        let mut updates_open = true;
        loop {
            tokio::select! {
                c = ui.recv() => match c {
                    None => break,
                    Some(Command::Switch(to)) => {
                        if let Some(next) = self.switch(&shown, to).await {
                            shown = next;
                            out.send_replace(shown.side.snapshots.borrow_and_update().clone());
                        }
                    }
                    Some(Command::SetSampling(ms)) => sampling(&shown.side, ms),
                    // Never waits: a command task that takes nothing (no engine) must
                    // not stop the snapshots.
                    Some(c) => {
                        if shown.commands.try_send(c.clone()).is_err() {
                            let text = format!(
                                "{}: not sent: the engine side takes no commands now",
                                c.describe()
                            );
                            activity(&shown.side.updates, ActivityChange::Result(text));
                        }
                    }
                },
                u = updates.recv(), if updates_open => match u {
                    None => updates_open = false,
                    Some(u) => {
                        match &u {
                            Update::Fleet(rows) => self.fleet = Some(rows.clone()),
                            Update::Activity(ActivityChange::GatewayLastClient(t)) => {
                                self.last_client = Some(*t)
                            }
                            _ => {}
                        }
                        let _ = shown.side.updates.send(u).await;
                    }
                },
                r = shown.side.snapshots.changed() => {
                    if r.is_err() {
                        break;
                    }
                    out.send_replace(shown.side.snapshots.borrow_and_update().clone());
                }
            }
        }
        let _ = shown.side.stop.send(true);
    }
}

/// The sampling period (within 0.5 s to 10 s) for every collector of the engine side
/// shown, reported.
fn sampling(side: &EngineSide, ms: u64) {
    use crate::collect::ticker::{MAX_PERIOD, MIN_PERIOD};
    let d = Duration::from_millis(ms).clamp(MIN_PERIOD, MAX_PERIOD);
    side.period.send_replace(d);
    tracing::info!(period = ?d, "sampling period changed");
    activity(&side.updates, ActivityChange::Sampling(d.as_secs_f64()));
    let what = Command::SetSampling(d.as_millis() as u64).describe();
    activity(
        &side.updates,
        ActivityChange::Result(format!("{what}: done")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str) -> FleetEntry {
        FleetEntry {
            name: "far".into(),
            engine: FleetEngine::Host(host.into()),
            project: FleetProject::Name("shop".into()),
        }
    }

    /// An engine that accepts the connection and never answers: refused within the
    /// timeout, never a hang; one that refuses the connection: refused with its words.
    #[tokio::test]
    async fn a_host_that_does_not_answer_is_refused_in_bounded_time() {
        let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = mute.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = mute.accept().await {
                open.push(c);
            }
        });
        let t = std::time::Instant::now();
        let e = reach(&entry(&format!("tcp://{addr}"))).await.err().unwrap();
        assert!(t.elapsed() < SWITCH_TIMEOUT + Duration::from_secs(2), "{e}");
        assert_eq!(e, format!("no answer in {}s", SWITCH_TIMEOUT.as_secs()));

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let t = std::time::Instant::now();
        let e = reach(&entry(&format!("tcp://127.0.0.1:{port}")))
            .await
            .err()
            .unwrap();
        assert!(t.elapsed() < SWITCH_TIMEOUT, "{e}");
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
