//! The console's own state and `update`: keys become actions, actions change the state
//! and may ask for a `Command`. No I/O here, so every key can be unit-tested.
//!
//! The types live here; `rows` picks each view's rows from the snapshot, `update` applies
//! the navigation, filter and stack actions, `row_actions` those on the selected row,
//! `keys` routes a key by mode, and `detail` builds the whole-text popup.

mod detail;
mod keys;
mod row_actions;
mod rows;
mod update;

pub use keys::on_key;
pub use row_actions::is_shown;
pub use rows::{
    agent_rows, event_rows, log_rows, model_rows, row_count, service_rows, suggestion_rows,
};
pub use update::{quit_warning, update};

use super::action::View;
use crate::model::console::Command;

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    /// Typing a filter for the current view's list.
    Filter,
    /// Typing a search in Logs.
    Search,
    /// Typing a log line filter.
    LogFilter,
    Confirm(Command),
    /// Quitting would stop the gateway that served API clients recently: the text says so.
    ConfirmQuit(String),
    Help,
    /// A scrollable popup with a whole text (an event, a row, a log line, the status).
    Detail(Detail),
    /// The inspect pane of this container (its text comes back in the snapshot).
    Inspect {
        container: String,
        scroll: usize,
    },
}

/// The whole text of what Enter opened, cut into nothing: the popup wraps and scrolls.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    pub title: String,
    pub lines: Vec<String>,
    /// First wrapped row shown.
    pub scroll: usize,
}

/// The order of the Services rows (`o` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceSort {
    #[default]
    Name,
    Cpu,
    Memory,
}

impl ServiceSort {
    pub fn next(self) -> ServiceSort {
        match self {
            ServiceSort::Name => ServiceSort::Cpu,
            ServiceSort::Cpu => ServiceSort::Memory,
            ServiceSort::Memory => ServiceSort::Name,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ServiceSort::Name => "by name",
            ServiceSort::Cpu => "by CPU",
            ServiceSort::Memory => "by memory",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogsState {
    pub follow: bool,
    pub wrap: bool,
    pub timestamps: bool,
    pub search: String,
    pub filter: String,
    /// None: every service merged.
    pub service: Option<String>,
    /// Characters scrolled off to the left (wrap off).
    pub hscroll: usize,
}

impl Default for LogsState {
    fn default() -> Self {
        LogsState {
            follow: true,
            wrap: false,
            timestamps: false,
            search: String::new(),
            filter: String::new(),
            service: None,
            hscroll: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UiState {
    pub view: View,
    pub mode: Mode,
    /// Selected row per view.
    pub selected: [usize; 7],
    /// List filter per view.
    pub filters: [String; 7],
    pub read_only: bool,
    pub ascii: bool,
    pub show_dependencies: bool,
    /// Agents view: each replica's own row under its group's merged row.
    pub show_replicas: bool,
    pub logs: LogsState,
    /// A one-line answer to the last key (refusals, copies), shown in the status line.
    pub message: Option<String>,
    /// How many answers the engine side had given when the last key was pressed
    /// (`Activity::results`): a newer answer replaces `message` in the status line.
    pub result_seen: u64,
    pub sort: ServiceSort,
    /// Text to put on the clipboard (OSC 52) at the next draw.
    pub copy: Option<String>,
    /// Rows of the list area at the last draw (for page up/down).
    pub page: usize,
    pub quit: bool,
    /// The sampling period (ms) last asked for, and the one in force when it was: a second
    /// `[` before the first took effect steps on from the asked one.
    pub sampling_asked: Option<(u64, u64)>,
}

impl UiState {
    pub fn new(read_only: bool, ascii: bool) -> UiState {
        UiState {
            view: View::Overview,
            mode: Mode::Normal,
            selected: [0; 7],
            filters: Default::default(),
            read_only,
            ascii,
            show_dependencies: false,
            show_replicas: false,
            logs: LogsState::default(),
            message: None,
            result_seen: 0,
            sort: ServiceSort::Name,
            copy: None,
            page: 10,
            quit: false,
            sampling_asked: None,
        }
    }

    pub fn filter(&self) -> &str {
        &self.filters[self.view.index()]
    }

    pub fn selected(&self) -> usize {
        self.selected[self.view.index()]
    }
}

#[cfg(test)]
mod tests;
