//! One supervisor action, written to the journal before it is carried out.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// RFC 3339 UTC time the action was decided.
    pub time: String,
    pub project: String,
    /// The service acted on; empty for project-wide actions (networks, volumes).
    pub service: String,
    /// A short verb: create, start, recreate, stop, remove, restart, crash-loop, adopt...
    pub action: String,
    pub reason: String,
}

impl JournalEntry {
    /// The entry as an Events-view line.
    pub fn event_line(&self) -> super::console::EventLine {
        super::console::EventLine {
            time: super::units::parse_rfc3339_utc(&self.time).unwrap_or(0.0),
            source: "journal".into(),
            service: self.service.clone(),
            text: format!("{}: {}", self.action, self.reason),
        }
    }
}
