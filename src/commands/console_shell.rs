//! `e` in the console: a shell in a container, through the Engine API (an exec with a
//! TTY, stdin attached). The console's UI loop lends the terminal (`tui::Handover`): it
//! leaves the alternate screen and stops reading keys; this side copies the operator's
//! keys to the exec and its output to the terminal, resizes it on SIGWINCH, and gives the
//! terminal back when the shell exits.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::stack::engine::{Engine, TtyExec};
use crate::tui::Handover;

/// Tried in order: the usual path, then whatever `sh` the image's PATH finds.
pub const SHELLS: [&str; 2] = ["/bin/sh", "sh"];

/// The first shell the container can run (`SHELL -c 'exit 0'`, no terminal needed), or
/// an error saying the image has none and what each try answered.
pub async fn find_shell<E: Engine>(engine: &E, container: &str) -> anyhow::Result<&'static str> {
    let mut tried = Vec::new();
    for sh in SHELLS {
        match engine.exec_output(container, &[sh, "-c", "exit 0"]).await {
            Ok((Some(0), _)) => return Ok(sh),
            Ok((code, out)) => {
                let first = out.lines().map(str::trim).find(|l| !l.is_empty());
                let code = code.map_or("no exit code".to_string(), |c| format!("exit {c}"));
                tried.push(format!(
                    "{sh} ({code}{})",
                    first.map(|l| format!(": {l}")).unwrap_or_default()
                ));
            }
            Err(e) => tried.push(format!("{sh} ({e})")),
        }
    }
    bail!(
        "{container} has no shell: its image has neither /bin/sh nor sh on its PATH (a \
         scratch-based image, for one); tried {}",
        tried.join(", ")
    )
}

/// Finds a shell, borrows the terminal from the UI loop, runs the shell until it exits
/// and hands the terminal back (also when the exec fails).
pub async fn run<E: Engine>(
    engine: &E,
    container: &str,
    handover: &mpsc::Sender<Handover>,
) -> anyhow::Result<String> {
    let shell = find_shell(engine, container).await?;
    let (granted_tx, granted) = oneshot::channel();
    let (done, done_rx) = oneshot::channel();
    handover
        .send(Handover {
            granted: granted_tx,
            done: done_rx,
        })
        .await
        .map_err(|_| anyhow!("the console's screen is gone"))?;
    granted
        .await
        .map_err(|_| anyhow!("the console did not hand over the terminal"))?;
    let r = interact(engine, container, shell).await;
    let _ = done.send(());
    r
}

async fn interact<E: Engine>(engine: &E, container: &str, shell: &str) -> anyhow::Result<String> {
    let size = crossterm::terminal::size().unwrap_or((80, 24));
    let mut out = std::io::stdout();
    write!(
        out,
        "osmen: {shell} in {container}; exit the shell (exit or Ctrl-D) to return to the console\r\n"
    )?;
    out.flush()?;
    let TtyExec {
        id,
        mut output,
        mut input,
    } = engine.exec_tty(container, &[shell], size).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let (key_tx, mut keys) = mpsc::channel::<Vec<u8>>(64);
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_stdin(&stop, &key_tx))
    };
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut failure = None;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(b)) => {
                    out.write_all(&b)?;
                    out.flush()?;
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => break,
            },
            Some(k) = keys.recv() => {
                if input.write_all(&k).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
            _ = winch.recv() => {
                if let Ok(sz) = crossterm::terminal::size() {
                    let _ = engine.resize_exec(&id, sz).await;
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    // The reader wakes within its poll timeout and ends: no key meant for the console
    // is read by it afterwards.
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    if let Some(e) = failure {
        bail!("the shell's connection failed: {e}");
    }
    Ok(match engine.exec_exit_code(&id).await.ok().flatten() {
        Some(c) => format!("{shell} exited ({c})"),
        None => format!("{shell} ended"),
    })
}

/// Copies the terminal's bytes (raw mode: every key as typed) to `tx` until `stop`. It
/// polls with a short timeout instead of blocking in read, so that it ends when the
/// shell does.
fn read_stdin(stop: &AtomicBool, tx: &mpsc::Sender<Vec<u8>>) {
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, and fd stays open (stdin) for the whole call.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if n <= 0 {
            continue;
        }
        if p.revents & libc::POLLIN == 0 {
            if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return;
            }
            continue;
        }
        // SAFETY: buf is valid for buf.len() bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            return;
        }
        if tx.blocking_send(buf[..r as usize].to_vec()).is_err() {
            return;
        }
    }
}
