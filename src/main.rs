//! osmen: wiring only. Parse the arguments, build the parts, hand over to a command.

use clap::Parser;

// Charges allocations to the gateway agent whose future is being polled.
#[global_allocator]
static ALLOC: osmen::gateway::accounting::CountingAlloc = osmen::gateway::accounting::CountingAlloc;

use osmen::cli::{Cli, Command, Global};
use osmen::commands::{self, FirstRun};

fn main() {
    let mut cli = Cli::parse();
    // COMPOSE_FILE and COMPOSE_PROFILES may come from `.env`, as in docker compose.
    cli.global = cli.global.with_dotenv(std::path::Path::new("."));
    if let Some(name) = &cli.global.context {
        osmen::stack::context::set_flag(name);
    }
    start_log(&cli);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osmen: {e:#}");
            2
        }
    };
    std::process::exit(i32::from(code));
}

/// The log, `<runtime dir>/osmen.log`, for every command that works on a stack. `probe`
/// runs as a container's health check and the printers only print: they log nothing.
fn start_log(cli: &Cli) {
    if matches!(
        cli.command,
        Some(Command::Probe(_) | Command::Completions(_) | Command::Man | Command::Metrics(_))
    ) {
        return;
    }
    let Some(dir) = commands::runtime_dir(&cli.global) else {
        return;
    };
    // A runtime directory that cannot be written is reported by what needs it (the
    // journal refuses actions); the log is given up silently.
    if osmen::logging::init(&dir, &cli.global.log_level).is_ok() {
        // The subcommand's name only: its arguments may hold a key (`bench --key`).
        let what = match &cli.command {
            Some(c) => format!("{c:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or_default()
                .to_lowercase(),
            None => "console".to_string(),
        };
        tracing::info!(pid = std::process::id(), version = env!("CARGO_PKG_VERSION"), command = %what, "osmen started");
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let Some(command) = cli.command else {
        if std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::io::IsTerminal::is_terminal(&std::io::stdin())
        {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let args = commands::console::ConsoleArgs {
                no_up: cli.no_up,
                ascii: cli.ascii,
            };
            return runtime.block_on(commands::console::run(&cli.global, &args));
        }
        // Not a terminal (a pipe, a script): say where the stack stands and show help.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let summary = runtime.block_on(commands::doctor::first_run(&cli.global));
        let mut cmd = <Cli as clap::CommandFactory>::command();
        commands::out(&format!("{summary}{}\n", cmd.render_help()))?;
        return Ok(0);
    };
    let global = &cli.global;
    match command {
        Command::Probe(a) => commands::probe::run(&a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "osmen", &mut buf);
            commands::out(&String::from_utf8_lossy(&buf))?;
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            commands::out(&String::from_utf8_lossy(&buf))?;
            Ok(0)
        }
        Command::Doctor => on_runtime(commands::doctor::run(global)),
        Command::Metrics(a) => on_runtime(commands::metrics::run(&a)),
        Command::Gateway(a) => on_runtime(commands::gateway::run(global, &a)),
        Command::Bench(a) => on_runtime(commands::bench::run(global, &a)),
        // Works without a compose file; uses it when there is one.
        Command::Plan(a) => on_runtime(async move {
            let ctx = commands::Ctx::load(global).ok();
            commands::suggest::plan(ctx.as_ref(), &a).await
        }),
        // A fresh clone: `up` writes the secrets it lacks to `.env` (saying so once);
        // `config` shows what `up` will create.
        Command::Up(a) => on_runtime(async move {
            let mode = if global.read_only {
                FirstRun::Require
            } else {
                FirstRun::Generate
            };
            commands::up::run(&stack(global, mode)?, &a).await
        }),
        Command::Config(a) => {
            on_runtime(async move { commands::config::run(&stack(global, FirstRun::Preview)?, &a) })
        }
        Command::Down(a) => on_runtime(async move {
            // `-p NAME down` where no compose file is: the project by its label, as
            // `docker compose -p NAME down` does.
            let ctx = match (global.compose_files(), &global.project) {
                (Err(_), Some(name)) => commands::Ctx::without_file(global, name)?,
                _ => stack_of(global)?,
            };
            commands::down::run(&ctx, &a).await
        }),
        Command::Ps(a) => {
            on_runtime(async move { commands::ps::run(&stack_of(global)?, &a).await })
        }
        Command::Logs(a) => {
            on_runtime(async move { commands::logs::run(&stack_of(global)?, &a).await })
        }
        Command::Restart(a) => {
            on_runtime(async move { commands::restart::run(&stack_of(global)?, &a).await })
        }
        Command::Supervise => {
            on_runtime(async move { commands::supervise::run(&stack_of(global)?).await })
        }
        Command::Pull(a) => {
            on_runtime(async move { commands::images::pull(&stack_of(global)?, &a).await })
        }
        Command::Build(a) => {
            on_runtime(async move { commands::images::build(&stack_of(global)?, &a).await })
        }
        Command::Status(a) => {
            on_runtime(async move { commands::status::run(&stack_of(global)?, &a).await })
        }
        Command::Suggest(a) => {
            on_runtime(async move { commands::suggest::run(&stack_of(global)?, &a).await })
        }
        Command::Ollama(a) => {
            on_runtime(async move { commands::ollama::run(&stack_of(global)?, &a).await })
        }
        Command::Export(a) => {
            on_runtime(async move { commands::export::run(&stack_of(global)?, &a) })
        }
    }
}

/// Runs a command on the multi-threaded runtime every engine-side command uses.
fn on_runtime(
    command: impl std::future::Future<Output = anyhow::Result<u8>>,
) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Losing the terminal must not stop osmen halfway through an action.
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tokio::spawn(async move { while hup.recv().await.is_some() {} });
        }
        command.await
    })
}

/// The stack from the compose file, a missing first-run secret refused.
fn stack_of(global: &Global) -> anyhow::Result<commands::Ctx> {
    stack(global, FirstRun::Require)
}

/// The stack from the compose file; a first-run note (a secret written, or one `up` will
/// write) goes to stderr.
fn stack(global: &Global, first_run: FirstRun) -> anyhow::Result<commands::Ctx> {
    let (ctx, note) = commands::Ctx::load_first_run(global, first_run)?;
    if let Some(n) = note {
        let tag = if first_run == FirstRun::Preview {
            "warning"
        } else {
            "osmen"
        };
        eprintln!("{tag}: {n}");
    }
    Ok(ctx)
}
