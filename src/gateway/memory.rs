//! The gateway's note memory when no Qdrant is configured: notes appended to a JSON-lines
//! file under `runtime/`, searched with BM25 over their words. The search answer names
//! its mode ("lexical-bm25") so nobody mistakes it for vector search.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub id: u64,
    pub text: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

pub struct Memory {
    path: Option<PathBuf>,
    notes: Mutex<Vec<Note>>,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 1)
        .map(|w| w.to_lowercase())
        .collect()
}

impl Memory {
    /// Opens (or starts) the store at `path`; None keeps notes in memory only.
    pub fn open(path: Option<PathBuf>) -> Memory {
        let notes = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        Memory {
            path,
            notes: Mutex::new(notes),
        }
    }

    pub fn store(&self, text: &str, tags: Vec<String>) -> std::io::Result<Note> {
        let mut n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let note = Note {
            id: n.last().map(|x| x.id + 1).unwrap_or(1),
            text: text.to_string(),
            tags,
        };
        if let Some(p) = &self.path {
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            writeln!(
                f,
                "{}",
                serde_json::to_string(&note).map_err(std::io::Error::other)?
            )?;
        }
        n.push(note.clone());
        Ok(note)
    }

    /// BM25 (k1 = 1.2, b = 0.75) over the notes' words; best first, zero scores left out.
    pub fn search(&self, query: &str, top_k: usize) -> Vec<(Note, f64)> {
        let n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let docs: Vec<Vec<String>> = n.iter().map(|d| words(&d.text)).collect();
        let count = docs.len() as f64;
        if count == 0.0 {
            return Vec::new();
        }
        let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / count;
        let mut df: HashMap<&str, f64> = HashMap::new();
        for d in &docs {
            let mut seen: Vec<&str> = d.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for w in seen {
                *df.entry(w).or_default() += 1.0;
            }
        }
        let q = words(query);
        let mut scored: Vec<(Note, f64)> = n
            .iter()
            .zip(&docs)
            .map(|(note, d)| {
                let len = d.len() as f64;
                let score: f64 = q
                    .iter()
                    .map(|t| {
                        let f = d.iter().filter(|w| *w == t).count() as f64;
                        if f == 0.0 {
                            return 0.0;
                        }
                        let dfi = df.get(t.as_str()).copied().unwrap_or(0.0);
                        let idf = ((count - dfi + 0.5) / (dfi + 0.5) + 1.0).ln();
                        idf * f * 2.2 / (f + 1.2 * (1.0 - 0.75 + 0.75 * len / avg.max(1.0)))
                    })
                    .sum();
                (note.clone(), score)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(top_k);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_ranks_and_persists() {
        let p = std::env::temp_dir().join(format!("osmen-mem-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let m = Memory::open(Some(p.clone()));
        m.store("Postgres backups run nightly at 02:00", vec![])
            .unwrap();
        m.store("Redis is a cache; eviction policy allkeys-lru", vec![])
            .unwrap();
        m.store("The backup of qdrant snapshots is weekly", vec![])
            .unwrap();
        let r = m.search("when do postgres backups run", 2);
        assert_eq!(r[0].0.id, 1);
        assert!(m.search("nothing matches zzz", 3).is_empty());
        let again = Memory::open(Some(p.clone()));
        assert_eq!(again.search("redis eviction", 1)[0].0.id, 2);
        let _ = std::fs::remove_file(&p);
    }
}
