//! The console's own state and `update`: keys become actions, actions change the state
//! and may ask for a `Command`. No I/O here, so every key can be unit-tested.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::{Action, Keymap};
use crate::model::agent::AgentRow;
use crate::model::console::{Command, LogLine};
use crate::model::snapshot::{ServiceStats, Snapshot};

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
        }
    }

    pub fn filter(&self) -> &str {
        &self.filters[self.view.index()]
    }

    pub fn selected(&self) -> usize {
        self.selected[self.view.index()]
    }
}

fn matches(filter: &str, fields: &[&str]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let f = filter.to_lowercase();
    fields.iter().any(|x| x.to_lowercase().contains(&f))
}

/// The Services rows after the filter, in display order: by name (replicas by number),
/// or the busiest first by CPU (% of the limit, else of a core) or memory.
pub fn service_rows<'a>(s: &'a Snapshot, filter: &str, sort: ServiceSort) -> Vec<&'a ServiceStats> {
    let mut v: Vec<&ServiceStats> = s
        .services
        .iter()
        .filter(|x| {
            let name = x.display_name();
            matches(filter, &[&name, &x.container, &x.state, &x.health])
        })
        .collect();
    v.sort_by(|a, b| {
        (&a.service, a.number, &a.container).cmp(&(&b.service, b.number, &b.container))
    });
    let key = |x: &ServiceStats| match sort {
        ServiceSort::Name => 0.0,
        ServiceSort::Cpu => x.cpu_limit_percent.or(x.cpu_percent).unwrap_or(-1.0),
        ServiceSort::Memory => x.memory_bytes.map(|m| m as f64).unwrap_or(-1.0),
    };
    // Stable: equal figures keep the name order.
    v.sort_by(|a, b| key(b).total_cmp(&key(a)));
    v
}

/// The Agents view's rows: every agent (a scaled gateway's merged over its replicas);
/// with `replicas`, each replica's own row follows its merged row.
pub fn agent_rows<'a>(s: &'a Snapshot, filter: &str, replicas: bool) -> Vec<&'a AgentRow> {
    let mut out = Vec::new();
    for a in s
        .agents
        .iter()
        .filter(|a| matches(filter, &[a.agent.as_str()]))
    {
        out.push(a);
        if replicas && a.replicas.is_some() {
            out.extend(
                s.replica_agents
                    .iter()
                    .filter(|r| r.group_agent.as_deref() == Some(a.agent.as_str())),
            );
        }
    }
    out
}

/// The Events rows, newest first in strict time order (the sources append at their own
/// pace; equal times keep the order they came in, newest first).
pub fn event_rows<'a>(s: &'a Snapshot, filter: &str) -> Vec<&'a crate::model::console::EventLine> {
    let mut v: Vec<&crate::model::console::EventLine> = s
        .events
        .iter()
        .rev()
        .filter(|e| matches(filter, &[&e.service, &e.text, &e.source]))
        .collect();
    v.sort_by(|a, b| b.time.total_cmp(&a.time));
    v
}

pub fn suggestion_rows<'a>(
    s: &'a Snapshot,
    filter: &str,
) -> Vec<&'a crate::model::advice::Suggestion> {
    s.suggestions
        .iter()
        .filter(|x| matches(filter, &[&x.service, &x.rule, &x.evidence]))
        .collect()
}

/// The log lines the Logs view shows (service choice and line filter applied). The
/// filter ignores case and matches the line's prefix too (`redis`, `worker#2`).
pub fn log_rows<'a>(s: &'a Snapshot, logs: &LogsState) -> Vec<&'a LogLine> {
    let f = logs.filter.to_lowercase();
    s.logs
        .iter()
        .filter(|l| logs.service.as_ref().is_none_or(|svc| &l.service == svc))
        .filter(|l| {
            f.is_empty()
                || l.text.to_lowercase().contains(&f)
                || l.source().to_lowercase().contains(&f)
        })
        .collect()
}

/// How many rows the current view's list has.
pub fn row_count(state: &UiState, s: &Snapshot) -> usize {
    let f = state.filter();
    match state.view {
        View::Services => service_rows(s, f, state.sort).len(),
        View::Agents => agent_rows(s, f, state.show_replicas).len(),
        View::Logs => log_rows(s, &state.logs).len(),
        View::Events => event_rows(s, f).len(),
        View::Gpu => s.gpus.len(),
        View::Suggestions => suggestion_rows(s, f).len(),
        View::Overview => 0,
    }
}

/// Why quitting needs a confirmation: the embedded gateway served API clients in the
/// last five minutes, and quitting stops it.
pub fn quit_warning(s: &Snapshot) -> Option<String> {
    let last = s.activity.gateway_last_client?;
    let now = if s.taken_at > 0.0 { s.taken_at } else { last };
    let ago = (now - last).max(0.0);
    if ago > crate::model::console::QUIT_ASKS_WITHIN_S {
        return None;
    }
    let at = s
        .activity
        .gateway
        .as_deref()
        .unwrap_or("the embedded gateway");
    Some(format!(
        "Quit? The agents API ({at}) stops with the console: it served a client {}s ago, \
         and its clients will get connection refused. y = quit, any other key = stay",
        ago.round() as u64
    ))
}

fn selected_service(state: &UiState, s: &Snapshot) -> Option<(String, usize)> {
    let rows = service_rows(s, state.filter(), state.sort);
    let row = rows.get(state.selected())?;
    let replicas = s
        .services
        .iter()
        .filter(|x| x.service == row.service && x.state == "running")
        .count();
    Some((row.service.clone(), replicas))
}

fn ask(state: &mut UiState, cmd: Command) -> Option<Command> {
    if state.read_only && cmd.changes_stack() {
        state.message = Some(format!(
            "read-only console: `{}` was not sent (osmen was started with --read-only)",
            cmd.describe()
        ));
        return None;
    }
    if cmd.destructive() {
        state.mode = Mode::Confirm(cmd);
        None
    } else {
        state.message = Some(format!("{}…", cmd.describe()));
        Some(cmd)
    }
}

fn search_step(state: &mut UiState, s: &Snapshot, forward: bool) {
    if state.logs.search.is_empty() {
        state.message = Some("no search: press / first".into());
        return;
    }
    let rows = log_rows(s, &state.logs);
    let n = rows.len();
    if n == 0 {
        return;
    }
    let cur = state.selected[View::Logs.index()].min(n - 1);
    let hit = (1..=n)
        .map(|i| {
            if forward {
                (cur + i) % n
            } else {
                (cur + n - i) % n
            }
        })
        .find(|&i| rows[i].text.contains(&state.logs.search));
    match hit {
        Some(i) => {
            state.logs.follow = false;
            state.selected[View::Logs.index()] = i;
            state.message = None;
        }
        None => state.message = Some(format!("not found: {}", state.logs.search)),
    }
}

/// Applies one action; returns the command to send, if any.
pub fn update(state: &mut UiState, s: &Snapshot, action: Action) -> Option<Command> {
    let vi = state.view.index();
    let count = row_count(state, s);
    // Rows come and go with the snapshots: act on the row that is highlighted.
    if state.view == View::Logs && state.logs.follow {
        // While following, the highlighted line is the newest one.
        state.selected[vi] = count.saturating_sub(1);
    }
    state.selected[vi] = state.selected[vi].min(count.saturating_sub(1));
    let sel = &mut state.selected[vi];
    match action {
        Action::Quit => match quit_warning(s) {
            Some(why) => state.mode = Mode::ConfirmQuit(why),
            None => state.quit = true,
        },
        Action::Help => state.mode = Mode::Help,
        Action::NextView => state.view = View::ALL[(vi + 1) % View::ALL.len()],
        Action::PrevView => state.view = View::ALL[(vi + View::ALL.len() - 1) % View::ALL.len()],
        Action::Goto(v) => state.view = v,
        Action::Down => {
            *sel = (*sel + 1).min(count.saturating_sub(1));
            if state.view == View::Logs && *sel + 1 < count {
                state.logs.follow = false;
            }
        }
        Action::Up => {
            *sel = sel.saturating_sub(1);
            if state.view == View::Logs {
                state.logs.follow = false;
            }
        }
        Action::Top => {
            *sel = 0;
            if state.view == View::Logs {
                state.logs.follow = false;
            }
        }
        Action::Bottom => {
            *sel = count.saturating_sub(1);
            if state.view == View::Logs {
                state.logs.follow = true;
            }
        }
        Action::PageDown => *sel = (*sel + state.page.max(1)).min(count.saturating_sub(1)),
        Action::PageUp => {
            *sel = sel.saturating_sub(state.page.max(1));
            if state.view == View::Logs {
                state.logs.follow = false;
            }
        }
        Action::Filter => {
            state.mode = if state.view == View::Logs {
                state.logs.search.clear();
                Mode::Search
            } else {
                state.filters[vi].clear();
                state.selected[vi] = 0;
                Mode::Filter
            };
        }
        Action::LogFilter => {
            state.logs.filter.clear();
            state.mode = Mode::LogFilter;
        }
        Action::SearchNext => search_step(state, s, true),
        Action::SearchPrev => search_step(state, s, false),
        Action::Cancel => {
            state.message = None;
            if state.view == View::Logs {
                state.logs.search.clear();
                state.logs.filter.clear();
            } else {
                state.filters[vi].clear();
            }
        }
        Action::Start | Action::Stop | Action::Restart | Action::ScaleUp | Action::ScaleDown => {
            let Some((svc, replicas)) = selected_service(state, s) else {
                state.message = Some("no service selected".into());
                return None;
            };
            let cmd = match action {
                Action::Start => Command::Start(svc),
                Action::Stop => Command::Stop(svc),
                Action::Restart => Command::Restart(svc),
                Action::ScaleUp => Command::Scale(svc, replicas as u32 + 1),
                _ => {
                    if replicas <= 1 {
                        state.message = Some(format!(
                            "{svc} runs {replicas} replica: stop it (x) instead of scaling to 0"
                        ));
                        return None;
                    }
                    Command::Scale(svc, replicas as u32 - 1)
                }
            };
            return ask(state, cmd);
        }
        Action::StackUp => return ask(state, Command::Up),
        Action::StackDown => return ask(state, Command::Down),
        Action::Dependencies => state.show_dependencies = !state.show_dependencies,
        _ => return update_views(state, s, action, count),
    }
    None
}

/// The keys of the Agents, GPU, Suggestions and Logs views.
fn update_views(
    state: &mut UiState,
    s: &Snapshot,
    action: Action,
    count: usize,
) -> Option<Command> {
    let vi = state.view.index();
    match action {
        Action::Replicas => {
            state.show_replicas = !state.show_replicas;
            let n = s.replica_agents.len();
            state.message = Some(match (state.show_replicas, n) {
                (true, 0) => "no scaled gateway: no replica rows".into(),
                (true, n) => format!("{n} replica rows under the merged rows"),
                (false, _) => "merged rows only".into(),
            });
        }
        Action::Probe if state.view == View::Agents => {
            let rows = agent_rows(s, state.filter(), state.show_replicas);
            let Some(a) = rows.get(state.selected[vi]) else {
                state.message = Some("no agent selected".into());
                return None;
            };
            let name = a.agent.as_str();
            match (a.provider.as_deref(), a.model.as_deref()) {
                (Some("ollama"), Some(m)) => {
                    return ask(state, Command::ProbeOllama(Some(m.to_string())));
                }
                (Some(p), Some(m)) => {
                    state.message = Some(format!(
                        "{name} is served by {m} on {p}: the probe measures Ollama models only"
                    ));
                }
                _ => {
                    state.message =
                        Some(format!("{name}: no model known yet (no gateway figures)"));
                }
            }
            return None;
        }
        Action::Probe => return ask(state, Command::ProbeOllama(None)),
        Action::Apply => {
            let rows = suggestion_rows(s, state.filter());
            match rows.get(state.selected[vi]) {
                None => state.message = Some("no suggestion to apply".into()),
                Some(x) if !x.action.appliable() => {
                    state.message = Some(format!(
                        "{}: {}",
                        x.id,
                        if x.action.kind == "host" {
                            "about the machine itself: nothing osmen can apply"
                        } else {
                            "a setting that needs a restart: change it as the suggestion says"
                        }
                    ));
                }
                Some(x) => {
                    let cmd = Command::ApplySuggestion(x.id.clone());
                    return ask(state, cmd);
                }
            }
        }
        Action::Copy => match state.view {
            View::Logs => {
                let rows = log_rows(s, &state.logs);
                let i = if state.logs.follow {
                    rows.len().saturating_sub(1)
                } else {
                    state.selected[vi]
                };
                match rows.get(i) {
                    Some(l) => {
                        state.copy = Some(crate::model::secret::mask_url_credentials(&l.text));
                        state.message = Some("line copied to the clipboard (OSC 52)".into());
                    }
                    None => state.message = Some("no line to copy".into()),
                }
            }
            View::Suggestions => match suggestion_rows(s, state.filter()).get(state.selected[vi]) {
                Some(x) => {
                    state.copy = Some(x.command.clone());
                    state.message = Some("command copied to the clipboard (OSC 52)".into());
                }
                None => state.message = Some("no suggestion to copy".into()),
            },
            _ => state.message = Some("nothing to copy here".into()),
        },
        Action::Follow => {
            state.logs.follow = !state.logs.follow;
            if state.logs.follow {
                state.selected[vi] = count.saturating_sub(1);
            }
        }
        Action::Wrap => {
            state.logs.wrap = !state.logs.wrap;
            state.logs.hscroll = 0;
        }
        Action::Timestamps => state.logs.timestamps = !state.logs.timestamps,
        Action::LogService => {
            let mut names: Vec<&str> = s.services.iter().map(|x| x.service.as_str()).collect();
            names.sort();
            names.dedup();
            state.logs.service = match &state.logs.service {
                None => names.first().map(|n| n.to_string()),
                Some(cur) => names
                    .iter()
                    .position(|n| n == cur)
                    .and_then(|i| names.get(i + 1))
                    .map(|n| n.to_string()),
            };
            state.selected[vi] = 0;
            state.logs.follow = true;
        }
        _ => return update_more(state, s, action),
    }
    None
}

/// Columns one press of `h`/`l` scrolls.
pub const HSCROLL_STEP: usize = 8;

/// The row's whole text, the container keys (shell, inspect), the Services order, a
/// service's logs and sideways scrolling.
fn update_more(state: &mut UiState, s: &Snapshot, action: Action) -> Option<Command> {
    let vi = state.view.index();
    match action {
        Action::Open => match super::detail::of_row(state, s) {
            Some(d) => state.mode = Mode::Detail(d),
            None if state.view == View::Overview || state.view == View::Gpu => {
                return update_more(state, s, Action::ShowStatus);
            }
            None => state.message = Some("nothing selected to open".into()),
        },
        Action::ShowStatus => match super::detail::of_status(state, s) {
            Some(d) => state.mode = Mode::Detail(d),
            None => state.message = Some("the status line is empty".into()),
        },
        Action::Shell | Action::Inspect => {
            let rows = service_rows(s, state.filter(), state.sort);
            let Some(x) = rows.get(state.selected[vi]) else {
                state.message = Some("no container selected".into());
                return None;
            };
            if x.container.is_empty() {
                state.message = Some(format!(
                    "{} has no container yet: U brings the stack up from the file",
                    x.service
                ));
                return None;
            }
            let name = x.container.clone();
            if action == Action::Inspect {
                state.mode = Mode::Inspect {
                    container: name.clone(),
                    scroll: 0,
                };
                return Some(Command::Inspect(name));
            }
            if x.state != "running" {
                state.message = Some(format!(
                    "{name} is {}: a shell needs a running container (s starts it)",
                    x.state_label()
                ));
                return None;
            }
            return ask(state, Command::Exec(name));
        }
        Action::Sort => {
            state.sort = state.sort.next();
            state.selected[vi] = 0;
            state.message = Some(format!("services sorted {}", state.sort.label()));
        }
        Action::OpenLogs => {
            let rows = service_rows(s, state.filter(), state.sort);
            let Some(x) = rows.get(state.selected[vi]) else {
                state.message = Some("no service selected".into());
                return None;
            };
            state.logs.service = Some(x.service.clone());
            state.logs.follow = true;
            state.logs.filter.clear();
            state.logs.hscroll = 0;
            state.view = View::Logs;
            state.message = None;
        }
        Action::ScrollLeft | Action::ScrollRight => {
            if state.logs.wrap {
                state.message =
                    Some("lines are wrapped: w turns wrap off to scroll sideways".into());
            } else if action == Action::ScrollLeft {
                state.logs.hscroll = state.logs.hscroll.saturating_sub(HSCROLL_STEP);
            } else {
                state.logs.hscroll += HSCROLL_STEP;
            }
        }
        _ => {}
    }
    None
}

/// A key while a popup is open: scrolling keys scroll it, Esc, Enter and q close it.
fn popup_key(state: &mut UiState, keymap: &Keymap, key: KeyEvent) {
    let page = state.page.max(1);
    let action = keymap.lookup(state.view, &key);
    let scroll = match &mut state.mode {
        Mode::Detail(d) => &mut d.scroll,
        Mode::Inspect { scroll, .. } => scroll,
        _ => return,
    };
    match action {
        Some(Action::Down) => *scroll += 1,
        Some(Action::Up) => *scroll = scroll.saturating_sub(1),
        Some(Action::PageDown) => *scroll += page,
        Some(Action::PageUp) => *scroll = scroll.saturating_sub(page),
        Some(Action::Top) => *scroll = 0,
        // The draw clamps it to the last page.
        Some(Action::Bottom) => *scroll = usize::MAX / 2,
        Some(Action::Cancel | Action::Open | Action::Quit) => state.mode = Mode::Normal,
        _ if key.code == KeyCode::Esc || key.code == KeyCode::Enter => state.mode = Mode::Normal,
        _ => {}
    }
}

/// One key in any mode: typing goes to the filter or search being edited, the
/// confirmation prompt takes y/Enter, everything else goes through the keymap.
pub fn on_key(
    state: &mut UiState,
    keymap: &Keymap,
    s: &Snapshot,
    key: KeyEvent,
) -> Option<Command> {
    // An answer came back since the last key: the message that key left is over.
    if s.activity.results != state.result_seen {
        state.message = None;
    }
    state.result_seen = s.activity.results;
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        // Like q, it asks while the gateway has recent clients; a second Ctrl-C quits.
        match quit_warning(s) {
            Some(why) if !matches!(state.mode, Mode::ConfirmQuit(_)) => {
                state.mode = Mode::ConfirmQuit(format!("{why} (Ctrl-C again quits)"));
            }
            _ => state.quit = true,
        }
        return None;
    }
    match state.mode.clone() {
        Mode::Confirm(cmd) => {
            state.mode = Mode::Normal;
            if matches!(
                key.code,
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter
            ) {
                state.message = Some(format!("{}…", cmd.describe()));
                return Some(cmd);
            }
            state.message = Some(format!("cancelled: {}", cmd.describe()));
            None
        }
        Mode::ConfirmQuit(_) => {
            state.mode = Mode::Normal;
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                state.quit = true;
            } else {
                state.message = Some("stayed: the agents API keeps running".into());
            }
            None
        }
        Mode::Help => {
            state.mode = Mode::Normal;
            None
        }
        Mode::Detail(_) | Mode::Inspect { .. } => {
            popup_key(state, keymap, key);
            None
        }
        Mode::Filter | Mode::Search | Mode::LogFilter => {
            let vi = state.view.index();
            let mode = state.mode.clone();
            let text = match mode {
                Mode::Filter => &mut state.filters[vi],
                Mode::Search => &mut state.logs.search,
                _ => &mut state.logs.filter,
            };
            match key.code {
                KeyCode::Enter => {
                    state.mode = Mode::Normal;
                    if mode == Mode::Search {
                        search_step(state, s, false);
                    }
                }
                KeyCode::Esc => {
                    text.clear();
                    state.mode = Mode::Normal;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    state.selected[vi] = 0;
                }
                _ => {}
            }
            None
        }
        Mode::Normal => {
            let action = keymap.lookup(state.view, &key)?;
            update(state, s, action)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::ServiceStats;

    fn snap() -> Snapshot {
        let svc = |name: &str, n: u32| ServiceStats {
            service: name.into(),
            container: format!("p-{name}-{n}"),
            state: "running".into(),
            health: "healthy".into(),
            ..Default::default()
        };
        let mut s = Snapshot {
            project: "p".into(),
            services: vec![
                svc("api", 1),
                svc("db", 1),
                svc("worker", 1),
                svc("worker", 2),
            ],
            ..Default::default()
        };
        s.logs.push(
            [
                "boot",
                "ready",
                "GET /health 200",
                "error: boom",
                "GET /health 200",
            ]
            .iter()
            .map(|t| LogLine {
                time: 0.0,
                service: "api".into(),
                container: "p-api-1".into(),
                stderr: false,
                text: t.to_string(),
                replica: 1,
            })
            .collect(),
        );
        s
    }

    /// A CPU suggestion for `api` of the given action kind.
    fn sug(id: &str, kind: &str) -> crate::model::advice::Suggestion {
        crate::model::advice::Suggestion {
            id: id.into(),
            service: "api".into(),
            rule: "cpu".into(),
            severity: "warning".into(),
            evidence: String::new(),
            since: 0.0,
            action: crate::model::advice::ScaleAction {
                kind: kind.into(),
                cpus: Some(1.0),
                memory: None,
                replicas: None,
                maxmemory: None,
                from: String::new(),
            },
            command: format!("docker update {id}"),
            compose_patch: String::new(),
        }
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn press(st: &mut UiState, s: &Snapshot, keys: &str) -> Vec<Command> {
        let km = Keymap::default();
        keys.chars()
            .filter_map(|c| on_key(st, &km, s, key(c)))
            .collect()
    }

    #[test]
    fn number_keys_tab_and_quit() {
        let s = snap();
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "5");
        assert_eq!(st.view, View::Logs);
        let km = Keymap::default();
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE),
        );
        assert_eq!(st.view, View::Suggestions);
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        );
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT),
        );
        assert_eq!(st.view, View::Gpu);
        press(&mut st, &s, "q");
        assert!(st.quit);
    }

    #[test]
    fn restart_asks_first_and_sends_on_yes_only() {
        let s = snap();
        let mut st = UiState::new(false, false);
        assert!(press(&mut st, &s, "2jr").is_empty());
        assert_eq!(st.mode, Mode::Confirm(Command::Restart("db".into())));
        assert!(press(&mut st, &s, "n").is_empty());
        assert_eq!(st.mode, Mode::Normal);
        assert_eq!(
            press(&mut st, &s, "ry"),
            vec![Command::Restart("db".into())]
        );
        // Start is not destructive: no question.
        assert_eq!(press(&mut st, &s, "s"), vec![Command::Start("db".into())]);
    }

    #[test]
    fn scaling_counts_the_running_replicas() {
        let s = snap();
        let mut st = UiState::new(false, false);
        assert_eq!(
            press(&mut st, &s, "2G+y"),
            vec![Command::Scale("worker".into(), 3)]
        );
        assert_eq!(
            press(&mut st, &s, "-y"),
            vec![Command::Scale("worker".into(), 1)]
        );
        assert!(press(&mut st, &s, "gj-").is_empty());
        assert!(st.message.as_deref().unwrap().contains("stop it"));
    }

    #[test]
    fn read_only_refuses_every_mutating_key_of_every_view() {
        let mut s = snap();
        s.suggestions = vec![sug("cpu:api", "vertical")];
        let km = Keymap::default();
        // Services: start, stop, restart, scale up and down; anywhere: stack up and down;
        // Suggestions: apply. Each is refused, confirmed or not, and says why.
        for (view, keys) in [
            ("2", "s"),
            ("2", "x"),
            ("2", "r"),
            ("2", "+"),
            ("2", "jj-"),
            ("1", "U"),
            ("1", "D"),
            ("2", "U"),
            ("2", "D"),
        ] {
            let mut st = UiState::new(true, false);
            press(&mut st, &s, view);
            let mut sent = press(&mut st, &s, keys);
            sent.extend(press(&mut st, &s, "y"));
            assert!(sent.is_empty(), "{view}{keys}: sent {sent:?}");
            assert!(
                st.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("read-only console")),
                "{view}{keys}: {:?}",
                st.message
            );
        }
        let mut st = UiState::new(true, false);
        press(&mut st, &s, "6");
        let sent: Vec<Command> = on_key(&mut st, &km, &s, key('a')).into_iter().collect();
        assert!(sent.is_empty(), "apply: sent {sent:?}");
        assert_eq!(st.mode, Mode::Normal, "no confirmation is even asked");
        assert!(
            st.message
                .as_deref()
                .unwrap()
                .starts_with("read-only console")
        );
    }

    #[test]
    fn read_only_refuses_and_says_so() {
        let s = snap();
        let mut st = UiState::new(true, false);
        assert!(press(&mut st, &s, "2ry").is_empty());
        assert!(
            st.message
                .as_deref()
                .unwrap()
                .starts_with("read-only console")
        );
        assert!(press(&mut st, &s, "D").is_empty());
        assert_eq!(st.mode, Mode::Normal);
        // The probe changes nothing: allowed.
        assert_eq!(press(&mut st, &s, "4p"), vec![Command::ProbeOllama(None)]);
    }

    #[test]
    fn filter_narrows_the_list_and_esc_clears_it() {
        let s = snap();
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "2/work");
        assert_eq!(st.mode, Mode::Filter);
        let km = Keymap::default();
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
        );
        assert_eq!(service_rows(&s, st.filter(), st.sort).len(), 2);
        // While typing, letters are text, not keys: "q" did not quit.
        press(&mut st, &s, "/q");
        assert!(!st.quit);
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        );
        assert_eq!(service_rows(&s, st.filter(), st.sort).len(), 4);
    }

    #[test]
    fn log_search_moves_between_matches_and_stops_following() {
        let s = snap();
        let mut st = UiState::new(false, false);
        let km = Keymap::default();
        press(&mut st, &s, "5/health");
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE),
        );
        assert!(!st.logs.follow);
        let first = st.selected[View::Logs.index()];
        assert_eq!(first, 4);
        press(&mut st, &s, "n");
        assert_eq!(st.selected[View::Logs.index()], 2);
        press(&mut st, &s, "N");
        assert_eq!(st.selected[View::Logs.index()], 4);
        press(&mut st, &s, "y");
        assert_eq!(st.copy.as_deref(), Some("GET /health 200"));
        press(&mut st, &s, "wt");
        assert!(st.logs.wrap && st.logs.timestamps);
        press(&mut st, &s, "f");
        assert!(st.logs.follow);
    }

    #[test]
    fn suggestions_apply_after_confirmation_and_copy_their_command() {
        let mut s = snap();
        s.suggestions = vec![sug("cpu:api", "vertical"), sug("host-cpu:host", "host")];
        let mut st = UiState::new(false, false);
        let km = Keymap::default();
        press(&mut st, &s, "6");
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        // Enter opens the whole suggestion; `a` applies it.
        assert!(on_key(&mut st, &km, &s, enter).is_none());
        assert!(
            matches!(&st.mode, Mode::Detail(d) if d.lines.iter().any(|l| l.contains("a applies it")))
        );
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        );
        assert_eq!(st.mode, Mode::Normal);
        let apply = key('a');
        assert!(on_key(&mut st, &km, &s, apply).is_none());
        assert_eq!(
            st.mode,
            Mode::Confirm(Command::ApplySuggestion("cpu:api".into()))
        );
        assert_eq!(
            press(&mut st, &s, "y"),
            vec![Command::ApplySuggestion("cpu:api".into())]
        );
        press(&mut st, &s, "y");
        assert_eq!(st.copy.as_deref(), Some("docker update cpu:api"));
        // A host suggestion has nothing to apply.
        press(&mut st, &s, "j");
        assert!(on_key(&mut st, &km, &s, apply).is_none());
        assert_eq!(st.mode, Mode::Normal);
        assert!(st.message.as_deref().unwrap().contains("about the machine"));
        // Read-only refuses.
        let mut ro = UiState::new(true, false);
        press(&mut ro, &s, "6");
        assert!(on_key(&mut ro, &km, &s, apply).is_none());
        assert!(ro.message.as_deref().unwrap().starts_with("read-only"));
    }

    #[test]
    fn leaving_follow_starts_from_the_newest_line_and_exited_replicas_do_not_count() {
        let mut s = snap();
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "5k");
        assert!(!st.logs.follow);
        assert_eq!(
            st.selected[View::Logs.index()],
            3,
            "one above the newest of 5"
        );
        // One of worker's two replicas exited: + asks for 2, not 3.
        s.services[3].state = "exited".into();
        assert_eq!(
            press(&mut st, &s, "2G+y"),
            vec![Command::Scale("worker".into(), 2)]
        );
        // The list shrank under the selection: the action takes the highlighted row.
        s.services.truncate(2);
        assert_eq!(press(&mut st, &s, "s"), vec![Command::Start("db".into())]);
    }

    fn logs_of(lines: &[(&str, u32, &str)]) -> Snapshot {
        let mut s = snap();
        s.logs = Default::default();
        s.logs.push(
            lines
                .iter()
                .map(|(svc, n, t)| LogLine {
                    time: 0.0,
                    service: svc.to_string(),
                    container: format!("p-{svc}-{n}"),
                    stderr: false,
                    text: t.to_string(),
                    replica: *n,
                })
                .collect(),
        );
        s
    }

    #[test]
    fn log_filter_ignores_case_and_matches_the_service_and_replica_prefix() {
        let s = logs_of(&[
            ("redis", 1, "Ready to accept connections"),
            ("worker", 1, "job 1 done"),
            ("worker", 2, "job 2 done"),
            ("api", 1, "GET /REDIS/keys 200"),
        ]);
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "5&redis");
        let texts = |st: &UiState| -> Vec<String> {
            log_rows(&s, &st.logs)
                .iter()
                .map(|l| l.text.clone())
                .collect()
        };
        // The service prefix and, ignoring case, the text.
        assert_eq!(
            texts(&st),
            ["Ready to accept connections", "GET /REDIS/keys 200"]
        );
        st.logs.filter = "READY".into();
        assert_eq!(texts(&st), ["Ready to accept connections"]);
        // Replicas have their own prefix: worker#2 is the second one only.
        st.logs.filter = "worker#2".into();
        assert_eq!(texts(&st), ["job 2 done"]);
        let prefixes: Vec<String> = s.logs.iter().map(|l| l.source()).collect();
        assert_eq!(prefixes, ["redis", "worker", "worker#2", "api"]);
    }

    #[test]
    fn sideways_scroll_moves_by_steps_and_wrap_refuses_it() {
        let s = snap();
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "5lll");
        assert_eq!(st.logs.hscroll, 3 * HSCROLL_STEP);
        press(&mut st, &s, "hhhhh");
        assert_eq!(st.logs.hscroll, 0);
        press(&mut st, &s, "ll");
        press(&mut st, &s, "w");
        assert_eq!(st.logs.hscroll, 0, "wrap starts from the first column");
        press(&mut st, &s, "l");
        assert_eq!(st.logs.hscroll, 0);
        assert!(st.message.as_deref().unwrap().contains("w turns wrap off"));
    }

    #[test]
    fn the_status_line_message_gives_way_to_the_answer_even_an_identical_one() {
        let mut s = snap();
        s.suggestions = vec![sug("cpu:api", "vertical")];
        let mut st = UiState::new(false, false);
        assert_eq!(
            press(&mut st, &s, "6ay"),
            vec![Command::ApplySuggestion("cpu:api".into())]
        );
        let status = |st: &UiState, s: &Snapshot| super::super::detail::status_text(st, s);
        assert_eq!(
            status(&st, &s).as_deref(),
            Some("apply suggestion cpu:api…")
        );
        s.activity
            .set_result("apply suggestion cpu:api: failed: boom".into());
        assert_eq!(
            status(&st, &s).as_deref(),
            Some("apply suggestion cpu:api: failed: boom")
        );
        // A key afterwards does not bring the old message back.
        press(&mut st, &s, "j");
        assert_eq!(
            status(&st, &s).as_deref(),
            Some("apply suggestion cpu:api: failed: boom")
        );
        // The same action again, answered with the same words: still replaced.
        press(&mut st, &s, "kay");
        assert_eq!(
            status(&st, &s).as_deref(),
            Some("apply suggestion cpu:api…")
        );
        s.activity
            .set_result("apply suggestion cpu:api: failed: boom".into());
        assert_eq!(
            status(&st, &s).as_deref(),
            Some("apply suggestion cpu:api: failed: boom")
        );
    }

    #[test]
    fn events_are_newest_first_in_strict_time_order() {
        let mut s = snap();
        let ev = |t: f64, text: &str| crate::model::console::EventLine {
            time: t,
            source: "engine".into(),
            service: "api".into(),
            text: text.into(),
        };
        // Appended out of order: a journal line stamped before an engine line it followed.
        s.events = std::sync::Arc::new(vec![
            ev(10.0, "a"),
            ev(30.0, "c"),
            ev(20.0, "b"),
            ev(30.0, "d"),
        ]);
        let order: Vec<&str> = event_rows(&s, "").iter().map(|e| e.text.as_str()).collect();
        assert_eq!(order, ["d", "c", "b", "a"]);
    }

    #[test]
    fn enter_opens_the_whole_text_and_the_popup_scrolls_and_closes() {
        let mut s = snap();
        let long = "x ".repeat(400);
        s.events = std::sync::Arc::new(vec![crate::model::console::EventLine {
            time: 0.0,
            source: "console".into(),
            service: "api".into(),
            text: format!("up failed: {long}END"),
        }]);
        let km = Keymap::default();
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "7");
        on_key(&mut st, &km, &s, enter);
        let Mode::Detail(d) = &st.mode else {
            panic!("{:?}", st.mode)
        };
        assert!(d.lines.iter().any(|l| l.ends_with("END")));
        press(&mut st, &s, "jjj");
        assert!(matches!(&st.mode, Mode::Detail(d) if d.scroll == 3));
        press(&mut st, &s, "k");
        assert!(matches!(&st.mode, Mode::Detail(d) if d.scroll == 2));
        // q closes the popup, it does not quit.
        press(&mut st, &s, "q");
        assert_eq!(st.mode, Mode::Normal);
        assert!(!st.quit);
        // Overview has no rows: Enter opens the status line.
        st.message = Some("read-only console: a long refusal".into());
        press(&mut st, &s, "1");
        on_key(&mut st, &km, &s, enter);
        assert!(matches!(&st.mode, Mode::Detail(d) if d.lines[0].contains("a long refusal")));
        on_key(
            &mut st,
            &km,
            &s,
            KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE),
        );
        press(&mut st, &s, "m");
        assert!(matches!(&st.mode, Mode::Detail(_)));
    }

    #[test]
    fn services_sort_by_cpu_memory_and_name_and_l_opens_the_service_logs() {
        let mut s = snap();
        for (x, (cpu, mem)) in
            s.services
                .iter_mut()
                .zip([(5.0, 300u64), (80.0, 100), (20.0, 900), (1.0, 50)])
        {
            x.cpu_percent = Some(cpu);
            x.memory_bytes = Some(mem);
        }
        s.services[3].number = 2;
        let names = |st: &UiState| -> Vec<String> {
            service_rows(&s, st.filter(), st.sort)
                .iter()
                .map(|x| x.display_name())
                .collect()
        };
        let mut st = UiState::new(false, false);
        press(&mut st, &s, "2");
        assert_eq!(names(&st), ["api", "db", "worker", "worker#2"]);
        press(&mut st, &s, "o");
        assert_eq!(st.sort, ServiceSort::Cpu);
        assert_eq!(names(&st), ["db", "worker", "api", "worker#2"]);
        press(&mut st, &s, "o");
        assert_eq!(names(&st), ["worker", "api", "db", "worker#2"]);
        press(&mut st, &s, "o");
        assert_eq!(st.sort, ServiceSort::Name);
        press(&mut st, &s, "jl");
        assert_eq!(st.view, View::Logs);
        assert_eq!(st.logs.service.as_deref(), Some("db"));
        assert!(st.logs.follow);
    }

    #[test]
    fn shell_and_inspect_ask_for_the_selected_container_and_read_only_refuses_the_shell() {
        let mut s = snap();
        s.services.push(ServiceStats {
            service: "old".into(),
            container: "p-old-1".into(),
            state: "exited".into(),
            ..Default::default()
        });
        let mut st = UiState::new(false, false);
        assert_eq!(
            press(&mut st, &s, "2e"),
            vec![Command::Exec("p-api-1".into())]
        );
        assert_eq!(
            press(&mut st, &s, "i"),
            vec![Command::Inspect("p-api-1".into())]
        );
        assert!(matches!(&st.mode, Mode::Inspect { container, .. } if container == "p-api-1"));
        press(&mut st, &s, "q");
        assert_eq!(st.mode, Mode::Normal);
        // Not running: no shell, and it says why.
        assert!(press(&mut st, &s, "jje").is_empty());
        assert!(
            st.message
                .as_deref()
                .unwrap()
                .contains("needs a running container")
        );
        // Read-only: the shell is refused with a message; inspecting changes nothing.
        let mut ro = UiState::new(true, false);
        assert!(press(&mut ro, &s, "2e").is_empty());
        assert!(
            ro.message
                .as_deref()
                .unwrap()
                .starts_with("read-only console")
        );
        assert_eq!(
            press(&mut ro, &s, "i"),
            vec![Command::Inspect("p-api-1".into())]
        );
    }

    #[test]
    fn keys_on_an_empty_snapshot_do_not_panic() {
        let s = Snapshot::default();
        let mut st = UiState::new(false, false);
        for v in "1234567".chars() {
            press(&mut st, &s, &format!("{v}jkgGnNyrsx+-dpfwtohlaeim"));
            st.mode = Mode::Normal;
        }
    }
}
