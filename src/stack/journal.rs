//! The supervisor's journal: every action is appended here before it is carried out, so
//! nothing happens to the stack unrecorded. JSON lines under `runtime/`, bounded: when the
//! file reaches its limit it becomes `journal.1.jsonl` and a new one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::journal::JournalEntry;
use crate::model::units::format_rfc3339;

pub struct Journal {
    path: PathBuf,
    project: String,
    max_entries: usize,
    state: Mutex<Option<(File, usize)>>,
}

/// The most of a journal file read back (far above `max_entries` lines of entries).
const MAX_READ: u64 = 64 << 20;

pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_rfc3339(d.as_secs(), d.subsec_millis())
}

impl Journal {
    pub fn new(runtime_dir: &Path, project: &str, max_entries: usize) -> Journal {
        Journal {
            path: runtime_dir.join("journal.jsonl"),
            project: project.to_string(),
            max_entries: max_entries.max(10),
            state: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and flushes it. A journal that cannot be written is an error:
    /// the caller must not act unrecorded.
    pub fn record(&self, service: &str, action: &str, reason: &str) -> std::io::Result<()> {
        tracing::info!(project = %self.project, service, action, reason, "action");
        let entry = JournalEntry {
            time: now_rfc3339(),
            project: self.project.clone(),
            service: service.to_string(),
            action: action.to_string(),
            reason: reason.to_string(),
        };
        let line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                fs::create_dir_all(dir)?;
            }
            // Only a regular file is a journal: a device or a pipe in its place (a
            // `/dev/full` link reads zeros forever) is refused, never read.
            if let Ok(m) = fs::metadata(&self.path)
                && !m.is_file()
            {
                return Err(std::io::Error::other(format!(
                    "{} is not a regular file",
                    self.path.display()
                )));
            }
            let count = File::open(&self.path)
                .map(|f| BufReader::new(f.take(MAX_READ)).lines().count())
                .unwrap_or(0);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *guard = Some((f, count));
        }
        if let Some((_, count)) = guard.as_ref()
            && *count >= self.max_entries
        {
            fs::rename(&self.path, self.path.with_extension("1.jsonl"))?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            *guard = Some((f, 0));
        }
        let (file, count) = guard.as_mut().expect("opened just above");
        writeln!(file, "{line}")?;
        file.flush()?;
        *count += 1;
        Ok(())
    }

    /// Reads the current file's entries (oldest first), skipping lines that do not parse.
    pub fn read(&self) -> Vec<JournalEntry> {
        if !fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            return Vec::new();
        }
        let Ok(f) = File::open(&self.path) else {
            return Vec::new();
        };
        BufReader::new(f.take(MAX_READ))
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_rotated() {
        let dir = std::env::temp_dir().join(format!("osmen-journal-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let j = Journal::new(&dir, "p", 10);
        for i in 0..25 {
            j.record("svc", "start", &format!("n{i}")).unwrap();
        }
        let now = j.read();
        assert_eq!(now.len(), 5);
        assert_eq!(now.last().unwrap().reason, "n24");
        let old = fs::read_to_string(dir.join("journal.1.jsonl")).unwrap();
        assert_eq!(old.lines().count(), 10);
        // A new Journal on the same file continues the count.
        let j2 = Journal::new(&dir, "p", 10);
        for i in 0..6 {
            j2.record("svc", "stop", &format!("m{i}")).unwrap();
        }
        assert_eq!(j2.read().len(), 1);
        let _ = fs::remove_dir_all(&dir);
    }
}
