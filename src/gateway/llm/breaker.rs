//! The circuit breaker in front of each provider.

use std::time::Duration;

/// Consecutive outages (unreachable, timeout, 429, 5xx, unreadable) that open the circuit
/// unless the provider's `breaker_failures` says otherwise.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open circuit refuses calls before one trial call (`breaker_cooldown`).
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

/// A circuit breaker: closed (calls go through), open (calls fail at once, so agents fall
/// back to their next provider without waiting out timeouts), half-open (one trial call
/// decides: success closes it, an outage opens it again).
#[derive(Debug, Clone, PartialEq)]
pub enum Breaker {
    Closed {
        failures: u32,
    },
    Open {
        since: std::time::Instant,
        until: std::time::Instant,
        last_error: String,
    },
    HalfOpen {
        trial: bool,
        last_error: String,
    },
}

impl Breaker {
    /// 0 closed, 1 half-open, 2 open (the gauge's value).
    pub fn code(&self) -> u8 {
        match self {
            Breaker::Closed { .. } => 0,
            Breaker::HalfOpen { .. } => 1,
            Breaker::Open { .. } => 2,
        }
    }

    /// May a call go out now? Err(seconds until the next trial) while open.
    pub fn admit(&mut self, now: std::time::Instant) -> Result<(), f64> {
        match self {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open {
                until, last_error, ..
            } => {
                if now >= *until {
                    *self = Breaker::HalfOpen {
                        trial: true,
                        last_error: std::mem::take(last_error),
                    };
                    Ok(())
                } else {
                    Err(until.duration_since(now).as_secs_f64())
                }
            }
            // One trial at a time; the others fail fast until it decides.
            Breaker::HalfOpen { trial, .. } => {
                if *trial {
                    Err(1.0)
                } else {
                    *trial = true;
                    Ok(())
                }
            }
        }
    }

    /// The outcome of an admitted call: `Some(error)` for an outage, None otherwise.
    pub fn record(
        &mut self,
        outage: Option<&str>,
        now: std::time::Instant,
        threshold: u32,
        cooldown: Duration,
    ) {
        match (outage, &*self) {
            (None, _) => *self = Breaker::Closed { failures: 0 },
            (Some(_), Breaker::Closed { failures }) if failures + 1 < threshold.max(1) => {
                *self = Breaker::Closed {
                    failures: failures + 1,
                };
            }
            (Some(e), _) => {
                *self = Breaker::Open {
                    since: now,
                    until: now + cooldown,
                    last_error: e.to_string(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn opens_after_the_threshold_fails_fast_then_one_trial_decides() {
        let t0 = Instant::now();
        let cool = Duration::from_secs(30);
        let mut b = Breaker::Closed { failures: 0 };
        for i in 0..4 {
            assert!(b.admit(t0).is_ok());
            b.record(Some("down"), t0, 5, cool);
            assert_eq!(b, Breaker::Closed { failures: i + 1 });
        }
        // A success in between starts the count again.
        b.record(None, t0, 5, cool);
        for _ in 0..5 {
            assert!(b.admit(t0).is_ok());
            b.record(Some("ollama: cannot reach"), t0, 5, cool);
        }
        assert_eq!(b.code(), 2);
        let wait = b.admit(t0 + Duration::from_secs(10)).unwrap_err();
        assert!((wait - 20.0).abs() < 0.01, "{wait}");
        // After the cooldown: one trial goes out, a second caller fails fast meanwhile.
        let later = t0 + cool;
        assert!(b.admit(later).is_ok());
        assert_eq!(b.code(), 1);
        assert!(b.admit(later).is_err());
        // The trial fails: open again for a whole cooldown.
        b.record(Some("still down"), later, 5, cool);
        assert_eq!(b.code(), 2);
        assert!(b.admit(later + Duration::from_secs(29)).is_err());
        // The next trial succeeds: closed.
        assert!(b.admit(later + cool).is_ok());
        b.record(None, later + cool, 5, cool);
        assert_eq!(b, Breaker::Closed { failures: 0 });
    }
}
