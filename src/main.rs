//! osmen: wiring only. Parse the arguments, build the parts, hand over to a command.

use clap::Parser;

// Charges allocations to the gateway agent whose future is being polled.
#[global_allocator]
static ALLOC: osmen::gateway::accounting::CountingAlloc = osmen::gateway::accounting::CountingAlloc;

use osmen::cli::{Cli, Command};
use osmen::commands;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("osmen: {e:#}");
            2
        }
    };
    std::process::exit(i32::from(code));
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
    if let Command::Probe(a) = &command {
        return commands::probe::run(a);
    }
    if let Command::Completions(a) = &command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_complete::generate(a.shell, &mut cmd, "osmen", &mut buf);
        commands::out(&String::from_utf8_lossy(&buf))?;
        return Ok(0);
    }
    if let Command::Man = &command {
        let cmd = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        commands::out(&String::from_utf8_lossy(&buf))?;
        return Ok(0);
    }
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
        if let Command::Doctor = command {
            return commands::doctor::run(&cli.global).await;
        }
        if let Command::Metrics(a) = &command {
            return commands::metrics::run(a).await;
        }
        if let Command::Gateway(a) = &command {
            return commands::gateway::run(&cli.global, a).await;
        }
        if let Command::Bench(a) = &command {
            return commands::bench::run(&cli.global, a).await;
        }
        if let Command::Plan(a) = &command {
            // Works without a compose file; uses it when there is one.
            let ctx = commands::Ctx::load(&cli.global).ok();
            return commands::suggest::plan(ctx.as_ref(), a).await;
        }
        // A fresh clone: `up` writes the secrets it lacks to `.env` (saying so once);
        // `config` shows what `up` will create.
        let first_run = match &command {
            Command::Up(_) if !cli.global.read_only => commands::FirstRun::Generate,
            Command::Config(_) => commands::FirstRun::Preview,
            _ => commands::FirstRun::Require,
        };
        let (ctx, note) = commands::Ctx::load_first_run(&cli.global, first_run)?;
        if let Some(n) = note {
            let tag = if first_run == commands::FirstRun::Preview {
                "warning"
            } else {
                "osmen"
            };
            eprintln!("{tag}: {n}");
        }
        match command {
            Command::Up(a) => commands::up::run(&ctx, &a).await,
            Command::Down(a) => commands::down::run(&ctx, &a).await,
            Command::Ps(a) => commands::ps::run(&ctx, &a).await,
            Command::Logs(a) => commands::logs::run(&ctx, &a).await,
            Command::Restart(a) => commands::restart::run(&ctx, &a).await,
            Command::Config(a) => commands::config::run(&ctx, &a),
            Command::Supervise => commands::supervise::run(&ctx).await,
            Command::Probe(a) => commands::probe::run(&a),
            Command::Pull(a) => commands::images::pull(&ctx, &a).await,
            Command::Build(a) => commands::images::build(&ctx, &a).await,
            Command::Doctor => commands::doctor::run(&cli.global).await,
            Command::Gateway(a) => commands::gateway::run(&cli.global, &a).await,
            Command::Metrics(a) => commands::metrics::run(&a).await,
            Command::Status(a) => commands::status::run(&ctx, &a).await,
            Command::Suggest(a) => commands::suggest::run(&ctx, &a).await,
            Command::Bench(a) => commands::bench::run(&cli.global, &a).await,
            Command::Plan(a) => commands::suggest::plan(Some(&ctx), &a).await,
            Command::Export(a) => commands::export::run(&ctx, &a),
            Command::Completions(_) | Command::Man => Ok(0),
        }
    })
}
