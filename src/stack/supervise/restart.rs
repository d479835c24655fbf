//! The restart policy's arithmetic: exponential backoff and the crash-loop tracker.

use super::*;

/// The delay before restart number `attempt` (1-based): initial, 2x, 4x... up to `max`.
pub fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    initial.saturating_mul(factor).min(max)
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Restart it; this is attempt N inside the window.
    Restart(u32),
    /// N failures inside the window: hold it.
    CrashLoop(u32),
    /// Already held.
    Held,
}

/// Counts failures per container inside a sliding window. Pure, so it is tested alone.
#[derive(Debug)]
pub struct RestartTracker {
    limit: u32,
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
    held: BTreeSet<String>,
}

impl RestartTracker {
    pub fn new(limit: u32, window: Duration) -> Self {
        RestartTracker {
            limit: limit.max(1),
            window,
            failures: HashMap::new(),
            held: BTreeSet::new(),
        }
    }

    pub fn failure(&mut self, key: &str, now: Instant) -> Verdict {
        if self.held.contains(key) {
            return Verdict::Held;
        }
        let q = self.failures.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        let n = q.len() as u32;
        if n >= self.limit {
            self.held.insert(key.to_string());
            Verdict::CrashLoop(n)
        } else {
            Verdict::Restart(n)
        }
    }

    pub fn is_held(&self, key: &str) -> bool {
        self.held.contains(key)
    }

    /// Lifts a hold and forgets the failures; true if the key was held.
    pub fn release(&mut self, key: &str) -> bool {
        let held = self.held.remove(key);
        if held {
            self.failures.remove(key);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), s(60), 1), s(1));
        assert_eq!(backoff(s(1), s(60), 2), s(2));
        assert_eq!(backoff(s(1), s(60), 4), s(8));
        assert_eq!(backoff(s(1), s(60), 10), s(60));
        assert_eq!(backoff(s(1), s(60), 1000), s(60));
    }

    #[test]
    fn crash_loop_inside_window_only() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(3, Duration::from_secs(60));
        assert_eq!(t.failure("a#1", t0), Verdict::Restart(1));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(30)),
            Verdict::Restart(2)
        );
        // The first failure leaves the window: still only two inside it.
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(61)),
            Verdict::Restart(2)
        );
        assert_eq!(t.failure("b#1", t0), Verdict::Restart(1));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(62)),
            Verdict::CrashLoop(3)
        );
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(64)),
            Verdict::Held
        );
        assert!(t.is_held("a#1") && !t.is_held("b#1"));
        // Only a held key is released; the failures of others are kept.
        assert!(!t.release("b#1"));
        assert_eq!(
            t.failure("b#1", t0 + Duration::from_secs(1)),
            Verdict::Restart(2)
        );
        assert!(t.release("a#1"));
        assert_eq!(
            t.failure("a#1", t0 + Duration::from_secs(65)),
            Verdict::Restart(1)
        );
    }
}
