//! The console's vocabulary, shared by the keymap and the state: the views a key can go to
//! and the actions a key asks for. It imports nothing of the console, so the keymap (keys
//! to actions) and the state (actions to changes) both use it without using each other.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Overview,
    Services,
    Agents,
    Gpu,
    Logs,
    Suggestions,
    Events,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Services,
        View::Agents,
        View::Gpu,
        View::Logs,
        View::Suggestions,
        View::Events,
    ];

    pub fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Services => "Services",
            View::Agents => "Agents",
            View::Gpu => "GPU",
            View::Logs => "Logs",
            View::Suggestions => "Suggestions",
            View::Events => "Events",
        }
    }

    pub fn key_name(self) -> &'static str {
        match self {
            View::Overview => "view_overview",
            View::Services => "view_services",
            View::Agents => "view_agents",
            View::Gpu => "view_gpu",
            View::Logs => "view_logs",
            View::Suggestions => "view_suggestions",
            View::Events => "view_events",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    NextView,
    PrevView,
    Goto(View),
    Down,
    Up,
    Top,
    Bottom,
    PageDown,
    PageUp,
    Filter,
    SearchNext,
    SearchPrev,
    Cancel,
    Start,
    Stop,
    Restart,
    ScaleUp,
    ScaleDown,
    StackUp,
    StackDown,
    Dependencies,
    Replicas,
    Probe,
    Apply,
    Copy,
    Follow,
    Wrap,
    Timestamps,
    LogFilter,
    LogService,
    /// The whole text of the selected row (event, service, agent, suggestion, log line).
    Open,
    /// The whole text of the status line.
    ShowStatus,
    /// A shell in the selected container.
    Shell,
    /// The inspect pane of the selected container.
    Inspect,
    /// Services: the next order (name, CPU, memory).
    Sort,
    /// Services: the selected service's logs.
    OpenLogs,
    ScrollLeft,
    ScrollRight,
    /// GPU: load the selected model with Ollama's keep-alive.
    Warm,
    /// GPU: unload the selected model.
    Unload,
    /// GPU: keep the selected model loaded.
    Pin,
    /// Sample more often (a shorter period).
    SampleFaster,
    /// Sample less often (a longer period).
    SampleSlower,
    /// Overview: show the selected fleet host's stack in every view (its first line,
    /// this machine's, switches back).
    SwitchHost,
}
