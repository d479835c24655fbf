//! The gateway's note memory. Three modes, and every answer names the one it used:
//! - `qdrant-vector`: Qdrant over its REST API (`QDRANT_URL`, collection `osmen_memories`,
//!   cosine), with embeddings from Ollama `/api/embed` or OpenAI `/v1/embeddings`;
//! - `embedded-vector`: no Qdrant, but an embedding model answers: vectors kept with the
//!   notes in a JSON-lines file under `runtime/`, searched by cosine similarity;
//! - `lexical-bm25`: no embedding model answers: BM25 over the notes' words.
//!
//! The store is bounded by `[memory]` (notes, bytes per note, bytes in all). Each note's
//! words are counted once, when it is stored, so a search allocates for its answer only;
//! it runs on a blocking thread, never on the event loop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::model::gateway::MemoryLimits;

mod vector;
pub use vector::{Embedder, Qdrant, VectorError};

pub const COLLECTION: &str = "osmen_memories";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub id: u64,
    pub text: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: u64,
    pub text: String,
    pub tags: Vec<String>,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Qdrant,
    EmbeddedVector,
    Lexical,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Qdrant => "qdrant-vector",
            Mode::EmbeddedVector => "embedded-vector",
            Mode::Lexical => "lexical-bm25",
        }
    }
}

/// Why a note was not stored; the route turns each into its status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The note alone is over `memory.max_note_bytes` (413).
    #[error("{0}")]
    TooLarge(String),
    /// The store is at `memory.max_notes` or would pass `memory.max_total_bytes` (507).
    #[error("{0}")]
    Full(String),
    /// `runtime/memory.jsonl` could not be written (500).
    #[error("{0}")]
    Io(String),
    /// Qdrant refused the note (502); it is kept locally all the same.
    #[error("{0}")]
    Qdrant(vector::VectorError),
}

/// The blocking thread of a search (or of writing its answer) ended without an answer.
#[derive(Debug, thiserror::Error)]
#[error("the search task failed: {0}")]
pub struct SearchTaskFailed(#[from] tokio::task::JoinError);

/// What the store holds against its bounds, for `/health` and `/ready`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub notes: usize,
    pub bytes: usize,
    pub max_notes: usize,
    pub max_note_bytes: usize,
    pub max_total_bytes: usize,
    /// New notes are refused (507) until the operator raises a bound.
    pub full: bool,
    /// Set when the file read at start already held more than the bounds, or had lines
    /// that could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One note with its word index: the distinct words as ids into the store's vocabulary
/// with their counts, sorted by id. Built once when the note is stored, so a search reads
/// counts instead of tokenising every note again.
struct Indexed {
    note: Note,
    terms: Box<[(u32, u32)]>,
    words: u32,
}

impl Indexed {
    fn frequency(&self, term: u32) -> u32 {
        self.terms
            .binary_search_by_key(&term, |&(t, _)| t)
            .map(|i| self.terms[i].1)
            .unwrap_or(0)
    }
}

/// Every note and what BM25 needs over all of them: a vocabulary (each distinct word
/// once), its document frequencies, and the total word count.
#[derive(Default)]
struct Index {
    notes: Vec<Indexed>,
    vocab: HashMap<Box<str>, u32>,
    df: Vec<u32>,
    words: u64,
    bytes: usize,
}

/// A note's words with their counts, made before the store is locked.
struct Tokens {
    counts: HashMap<String, u32>,
    words: u32,
}

fn tokens(text: &str) -> Tokens {
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut n = 0u32;
    for w in words(text) {
        n = n.saturating_add(1);
        *counts.entry(w).or_default() += 1;
    }
    Tokens { counts, words: n }
}

/// A note's size against the bounds: the UTF-8 bytes of its text and tags.
fn note_bytes(text: &str, tags: &[String]) -> usize {
    text.len() + tags.iter().map(String::len).sum::<usize>()
}

impl Index {
    fn push(&mut self, note: Note, t: Tokens) {
        let mut terms: Vec<(u32, u32)> = Vec::with_capacity(t.counts.len());
        for (w, f) in t.counts {
            let id = match self.vocab.get(w.as_str()) {
                Some(id) => *id,
                None => {
                    let id = self.df.len() as u32;
                    self.vocab.insert(w.into_boxed_str(), id);
                    self.df.push(0);
                    id
                }
            };
            self.df[id as usize] += 1;
            terms.push((id, f));
        }
        terms.sort_unstable();
        let bytes = note_bytes(&note.text, &note.tags);
        self.words += u64::from(t.words);
        self.bytes += bytes;
        self.notes.push(Indexed {
            note,
            terms: terms.into_boxed_slice(),
            words: t.words,
        });
    }

    fn next_id(&self) -> u64 {
        self.notes.last().map(|x| x.note.id + 1).unwrap_or(1)
    }

    fn hit(&self, r: Ranked) -> Hit {
        let n = &self.notes[r.pos].note;
        Hit {
            id: n.id,
            text: n.text.clone(),
            tags: n.tags.clone(),
            score: r.score,
        }
    }

    /// BM25 (k1 = 1.2, b = 0.75) over the notes' words; best first, zero scores left out.
    /// It allocates for the query's words and the `top_k` answers only.
    fn bm25(&self, query: &str, top_k: usize) -> Vec<Hit> {
        let count = self.notes.len() as f64;
        if count == 0.0 {
            return Vec::new();
        }
        let avg = self.words as f64 / count;
        // Each query word once per occurrence, as the score sums over the query's words.
        let q: Vec<Option<(u32, f64)>> = words(query)
            .iter()
            .map(|t| {
                let id = *self.vocab.get(t.as_str())?;
                let dfi = f64::from(self.df[id as usize]);
                Some((id, ((count - dfi + 0.5) / (dfi + 0.5) + 1.0).ln()))
            })
            .collect();
        if q.iter().all(Option::is_none) {
            return Vec::new();
        }
        let mut top = TopK::new(top_k);
        for (pos, d) in self.notes.iter().enumerate() {
            let len = f64::from(d.words);
            let score: f64 = q
                .iter()
                .map(|t| {
                    let Some((id, idf)) = *t else { return 0.0 };
                    let f = f64::from(d.frequency(id));
                    if f == 0.0 {
                        return 0.0;
                    }
                    idf * f * 2.2 / (f + 1.2 * (1.0 - 0.75 + 0.75 * len / avg.max(1.0)))
                })
                .sum();
            if score > 0.0 {
                top.offer(score, pos);
            }
        }
        top.into_sorted().into_iter().map(|r| self.hit(r)).collect()
    }

    /// Cosine similarity against the notes that have a vector of the query's size; None
    /// when no note has one.
    fn nearest(&self, v: &[f32], top_k: usize) -> Option<Vec<Hit>> {
        let mut top = TopK::new(top_k);
        let mut any = false;
        for (pos, d) in self.notes.iter().enumerate() {
            if let Some(nv) = d.note.vector.as_deref().filter(|nv| nv.len() == v.len()) {
                any = true;
                top.offer(cosine(v, nv), pos);
            }
        }
        any.then(|| top.into_sorted().into_iter().map(|r| self.hit(r)).collect())
    }
}

/// Why a note of `bytes` cannot join a store of `notes` notes and `held` bytes, if it
/// cannot.
fn refuse(notes: usize, held: usize, bytes: usize, limits: &MemoryLimits) -> Option<StoreError> {
    if bytes > limits.max_note_bytes {
        return Some(StoreError::TooLarge(format!(
            "the note is {bytes} bytes (text and tags) and memory.max_note_bytes is {}: \
             split it into smaller notes, or raise memory.max_note_bytes in the gateway \
             settings (config/gateway.toml)",
            limits.max_note_bytes
        )));
    }
    if notes >= limits.max_notes {
        return Some(StoreError::Full(format!(
            "the memory store is full: it holds {} notes and memory.max_notes is {}; raise \
             memory.max_notes in the gateway settings (config/gateway.toml)",
            notes, limits.max_notes
        )));
    }
    if held + bytes > limits.max_total_bytes {
        return Some(StoreError::Full(format!(
            "the memory store is full: it holds {} bytes of notes, this note is {bytes} \
             more and memory.max_total_bytes is {}; raise memory.max_total_bytes in the \
             gateway settings (config/gateway.toml)",
            held, limits.max_total_bytes
        )));
    }
    None
}

/// A scored note by position; greater is better: the higher score, and on equal scores the
/// earlier note (the order a stable sort of every score gives).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: f64,
    pos: usize,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.pos.cmp(&self.pos))
    }
}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Ranked {}

/// The `k` best offers in O(k) memory: a min-heap whose top is the worst one kept.
struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1024) + 1),
        }
    }

    fn offer(&mut self, score: f64, pos: usize) {
        let r = Ranked { score, pos };
        if self.heap.len() < self.k {
            self.heap.push(Reverse(r));
        } else if self.heap.peek().is_some_and(|w| r > w.0) {
            self.heap.pop();
            self.heap.push(Reverse(r));
        }
    }

    fn into_sorted(self) -> Vec<Ranked> {
        // Ascending Reverse is descending Ranked: best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

/// The notes (`runtime/memory.jsonl` and an index in memory), bounded by `[memory]`.
/// The index is behind a std `RwLock` that is only ever taken on blocking threads
/// (`spawn_blocking`), never on the event loop: a search holds it to read, a store to add
/// one note, so `/health` and every other route keep answering meanwhile.
pub struct Memory {
    path: Option<PathBuf>,
    shared: Arc<Shared>,
    limits: MemoryLimits,
    /// Searches that may run at once: half the cores (one at least), so that searches
    /// never take every core from the event loop, and fewer answers are held at once.
    searches: Arc<tokio::sync::Semaphore>,
    warning: Option<String>,
    pub embedder: Option<Embedder>,
    pub qdrant: Option<Qdrant>,
}

/// The index and its counts; the counts are atomics so that the event loop can read them
/// (`/health`, the first check of a store) without taking the lock.
struct Shared {
    index: RwLock<Index>,
    notes: AtomicUsize,
    bytes: AtomicUsize,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.notes.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(|w| w.to_lowercase())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Reads the notes file line by line; a line that is not a note (not JSON, not UTF-8, cut
/// short) is skipped and counted, and the lines after it are read all the same.
fn load(path: &Path) -> (Index, usize) {
    let mut index = Index::default();
    let mut bad = 0;
    let Ok(f) = std::fs::File::open(path) else {
        return (index, bad);
    };
    for line in std::io::BufReader::new(f).split(b'\n') {
        let Ok(line) = line else {
            // A read error: the rest of the file cannot be read either.
            bad += 1;
            break;
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Note>(&line) {
            Ok(note) => {
                let t = tokens(&note.text);
                index.push(note, t);
            }
            Err(_) => bad += 1,
        }
    }
    (index, bad)
}

impl Memory {
    /// Opens (or starts) the local store at `path`; None keeps notes in memory only.
    /// A file that already holds more than `limits` is loaded whole (nothing is dropped):
    /// searches see every note, new notes get 507, and [`Memory::usage`] says why.
    pub fn open(
        path: Option<PathBuf>,
        limits: MemoryLimits,
        embedder: Option<Embedder>,
        qdrant: Option<Qdrant>,
    ) -> Memory {
        let (index, bad) = path.as_deref().map(load).unwrap_or_default();
        let mut warning = Vec::new();
        // The file's name only: the warning is on the unauthenticated /health.
        let shown = path
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if bad > 0 {
            warning.push(format!(
                "{shown}: {bad} lines are not notes and were skipped (they stay in the file)"
            ));
        }
        if index.notes.len() > limits.max_notes || index.bytes > limits.max_total_bytes {
            warning.push(format!(
                "{shown} holds {} notes of {} bytes, more than memory.max_notes = {} or \
                 memory.max_total_bytes = {}: every note was loaded and is searched, new \
                 notes are refused (507) until the bounds are raised",
                index.notes.len(),
                index.bytes,
                limits.max_notes,
                limits.max_total_bytes
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let searches = (cores / 2).max(1);
        Memory {
            path,
            shared: Arc::new(Shared {
                notes: AtomicUsize::new(index.notes.len()),
                bytes: AtomicUsize::new(index.bytes),
                index: RwLock::new(index),
            }),
            limits,
            searches: Arc::new(tokio::sync::Semaphore::new(searches)),
            warning: (!warning.is_empty()).then(|| warning.join("; ")),
            embedder,
            qdrant,
        }
    }

    /// What the store holds against its bounds (two atomic loads, no lock).
    pub fn usage(&self) -> Usage {
        let (notes, bytes) = self.shared.counts();
        let l = self.limits;
        Usage {
            notes,
            bytes,
            max_notes: l.max_notes,
            max_note_bytes: l.max_note_bytes,
            max_total_bytes: l.max_total_bytes,
            full: notes >= l.max_notes || bytes >= l.max_total_bytes,
            warning: self.warning.clone(),
        }
    }

    /// Stores a note: always locally, and in Qdrant when one is configured and an
    /// embedding could be made. A note over the bounds is refused before anything is
    /// embedded or written.
    pub async fn store(&self, text: &str, tags: Vec<String>) -> Result<(Note, Mode), StoreError> {
        let bytes = note_bytes(text, &tags);
        let limits = self.limits;
        // A first check, so that a refused note costs no embedding call; the one that
        // counts is made again under the write lock.
        let (notes, held) = self.shared.counts();
        if let Some(e) = refuse(notes, held, bytes, &limits) {
            return Err(e);
        }
        let vector = match &self.embedder {
            Some(e) => e.embed(text).await.ok(),
            None => None,
        };
        let for_qdrant = self.qdrant.as_ref().and(vector.clone());
        let has_vector = vector.is_some();
        let (shared, path, text) = (self.shared.clone(), self.path.clone(), text.to_string());
        let note = tokio::task::spawn_blocking(move || {
            let t = tokens(&text);
            let mut i = shared.write();
            if let Some(e) = refuse(i.notes.len(), i.bytes, bytes, &limits) {
                return Err(e);
            }
            let note = Note {
                id: i.next_id(),
                text,
                tags,
                vector,
            };
            if let Some(p) = &path {
                append(p, &note)
                    .map_err(|e| StoreError::Io(format!("cannot write {}: {e}", p.display())))?;
            }
            let out = Note {
                vector: None,
                ..note.clone()
            };
            i.push(note, t);
            shared.notes.store(i.notes.len(), Ordering::Release);
            shared.bytes.store(i.bytes, Ordering::Release);
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Io(format!("the store's task failed: {e}")))??;
        let mode = match (&self.qdrant, for_qdrant) {
            (Some(q), Some(v)) => {
                q.upsert(&note, &v).await.map_err(StoreError::Qdrant)?;
                Mode::Qdrant
            }
            _ if has_vector => Mode::EmbeddedVector,
            _ => Mode::Lexical,
        };
        Ok((note, mode))
    }

    /// Searches in the best mode available now; the second value says which, the third
    /// why a better one was not used. The local search runs on a blocking thread.
    pub async fn search(&self, query: &str, k: usize) -> (Vec<Hit>, Mode, Option<String>) {
        let mut why = None;
        let qv = match &self.embedder {
            Some(e) => match e.embed(query).await {
                Ok(v) => Some(v),
                Err(m) => {
                    why = Some(m.to_string());
                    None
                }
            },
            None => None,
        };
        if let (Some(q), Some(v)) = (&self.qdrant, &qv) {
            match q.search(v, k).await {
                Ok(h) => return (h, Mode::Qdrant, None),
                Err(m) => why = Some(m.to_string()),
            }
        }
        let (shared, query) = (self.shared.clone(), query.to_string());
        let found = self
            .off_loop(move || {
                let i = shared.read();
                if let Some(hits) = qv.as_deref().and_then(|v| i.nearest(v, k)) {
                    return (hits, Mode::EmbeddedVector);
                }
                (i.bm25(&query, k), Mode::Lexical)
            })
            .await;
        match found {
            Ok((hits, mode)) => (hits, mode, why),
            Err(e) => (Vec::new(), Mode::Lexical, Some(e.to_string())),
        }
    }

    /// Runs `work` on a blocking thread under one of the searches' permits: the search
    /// itself, and writing out its answer (up to top_k whole notes).
    pub async fn off_loop<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SearchTaskFailed> {
        // The semaphore is never closed, so this waits for a permit and never fails.
        let permit = self.searches.clone().acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(SearchTaskFailed)
    }

    /// BM25 over the local notes. It blocks on the store's lock: call it off the event
    /// loop (the async [`Memory::search`] does).
    pub fn bm25(&self, query: &str, top_k: usize) -> Vec<Hit> {
        self.shared.read().bm25(query, top_k)
    }
}

fn append(p: &Path, note: &Note) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut line = serde_json::to_string(note).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(p)?;
    // A last line cut short (a crash mid-write) must not swallow this one.
    if f.metadata()?.len() > 0 {
        let mut last = [0u8];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests;
