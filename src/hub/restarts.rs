//! The supervisor's restarts per container, counted from the journal: RST shows the
//! engine's restarts plus these.

/// Container name -> times (seconds since the epoch) the supervisor restarted it; bounded.
#[derive(Default)]
pub struct SupervisorRestarts {
    times: std::collections::BTreeMap<String, std::collections::VecDeque<f64>>,
}

impl SupervisorRestarts {
    /// At most this many containers, and this many restarts each, are remembered.
    pub const CONTAINERS: usize = 512;
    pub const PER_CONTAINER: usize = 1000;

    /// Notes a journal entry; only the supervisor's own restarts count (`restart` with
    /// `NAME: after backoff`), not an operator's restart.
    pub fn note(&mut self, e: &crate::model::journal::JournalEntry) {
        if e.action != "restart" {
            return;
        }
        let Some((name, why)) = e.reason.split_once(": ") else {
            return;
        };
        if name == "operator asked" || !why.starts_with("after backoff") {
            return;
        }
        let Some(t) = crate::model::units::parse_rfc3339_utc(&e.time) else {
            return;
        };
        if !self.times.contains_key(name) && self.times.len() >= Self::CONTAINERS {
            self.times.pop_first();
        }
        let v = self.times.entry(name.to_string()).or_default();
        if v.len() >= Self::PER_CONTAINER {
            v.pop_front();
        }
        v.push_back(t);
    }

    /// Restarts of `container` since it was created (`created`, RFC 3339; all when
    /// unknown).
    pub fn since(&self, container: &str, created: &str) -> i64 {
        let from = crate::model::units::parse_rfc3339_utc(created).unwrap_or(0.0);
        self.times
            .get(container)
            .map(|v| v.iter().filter(|t| **t >= from).count() as i64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_restarts_are_bounded() {
        use crate::model::journal::JournalEntry;
        let mut r = SupervisorRestarts::default();
        for i in 0..(SupervisorRestarts::CONTAINERS + 10) {
            for _ in 0..3 {
                r.note(&JournalEntry {
                    time: "2026-11-29T03:10:00Z".into(),
                    project: "p".into(),
                    service: "s".into(),
                    action: "restart".into(),
                    reason: format!("c{i}: after backoff"),
                });
            }
        }
        assert_eq!(r.times.len(), SupervisorRestarts::CONTAINERS);
        let one = JournalEntry {
            time: "2026-11-29T03:10:00Z".into(),
            project: "p".into(),
            service: "s".into(),
            action: "restart".into(),
            reason: "busy: after backoff".into(),
        };
        for _ in 0..(SupervisorRestarts::PER_CONTAINER + 5) {
            r.note(&one);
        }
        assert_eq!(
            r.since("busy", ""),
            SupervisorRestarts::PER_CONTAINER as i64
        );
    }
}
