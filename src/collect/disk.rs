//! Whether the journal can be written: its directory, its file and the free space of its
//! file system (statvfs, through `sys::space`), reported as the `journal` source.

use crate::sys::space;

/// Below this much free space the journal counts as full (an entry is ~200 bytes, and
/// the supervisor writes several per action).
pub const JOURNAL_MIN_FREE: u64 = 64 << 10;

/// Why the journal cannot take entries; the texts are the ones the `journal` source shows.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the file system is full ({available} bytes free)", dir.display())]
    Full {
        dir: std::path::PathBuf,
        available: u64,
    },
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: std::path::PathBuf },
}

/// Whether the journal at `path` can take entries: its directory exists or can be made,
/// it is a regular file (or absent), it opens for appending and its file system has room.
pub fn journal_writable(path: &std::path::Path) -> Result<(), JournalError> {
    let io = |p: &std::path::Path| {
        let path = p.to_path_buf();
        move |source| JournalError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        if let Ok(sp) = space(&dir.to_string_lossy())
            && sp.available < JOURNAL_MIN_FREE
        {
            return Err(JournalError::Full {
                dir: dir.to_path_buf(),
                available: sp.available,
            });
        }
    }
    if let Ok(m) = std::fs::metadata(path)
        && !m.is_file()
    {
        return Err(JournalError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(io(path))
}

/// Checks the journal every `period` and reports it as the `journal` source: while it
/// cannot be written, actions are refused (they are journaled before they are taken).
pub async fn watch_journal(
    path: std::path::PathBuf,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let r = journal_writable(&path)
            .map_err(|e| format!("{e}; actions are refused until the journal can be written"));
        if tx
            .send(crate::hub::Update::Source("journal", r))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_journal_that_cannot_be_written_says_why() {
        let dir = std::env::temp_dir().join(format!("osmen-jw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(super::journal_writable(&dir.join("runtime/journal.jsonl")).is_ok());
        // `runtime` is a file: no journal can live under it.
        std::fs::write(dir.join("blocked"), "x").unwrap();
        let e = super::journal_writable(&dir.join("blocked/journal.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocked"), "{e}");
        // A device in the journal's place is refused, never written or read.
        std::os::unix::fs::symlink("/dev/full", dir.join("dev.jsonl")).unwrap();
        let e = super::journal_writable(&dir.join("dev.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
