//! `osmen supervise`: the console's supervision without the console. Losing the terminal
//! (SIGHUP) does not stop it; SIGINT or SIGTERM end it and leave the stack running.

use tokio::signal::unix::{SignalKind, signal};

use super::{Ctx, OK};

pub async fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("supervise")?;
    let sup = ctx.supervisor().await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    sup.watch(rx).await?;
    eprintln!("supervisor stopped; the stack keeps running");
    Ok(OK)
}
