//! `update`: one action applied to the state. Moving, switching views, filters and the
//! stack's own commands are handled here; the rest go to `row_actions`.

use super::row_actions::update_views;
use super::rows::{log_rows, row_count, service_rows};
use super::{Mode, UiState};
use crate::model::console::Command;
use crate::model::snapshot::Snapshot;
use crate::tui::action::{Action, View};

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

pub(super) fn ask(state: &mut UiState, cmd: Command) -> Option<Command> {
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

pub(super) fn search_step(state: &mut UiState, s: &Snapshot, forward: bool) {
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
