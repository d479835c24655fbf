//! One key in any mode: the filter or search being typed, the confirmation prompts, the
//! popups, and in normal mode the keymap's action handed to `update`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::update::{quit_warning, search_step, update};
use super::{Mode, UiState};
use crate::model::console::Command;
use crate::model::snapshot::Snapshot;
use crate::tui::action::Action;
use crate::tui::keymap::Keymap;

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
