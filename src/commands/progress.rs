//! Image progress for the terminal: bars redrawn in place on a TTY, plain lines (at most
//! every quarter of a pull, plus start and end) when stderr is a pipe or a file.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::model::progress::{ImageEvent, PullTracker};
use crate::model::units::format_bytes;
use crate::stack::provision::ImageSink;

struct Pull {
    tracker: PullTracker,
    started: Instant,
    last_quarter: u32,
    done: bool,
    elapsed_at_end: Option<f64>,
}

struct State {
    tty: bool,
    pulls: BTreeMap<String, Pull>,
    drawn_lines: usize,
}

fn bar(percent: f64, width: usize) -> String {
    let filled = ((percent / 100.0) * width as f64).round() as usize;
    format!(
        "[{}{}]",
        "=".repeat(filled.min(width)),
        " ".repeat(width - filled.min(width))
    )
}

fn line(image: &str, p: &Pull) -> String {
    let t = &p.tracker;
    let secs = p
        .elapsed_at_end
        .unwrap_or_else(|| p.started.elapsed().as_secs_f64())
        .max(0.001);
    let speed = t.bytes_done() as f64 / secs;
    if p.done && t.bytes_done() == 0 {
        return format!("{image}: up to date (no layer had to be downloaded)");
    }
    if p.done {
        return format!(
            "{image}: pulled {} in {:.1}s ({}/s, {} layer(s))",
            format_bytes(t.bytes_done()),
            secs,
            format_bytes(speed as u64),
            t.layers()
        );
    }
    format!(
        "{image}: {:5.1}% {}/{} {}/s, layers {}/{}",
        t.percent(),
        format_bytes(t.bytes_done()),
        format_bytes(t.bytes_total()),
        format_bytes(speed as u64),
        t.layers_done(),
        t.layers()
    )
}

impl State {
    fn redraw(&mut self, err: &mut impl Write) {
        if self.drawn_lines > 0 {
            let _ = write!(err, "\x1b[{}A", self.drawn_lines);
        }
        let mut n = 0;
        for (image, p) in &self.pulls {
            let pct = if p.done { 100.0 } else { p.tracker.percent() };
            let _ = writeln!(err, "\x1b[2K{} {}", bar(pct, 24), line(image, p));
            n += 1;
        }
        self.drawn_lines = n;
    }

    fn note(&mut self, err: &mut impl Write, text: &str) {
        if self.tty && self.drawn_lines > 0 {
            let _ = write!(err, "\x1b[{}A", self.drawn_lines);
            let _ = writeln!(err, "\x1b[2K{text}");
            self.drawn_lines = 0;
            self.redraw(err);
        } else {
            let _ = writeln!(err, "{text}");
        }
    }
}

/// A sink that renders image events on stderr.
pub fn stderr_sink() -> ImageSink {
    let state = Arc::new(Mutex::new(State {
        tty: std::io::stderr().is_terminal(),
        pulls: BTreeMap::new(),
        drawn_lines: 0,
    }));
    Arc::new(move |ev: ImageEvent| {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        match ev {
            ImageEvent::PullStarted { image, services } => {
                st.pulls.insert(
                    image.clone(),
                    Pull {
                        tracker: PullTracker::default(),
                        started: Instant::now(),
                        last_quarter: 0,
                        done: false,
                        elapsed_at_end: None,
                    },
                );
                let text = format!("pulling {image} (for {})", services.join(", "));
                st.note(&mut err, &text);
            }
            ImageEvent::Layer { image, event } => {
                let tty = st.tty;
                let Some(p) = st.pulls.get_mut(&image) else {
                    return;
                };
                p.tracker.apply(&event);
                if tty {
                    st.redraw(&mut err);
                } else {
                    let q = (p.tracker.percent() / 25.0).floor() as u32;
                    if q > p.last_quarter && q < 4 {
                        p.last_quarter = q;
                        let text = line(&image, p);
                        let _ = writeln!(err, "{text}");
                    }
                }
            }
            ImageEvent::Pulled { image } => {
                let tty = st.tty;
                if let Some(p) = st.pulls.get_mut(&image) {
                    p.done = true;
                    p.elapsed_at_end = Some(p.started.elapsed().as_secs_f64());
                    if tty {
                        st.redraw(&mut err);
                    } else {
                        let text = line(&image, p);
                        let _ = writeln!(err, "{text}");
                    }
                }
            }
            ImageEvent::BuildStarted {
                service,
                image,
                files,
                bytes,
                excluded,
            } => {
                let text = format!(
                    "building {image} for {service}: context {files} files, {} ({excluded} \
                     excluded by .dockerignore)",
                    format_bytes(bytes)
                );
                st.note(&mut err, &text);
            }
            ImageEvent::BuildOutput { service, line } => {
                st.note(&mut err, &format!("  {service} | {line}"));
            }
            ImageEvent::Built { service, image } => {
                st.note(&mut err, &format!("built {image} for {service}"));
            }
            ImageEvent::Note(text) => st.note(&mut err, &text),
            // `up` prints every failure, whole, when it stops.
            ImageEvent::PullFailed { .. } => {}
        }
    })
}
