//! The console's feeds: every container's log lines (followed, batched once a second so a
//! chatty service costs one snapshot per second, not one per line), the engine's
//! lifecycle events and the supervisor's journal, as `Update::Logs` and `Update::Events`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::hub::Update;
use crate::model::console::{EventLine, LogLine};
use crate::model::container::ContainerRow;
use crate::model::journal::JournalEntry;
use crate::sys::now_secs;

pub type LineStream<E> = Pin<Box<dyn Stream<Item = Result<(f64, bool, String), E>> + Send>>;
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<(String, String), E>> + Send>>;

/// What the feeds need from the engine (wired to the Docker adapter by the caller).
pub trait FeedSource: Send + Sync + 'static {
    /// The engine's own error (a failed stream is followed again; its text is not shown).
    type Error: std::error::Error + Send + Sync + 'static;
    fn list(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<ContainerRow>, Self::Error>> + Send;
    /// Lines of a container as (time, stderr, text), from `since` or its last `tail`.
    fn follow(&self, id: &str, since: i64, tail: Option<u64>) -> LineStream<Self::Error>;
    /// Lifecycle events as (service, description).
    fn events(&self) -> EventStream<Self::Error>;
}

/// Lines a container shows when the console first attaches to it.
pub const FIRST_TAIL: u64 = 200;
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
const RELIST_EVERY: Duration = Duration::from_secs(5);

/// Follows the logs of every running container of the project until `stop`.
pub async fn run_logs<S: FeedSource>(
    src: Arc<S>,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let (line_tx, mut line_rx) = mpsc::channel::<LogLine>(4096);
    // Container id -> (follower, time of the last line seen).
    let mut followed: HashMap<String, tokio::task::JoinHandle<f64>> = HashMap::new();
    let mut last_seen: HashMap<String, f64> = HashMap::new();
    let mut events = src.events();
    let mut relist = tokio::time::interval(RELIST_EVERY);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut batch: Vec<LogLine> = Vec::new();
    loop {
        let mut attach = false;
        tokio::select! {
            _ = stop.changed() => break,
            _ = relist.tick() => attach = true,
            ev = events.next() => match ev {
                Some(Ok(_)) => attach = true,
                // The stream ended or failed: re-listing every few seconds still works.
                _ => events = Box::pin(futures_util::stream::pending()),
            },
            Some(l) = line_rx.recv() => {
                batch.push(l);
                while let Ok(more) = line_rx.try_recv() {
                    batch.push(more);
                }
            }
            _ = flush.tick() => {
                if !batch.is_empty() && tx.send(Update::Logs(std::mem::take(&mut batch))).await.is_err() {
                    break;
                }
            }
        }
        if !attach {
            continue;
        }
        let Ok(rows) = src.list().await else { continue };
        followed.retain(|id, h| {
            if h.is_finished() {
                // The follower ended with the container; remember where it stopped.
                if let Some(t) = futures_util::FutureExt::now_or_never(h).and_then(Result::ok) {
                    last_seen.insert(id.clone(), t);
                }
                false
            } else {
                true
            }
        });
        for r in rows.iter().filter(|r| r.state == "running") {
            if followed.contains_key(&r.id) {
                continue;
            }
            let (since, tail) = match last_seen.get(&r.id) {
                // Seen before: everything after the last line (whole seconds, so the
                // line at that second may repeat once; dropped below).
                Some(t) => (t.floor() as i64, None),
                None => (0, Some(FIRST_TAIL)),
            };
            let after = last_seen.get(&r.id).copied().unwrap_or(0.0);
            let mut stream = src.follow(&r.id, since, tail);
            let ltx = line_tx.clone();
            let (service, container, replica) = (r.service.clone(), r.name.clone(), r.number);
            followed.insert(
                r.id.clone(),
                tokio::spawn(async move {
                    let mut last = after;
                    while let Some(Ok((t, stderr, text))) = stream.next().await {
                        if t != 0.0 && t <= after {
                            continue;
                        }
                        last = last.max(t);
                        for piece in text.trim_end_matches(['\n', '\r']).split('\n') {
                            let l = LogLine {
                                time: t,
                                service: service.clone(),
                                container: container.clone(),
                                stderr,
                                text: piece.trim_end_matches('\r').to_string(),
                                replica,
                            };
                            if ltx.send(l).await.is_err() {
                                return last;
                            }
                        }
                    }
                    last
                }),
            );
        }
    }
    for h in followed.values() {
        h.abort();
    }
}

/// Engine lifecycle events as Events-view lines, until `stop`.
pub async fn run_events<S: FeedSource>(
    src: Arc<S>,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = src.events();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            ev = events.next() => match ev {
                Some(Ok((service, text))) => {
                    let line = EventLine { time: now_secs(), source: "engine".into(), service, text };
                    if tx.send(Update::Events(vec![line])).await.is_err() {
                        break;
                    }
                }
                _ => {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    events = src.events();
                }
            },
        }
    }
}

/// New journal entries (the supervisor's and the console's actions) as they are written,
/// until `stop`: all of it first, then each second what was added.
pub async fn run_journal(
    journal: PathBuf,
    tx: mpsc::Sender<Update>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tail = JournalTail::new(journal);
    // All of it: the supervisor's restarts count in RST however old (the journal is
    // bounded by `journal_max_entries`); the hub keeps the newest as events.
    let first = tail.read_new();
    let _ = tx.send(Update::Journal(first)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let new = tail.read_new();
                if !new.is_empty() && tx.send(Update::Journal(new)).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Reads the journal file from where it was last read; starts over when it was rotated.
pub struct JournalTail {
    path: PathBuf,
    offset: u64,
    inode: u64,
}

impl JournalTail {
    pub fn new(path: PathBuf) -> JournalTail {
        JournalTail {
            path,
            offset: 0,
            inode: 0,
        }
    }

    pub fn read_new(&mut self) -> Vec<JournalEntry> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        use std::os::unix::fs::MetadataExt;
        let (len, inode) = f.metadata().map(|m| (m.len(), m.ino())).unwrap_or((0, 0));
        if len < self.offset || inode != self.inode {
            self.offset = 0;
            self.inode = inode;
        }
        if len == self.offset || f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut text = String::new();
        if f.read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        // Only whole lines: a line being written is read next time.
        let whole = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        self.offset += whole as u64;
        text[..whole]
            .lines()
            .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_tail_reads_whole_new_lines_and_survives_rotation() {
        let dir = std::env::temp_dir().join(format!("osmen-tail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("journal.jsonl");
        let entry = |r: &str| {
            format!(
                "{{\"time\":\"2026-11-29T04:00:00.000Z\",\"project\":\"p\",\"service\":\"api\",\
                 \"action\":\"start\",\"reason\":\"{r}\"}}\n"
            )
        };
        std::fs::write(&p, entry("a") + &entry("b")[..20]).unwrap();
        let mut t = JournalTail::new(p.clone());
        let got = t.read_new();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_line().text, "start: a");
        assert_eq!(got[0].event_line().time, 1_795_924_800.0);
        std::fs::write(&p, entry("a") + &entry("b")).unwrap();
        assert_eq!(t.read_new()[0].reason, "b");
        assert!(t.read_new().is_empty());
        std::fs::write(&p, entry("c")).unwrap();
        assert_eq!(t.read_new()[0].reason, "c");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
