//! The console. It sees the world only through the snapshots it receives and the
//! `Command`s it sends: `run` owns the terminal, turns keys into commands through
//! `state::on_key`, and redraws only when a key, a resize or a new snapshot changed
//! something (a new snapshot is drawn at most every `SNAPSHOT_FRAME`), each frame wrapped
//! in synchronized-output sequences so a slow SSH link never shows half a frame.

pub mod action;
pub mod keymap;
pub mod sgr16;
pub mod state;
pub mod theme;
pub mod views;
pub mod widgets;

use std::io::{self, Write};
use std::sync::{Arc, Once};
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind, MouseEventKind};
use crossterm::{cursor, event, execute, terminal};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{mpsc, watch};

use crate::model::console::Command;
use crate::model::snapshot::Snapshot;
use action::Action;
use keymap::Keymap;
use state::UiState;
use theme::Theme;

/// New snapshots are drawn at most this often (keys and resizes are drawn at once).
pub const SNAPSHOT_FRAME: Duration = Duration::from_secs(1);

pub struct Options {
    pub read_only: bool,
    pub mouse: bool,
    pub keymap: Keymap,
    pub theme: Theme,
}

/// The console's output: standard output, through `Sgr16` for a 16-colour terminal.
pub enum Out {
    Plain(io::Stdout),
    Sgr16(sgr16::Sgr16<io::Stdout>),
}

impl Out {
    fn new(sgr16: bool) -> Out {
        if sgr16 {
            Out::Sgr16(sgr16::Sgr16::new(io::stdout()))
        } else {
            Out::Plain(io::stdout())
        }
    }
}

impl io::Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(o) => o.write(b),
            Out::Sgr16(o) => o.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(o) => o.flush(),
            Out::Sgr16(o) => o.flush(),
        }
    }
}

/// Puts the terminal back as it was: cooked mode, main screen, cursor, no mouse capture.
/// Safe to call more than once and from the panic hook.
pub fn restore_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        event::DisableMouseCapture,
        terminal::EndSynchronizedUpdate,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
}

/// The command side asks for the terminal (a shell in a container): the UI loop stops
/// reading keys, leaves the alternate screen (raw mode stays: the container's TTY does
/// the line editing), answers on `granted`, and takes the terminal back, redrawing
/// everything, when `done` resolves or its sender is dropped.
pub struct Handover {
    pub granted: tokio::sync::oneshot::Sender<()>,
    pub done: tokio::sync::oneshot::Receiver<()>,
}

/// Gives the screen to another program: main screen, cursor shown, no mouse capture.
fn suspend() -> io::Result<()> {
    let mut out = io::stdout();
    execute!(
        out,
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        cursor::Show
    )?;
    out.flush()
}

/// Takes the screen back after `suspend`.
fn resume(mouse: bool) -> io::Result<()> {
    let mut out = io::stdout();
    terminal::enable_raw_mode()?;
    execute!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
    if mouse {
        execute!(out, event::EnableMouseCapture)?;
    }
    out.flush()
}

/// Restores the terminal when dropped: on quit, on error, and while unwinding.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// A panic anywhere (a spawned task included) restores the terminal first, prints the
/// report with the previous hook, then ends the process: a console whose UI task died
/// must not keep the terminal in raw mode.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
            std::process::exit(101);
        }));
    });
}

/// Base64 for OSC 52 (standard alphabet, padded).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard (works over SSH).
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Runs the console until `q`, SIGTERM, SIGHUP or the end of the input. The stack is
/// never touched on the way out.
pub async fn run(
    opts: Options,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    commands: mpsc::Sender<Command>,
    mut handover: mpsc::Receiver<Handover>,
) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term_sig = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    install_panic_hook();
    terminal::enable_raw_mode()?;
    let guard = Guard;
    let mut out = io::stdout();
    execute!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
    if opts.mouse {
        execute!(out, event::EnableMouseCapture)?;
    }
    // The 16 named colours in their classic codes where the terminal knows no more.
    let sgr16 = opts.theme.color == theme::ColorMode::Ansi16;
    let mut terminal = Terminal::new(CrosstermBackend::new(Out::new(sgr16)))?;
    terminal.clear()?;
    let mut st = UiState::new(opts.read_only, opts.theme.ascii);
    let mut snap = snapshots.borrow_and_update().clone();
    let mut events = EventStream::new();
    let mut dirty = true;
    let mut snapshot_pending = false;
    let mut engine_gone = false;
    let mut last_draw = tokio::time::Instant::now();
    let mut handover_gone = false;
    loop {
        if dirty {
            execute!(terminal.backend_mut(), terminal::BeginSynchronizedUpdate)?;
            terminal.draw(|f| views::draw(f, &mut st, &snap, &opts.keymap, &opts.theme))?;
            execute!(terminal.backend_mut(), terminal::EndSynchronizedUpdate)?;
            if let Some(text) = st.copy.take() {
                let b = terminal.backend_mut();
                b.write_all(osc52(&text).as_bytes())?;
                b.flush()?;
            }
            dirty = false;
            last_draw = tokio::time::Instant::now();
        }
        if st.quit {
            break;
        }
        let frame_due = last_draw + SNAPSHOT_FRAME;
        let mut lend: Option<Handover> = None;
        tokio::select! {
            h = handover.recv(), if !handover_gone => match h {
                Some(h) => lend = Some(h),
                None => handover_gone = true,
            },
            ev = events.next() => match ev {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                    if let Some(cmd) = state::on_key(&mut st, &opts.keymap, &snap, k) {
                        // The engine side answers through the snapshot's activity.
                        let _ = commands.try_send(cmd);
                    }
                    dirty = true;
                }
                Some(Ok(Event::Mouse(m))) => {
                    let action = match m.kind {
                        MouseEventKind::ScrollDown => Some(Action::Down),
                        MouseEventKind::ScrollUp => Some(Action::Up),
                        _ => None,
                    };
                    if let Some(a) = action {
                        state::update(&mut st, &snap, a);
                        dirty = true;
                    }
                }
                Some(Ok(Event::Resize(..))) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                // The terminal is gone (SSH dropped): leave; the stack keeps running.
                Some(Err(_)) | None => break,
            },
            changed = snapshots.changed(), if !snapshot_pending && !engine_gone => {
                match changed {
                    Ok(()) => snapshot_pending = true,
                    // The engine side ended; keep showing the last snapshot.
                    Err(_) => engine_gone = true,
                }
            }
            _ = tokio::time::sleep_until(frame_due), if snapshot_pending => {
                snap = snapshots.borrow_and_update().clone();
                snapshot_pending = false;
                dirty = true;
            }
            _ = term_sig.recv() => break,
            _ = hup.recv() => break,
            _ = int.recv() => break,
        }
        if let Some(h) = lend {
            // Stop reading keys first: the shell gets every byte typed from now on.
            drop(events);
            suspend()?;
            let _ = h.granted.send(());
            let quit = tokio::select! {
                _ = h.done => false,
                _ = term_sig.recv() => true,
                _ = hup.recv() => true,
            };
            if quit {
                break;
            }
            resume(opts.mouse)?;
            terminal.clear()?;
            events = EventStream::new();
            dirty = true;
        }
    }
    drop(terminal);
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
        assert_eq!(super::osc52("hi"), "\x1b]52;c;aGk=\x07");
    }
}

#[cfg(test)]
mod screens;
