//! The sampling clock the operator can change while osmen runs (`[` and `]` in the
//! console): one period shared by the collectors, each ticking at its own multiple of it
//! (the GPU every 2 periods, Ollama every 10), and starting afresh at once when it changes,
//! so a shorter period takes effect now, not after the old one.

use std::time::Duration;

use tokio::sync::watch;

/// The shortest and longest sampling period the console offers.
pub const MIN_PERIOD: Duration = Duration::from_millis(500);
pub const MAX_PERIOD: Duration = Duration::from_secs(10);

pub struct Ticker {
    period: watch::Receiver<Duration>,
    factor: u32,
    floor: Duration,
    interval: tokio::time::Interval,
}

fn interval(every: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(every);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    i
}

impl Ticker {
    /// Ticks every `factor` periods, never faster than `floor`.
    pub fn new(period: watch::Receiver<Duration>, factor: u32, floor: Duration) -> Ticker {
        let every = (*period.borrow() * factor).max(floor);
        Ticker {
            period,
            factor,
            floor,
            interval: interval(every),
        }
    }

    /// A ticker whose period never changes (headless commands, tests).
    pub fn fixed(every: Duration) -> Ticker {
        Ticker::new(watch::channel(every).1, 1, Duration::ZERO)
    }

    /// The time between ticks now.
    pub fn every(&self) -> Duration {
        (*self.period.borrow() * self.factor).max(self.floor)
    }

    /// The next tick; a changed period restarts the clock and ticks at once.
    pub async fn tick(&mut self) {
        tokio::select! {
            _ = self.interval.tick() => {}
            r = self.period.changed() => {
                if r.is_ok() {
                    self.interval = interval(self.every());
                    // An interval's first tick is immediate: the change is sampled now.
                    self.interval.tick().await;
                } else {
                    // The period's owner is gone: the old clock goes on.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_shorter_period_takes_effect_at_once() {
        let (tx, rx) = watch::channel(Duration::from_secs(10));
        let mut t = Ticker::new(rx, 2, Duration::ZERO);
        assert_eq!(t.every(), Duration::from_secs(20));
        t.tick().await; // the first tick is immediate
        let start = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move {
            t.tick().await;
            t.tick().await;
            (tokio::time::Instant::now(), t.every())
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Duration::from_millis(500)).unwrap();
        let (at, every) = waiter.await.unwrap();
        assert_eq!(every, Duration::from_secs(1));
        // Ticked at the change (1 s), then one new period later (2 s), not after 20 s.
        assert_eq!(at - start, Duration::from_secs(2));
    }
}
