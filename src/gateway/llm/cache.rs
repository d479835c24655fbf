//! The small response cache in front of the providers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Completion;

/// A small LRU of completions keyed by provider, model and prompt.
/// Key -> (completion, when it was stored), and the keys from least to most recently used.
type CacheMap = (HashMap<String, (Completion, Instant)>, VecDeque<String>);

pub struct Cache {
    cap: usize,
    map: Mutex<CacheMap>,
}

impl Cache {
    pub fn new(cap: usize) -> Cache {
        Cache {
            cap,
            map: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn key(provider: &str, model: &str, system: &str, user: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [provider, model, system, user] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let mut out = String::with_capacity(64);
        for b in h.finalize() {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The completion stored under `key` if it is younger than `ttl`.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<Completion> {
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (hit, at) = g.0.get(key).cloned()?;
        if at.elapsed() > ttl {
            g.0.remove(key);
            g.1.retain(|k| k != key);
            return None;
        }
        g.1.retain(|k| k != key);
        g.1.push_back(key.to_string());
        Some(hit)
    }

    pub fn put(&self, key: String, c: Completion) {
        if self.cap == 0 {
            return;
        }
        let mut g = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.insert(key.clone(), (c, Instant::now())).is_none() {
            g.1.push_back(key);
        }
        while g.1.len() > self.cap {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }
}
