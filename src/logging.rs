//! The operator's log: `tracing` events written to `<runtime dir>/osmen.log`, never to the
//! terminal (the console owns the screen; headless commands keep stderr for what they tell
//! the user). The file is bounded: a line that would take it past [`LOG_CAP`] first turns
//! it into `osmen.log.1` (dropping the older one), so the log holds at most twice the cap.
//! Secrets never reach it: the values of the environment's keys, tokens and passwords are
//! masked in every line before it is written, whatever the event carried.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::model::snapshot::SourceHealth;

/// The log's name in the runtime directory.
pub const LOG_FILE: &str = "osmen.log";
/// Past this size the log is rotated: one old file (`osmen.log.1`) is kept.
pub const LOG_CAP: u64 = 10 * 1024 * 1024;

/// What `--log-level` (or `OSMEN_LOG`) selects: a level (error, warn, info, debug,
/// trace) for osmen's own events, or `RUST_LOG`-style directives (`osmen::stack=debug,warn`).
#[derive(Debug, Clone)]
pub struct LogFilter(Targets);

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFilter, String> {
        if let Ok(level) = LevelFilter::from_str(s.trim()) {
            // A bare level is about osmen; the libraries below it stay at warnings unless
            // asked for by name.
            let deps = level.min(LevelFilter::WARN);
            return Ok(LogFilter(
                Targets::new()
                    .with_target("osmen", level)
                    .with_default(deps),
            ));
        }
        let bad = |why: String| {
            format!(
                "{s:?}: {why}; write a level (error, warn, info, debug, trace) or directives \
                 such as osmen::stack=debug,warn"
            )
        };
        // A bare word that is no level is a typo, not a target to trace.
        if !s.contains('=') {
            return Err(bad("not a level".into()));
        }
        Targets::from_str(s)
            .map(LogFilter)
            .map_err(|e| bad(e.to_string()))
    }
}

impl Default for LogFilter {
    fn default() -> LogFilter {
        LogFilter::from_str("info").unwrap_or_else(|_| LogFilter(Targets::new()))
    }
}

/// Starts the log for this process: events matching `filter` go to `dir/osmen.log`.
/// Called once, before a command runs; a second call changes nothing.
pub fn init(dir: &Path, filter: &LogFilter) -> io::Result<()> {
    let writer = LogFile::open(dir, LOG_CAP, secret_values(std::env::vars()))?;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter.0.clone())
        .try_init();
    Ok(())
}

/// The values of environment variables that hold secrets (keys, tokens, passwords),
/// longest first so that a secret containing another is masked whole.
pub fn secret_values(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    const SECRET: &[&str] = &["KEY", "TOKEN", "SECRET", "PASSWORD", "PASS", "CREDENTIAL"];
    let mut out: Vec<String> = vars
        .filter(|(k, _)| {
            let k = k.to_ascii_uppercase();
            SECRET.iter().any(|s| k.contains(s))
        })
        // A list of keys (OSMEN_API_KEYS=a,b) is masked key by key.
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        // Short values ("1", "yes") would mask ordinary words.
        .filter(|v| v.len() >= 6)
        .collect();
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out.dedup();
    out
}

/// The size-capped log file, shared by every thread that logs.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    cap: u64,
    file: Option<File>,
    secrets: Vec<String>,
}

impl LogFile {
    /// Opens (appending to) `dir/osmen.log`, creating `dir`.
    pub fn open(dir: &Path, cap: u64, secrets: Vec<String>) -> io::Result<LogFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let file = append(&path)?;
        Ok(LogFile {
            inner: Arc::new(Mutex::new(Inner {
                path,
                cap,
                file: Some(file),
                secrets,
            })),
        })
    }

    /// Writes one formatted line: secrets masked, the file rotated first when the line
    /// would take it past the cap. A log that cannot be written is given up silently:
    /// the terminal is not the place to say so.
    pub fn write_line(&self, line: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(line);
        let masked = mask(&text, &inner.secrets);
        let len = masked.len() as u64;
        let size = inner
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        if size > 0 && size + len > inner.cap {
            inner.rotate();
        }
        if let Some(f) = inner.file.as_mut()
            && f.write_all(masked.as_bytes()).is_err()
        {
            inner.file = None;
        }
    }
}

impl Inner {
    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&self.path, PathBuf::from(old));
        self.file = append(&self.path).ok();
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `text` with every secret, and every password in a URL, replaced by `***`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = crate::model::secret::mask_url_credentials(text);
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// One event's bytes, written whole when the formatter drops it.
pub struct LogLine {
    file: LogFile,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.file.write_line(&self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            file: self.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

/// What a source's new health report changes, as the log tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its first good report.
    Up,
    /// Good again after failing.
    Back,
    /// Failing: the first failure, or a different reason than the last.
    Down,
}

/// The change a report `now` makes to a source that had `before`; none for a repeat.
pub fn change(before: Option<&SourceHealth>, now: &Result<(), String>) -> Option<Change> {
    let was_ok = before.map(|h| h.status == "ok");
    let last_error = before.and_then(|h| h.last_error.as_deref());
    match (was_ok, now) {
        (Some(true), Ok(())) => None,
        (None, Ok(())) => Some(Change::Up),
        (Some(false), Ok(())) => Some(Change::Back),
        (Some(false), Err(e)) if last_error == Some(e.as_str()) => None,
        (_, Err(_)) => Some(Change::Down),
    }
}

/// Logs a collector source going down or coming back, called where the hub records each
/// source's health (`before` is what it had): transitions only, not every sample.
pub fn source_health(name: &str, before: Option<&SourceHealth>, now: &Result<(), String>) {
    const HUB: &str = "osmen::hub";
    match (change(before, now), now) {
        (Some(Change::Up), _) => tracing::debug!(target: HUB, source = name, "source up"),
        (Some(Change::Back), _) => tracing::info!(target: HUB, source = name, "source up again"),
        // Absent here (no GPU, no Ollama configured): worth a line, not a warning.
        (Some(Change::Down), Err(e)) if e.starts_with("unavailable") => {
            tracing::info!(target: HUB, source = name, error = %e, "source unavailable")
        }
        (Some(Change::Down), Err(e)) => {
            tracing::warn!(target: HUB, source = name, error = %e, "source down")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("osmen-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_log_rotates_at_its_cap_and_keeps_one_old_file() {
        let d = dir("rotate");
        let log = LogFile::open(&d, 100, Vec::new()).unwrap();
        for i in 0..30 {
            log.write_line(format!("line {i:02} ........\n").as_bytes());
        }
        let now = std::fs::read_to_string(d.join(LOG_FILE)).unwrap();
        let old = std::fs::read_to_string(d.join("osmen.log.1")).unwrap();
        assert!(now.len() <= 100 && old.len() <= 100, "{now:?} {old:?}");
        assert!(now.ends_with("line 29 ........\n"), "{now:?}");
        assert!(old.contains("line 2"), "{old:?}");
        let files = std::fs::read_dir(&d).unwrap().count();
        assert_eq!(files, 2, "only the log and one old file");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn secrets_from_the_environment_are_masked_in_every_line() {
        let vars = [
            ("OPENAI_API_KEY", "sk-live-abcdef123456"),
            ("OSMEN_API_KEYS", "key-one-111111, key-two-222222"),
            ("POSTGRES_PASSWORD", "hunter2hunter2"),
            ("HOME", "/home/operator"),
            ("SHORT_TOKEN", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let secrets = secret_values(vars.into_iter());
        assert_eq!(secrets.len(), 4, "{secrets:?}");
        let d = dir("mask");
        let log = LogFile::open(&d, LOG_CAP, secrets).unwrap();
        log.write_line(
            b"openai: 401 {\"error\": \"bad key sk-live-abcdef123456\"} key-two-222222 \
              hunter2hunter2 in /home/operator via http://u:url-pass-42@proxy\n",
        );
        let text = std::fs::read_to_string(d.join(LOG_FILE)).unwrap();
        for s in [
            "sk-live-abcdef123456",
            "key-two-222222",
            "hunter2hunter2",
            "url-pass-42",
        ] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
        assert!(
            text.contains("bad key ***") && text.contains("/home/operator"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_level_or_directives_select_what_is_logged() {
        for ok in ["info", "DEBUG", "trace", "osmen::stack=debug,warn", "error"] {
            assert!(ok.parse::<LogFilter>().is_ok(), "{ok}");
        }
        for bad in ["loud", "inof", "osmen=loud"] {
            let e = bad.parse::<LogFilter>().unwrap_err();
            assert!(e.contains("error, warn, info, debug, trace"), "{bad}: {e}");
        }
    }

    #[test]
    fn only_transitions_of_a_source_are_logged() {
        let ok = SourceHealth {
            status: "ok".into(),
            last_error: None,
            last_sample: Some(1.0),
            failing_since: None,
        };
        let down = SourceHealth {
            status: "error since 10:00:00: refused".into(),
            last_error: Some("refused".into()),
            last_sample: None,
            failing_since: Some(1.0),
        };
        let refused: Result<(), String> = Err("refused".into());
        let table = [
            (None, Ok(()), Some(Change::Up)),
            (None, refused.clone(), Some(Change::Down)),
            (Some(&ok), Ok(()), None),
            (Some(&ok), refused.clone(), Some(Change::Down)),
            (Some(&down), refused.clone(), None),
            (Some(&down), Err("timed out".into()), Some(Change::Down)),
            (Some(&down), Ok(()), Some(Change::Back)),
        ];
        for (before, now, want) in table {
            assert_eq!(change(before, &now), want, "{before:?} -> {now:?}");
        }
    }
}
