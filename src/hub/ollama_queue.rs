//! Queue pressure on Ollama: the gateway's calls in flight to it (the Prometheus
//! collector reads them from `/metrics`) joined with how many it serves at once (the
//! Ollama service's `OLLAMA_NUM_PARALLEL`, else Ollama's default), and since when more
//! are in flight than it serves. Kept here across the Ollama collector's samples, which
//! replace `Snapshot.ollama` whole.

use crate::model::ollama::{Ollama, OllamaQueue};

/// Ollama's default when `OLLAMA_NUM_PARALLEL` is unset: 1 request per model at a time.
/// Ollama's source, `envconfig/config.go`: `NumParallel = Uint("OLLAMA_NUM_PARALLEL", 1)`
/// (its FAQ: "The default is 1"; before 0.12 it chose 4 or 1 by the memory available).
pub const OLLAMA_DEFAULT_NUM_PARALLEL: u32 = 1;

/// Where `parallel` comes from, as `OllamaQueue::parallel_from` writes it.
pub const FROM_ENV: &str = "OLLAMA_NUM_PARALLEL";
pub const FROM_DEFAULT: &str = "Ollama's default";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueJoin {
    /// The gateways' calls in flight to Ollama; None while no gateway exposes them.
    pub in_flight: Option<u64>,
    /// The Ollama service's `OLLAMA_NUM_PARALLEL`, when it sets one.
    pub configured: Option<u32>,
    /// Since when (seconds since the epoch) more are in flight than Ollama serves.
    pub waiting_since: Option<f64>,
}

impl QueueJoin {
    /// The queue at `now` onto `ollama` (None while the calls in flight are unknown);
    /// starts or clears the wait.
    pub fn join(&mut self, ollama: Option<&mut Ollama>, now: f64) {
        let (parallel, from) = match self.configured {
            Some(n) => (n, FROM_ENV),
            None => (OLLAMA_DEFAULT_NUM_PARALLEL, FROM_DEFAULT),
        };
        let queue = self.in_flight.map(|in_flight| {
            if in_flight > u64::from(parallel) {
                self.waiting_since.get_or_insert(now);
            } else {
                self.waiting_since = None;
            }
            OllamaQueue {
                in_flight,
                parallel,
                parallel_from: from.to_string(),
                waiting_since: self.waiting_since,
            }
        });
        if queue.is_none() {
            self.waiting_since = None;
        }
        if let Some(o) = ollama {
            o.queue = queue;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_starts_when_more_are_in_flight_than_ollama_serves_and_clears_after() {
        let mut j = QueueJoin {
            configured: Some(2),
            ..Default::default()
        };
        let mut o = Ollama::default();
        // (time, in flight, waiting since)
        for (t, in_flight, since) in [
            (100.0, None, None),
            (101.0, Some(2), None),
            (102.0, Some(5), Some(102.0)),
            (103.0, Some(3), Some(102.0)),
            (104.0, Some(2), None),
            (105.0, Some(4), Some(105.0)),
            (106.0, None, None),
        ] {
            j.in_flight = in_flight;
            j.join(Some(&mut o), t);
            assert_eq!(o.queue.as_ref().map(|q| q.in_flight), in_flight, "at {t}");
            assert_eq!(
                o.queue.as_ref().and_then(|q| q.waiting_since),
                since,
                "at {t}"
            );
        }
    }

    #[test]
    fn without_the_variable_ollamas_default_is_named() {
        let mut j = QueueJoin {
            in_flight: Some(2),
            ..Default::default()
        };
        let mut o = Ollama::default();
        j.join(Some(&mut o), 1.0);
        let q = o.queue.unwrap();
        assert_eq!((q.parallel, q.parallel_from.as_str()), (1, FROM_DEFAULT));
        assert_eq!(q.waiting_since, Some(1.0));
    }
}
