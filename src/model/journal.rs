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
