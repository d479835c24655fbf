//! `osmen` with no subcommand: the console. Wires the collectors, the log and event feeds,
//! the embedded gateway and the supervisor to the TUI, which sees only snapshots and sends
//! only `Command`s. Leaving the console (q, SIGTERM, SIGHUP, a dropped SSH link) stops
//! osmen's own tasks and never the stack.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::{mpsc, watch};

use super::console_actions::{activity, event};
use super::console_switch::{self, GatewayInfo, Switcher};
use super::engine_side::PERIOD;
use super::{Ctx, OK};
use crate::cli::{GatewayArgs, Global};
use crate::gateway::{self, Gateway};
use crate::hub::{ActivityChange, Update};
use crate::model::console::Command;
use crate::stack::engine::DockerEngine;
use crate::tui::{self, keymap::Keymap, theme};

pub struct ConsoleArgs {
    pub no_up: bool,
    pub ascii: bool,
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
    // A context that does not exist is a setting to fix, not an outage to watch: the
    // console refuses to open on it, as `docker --context NAME` does.
    if let Some(e) = crate::stack::remote::HostEnv::from_process().context_error {
        bail!(e);
    }
    // One connection to the engine for everything the console starts; the gateway needs
    // it first (to find the stack's Ollama).
    let engine = super::engine_side::connect().await;
    let found_ollama = discover_ollama(&ctx, engine.as_ref().ok(), &mut gw_opts).await;
    let (gw_stop_tx, gw_stop) = watch::channel(false);
    let runtime_dir = gw_opts.runtime_dir.clone();
    let embedded = start_gateway(&gw_opts, gw_stop, found_ollama).await;
    let gateway_addr = embedded.addr;
    tracing::info!(addr = ?gateway_addr, note = %embedded.note, "console's gateway");

    // The TUI's channels, which outlive a switch to a fleet host and back.
    let (ui_tx, ui_rx) = mpsc::channel::<Command>(16);
    // A shell in a container borrows the terminal from the UI loop through this.
    let (handover_tx, handover_rx) = mpsc::channel::<tui::Handover>(1);
    // The updates that outlive a switch, handed to the hub of the stack shown.
    let (updates_tx, updates_rx) = mpsc::channel::<Update>(64);
    let (stop_tx, stop) = watch::channel(false);
    if let Some(gw) = embedded.gateway.clone() {
        tokio::spawn(follow_clients(gw, updates_tx.clone(), stop.clone()));
    }
    console_switch::start_fleet(&ctx, updates_tx, stop);
    let gateway = GatewayInfo {
        addr: gateway_addr,
        note: embedded.note,
    };
    let supervise = !read_only && !args.no_up;
    let switcher = Switcher::new(ctx, engine, gateway, supervise, handover_tx);
    let shown = switcher.show_home(true, PERIOD).await?;
    if let Some(n) = first_run_note {
        event(&shown.side.updates, "", n.clone());
        activity(&shown.side.updates, ActivityChange::FirstRunNote(n));
    }
    let (snap_tx, snap_rx) = watch::channel(shown.side.snapshots.borrow().clone());
    let switching = tokio::spawn(switcher.run(shown, ui_rx, updates_rx, snap_tx));
    let result = tui::run(opts, snap_rx, ui_tx, handover_rx).await;
    // Leaving: stop osmen's own tasks, let the gateway finish in-flight requests briefly.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), switching).await;
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
