//! The actions on the selected row and the views' own keys: probing an agent's model,
//! applying or copying a suggestion, the Logs toggles, the whole text of a row, a shell or
//! the inspect pane of a container, the Services order and sideways scrolling.

use super::rows::{agent_rows, log_rows, model_rows, service_rows, suggestion_rows};
use super::update::ask;
use super::{Mode, UiState};
use crate::model::console::{Command, OllamaKeep};
use crate::model::snapshot::Snapshot;
use crate::tui::action::{Action, View};

/// `w`, `u` and `P` in the GPU view: the selected model warmed, unloaded or pinned.
fn model_action(state: &mut UiState, s: &Snapshot, action: Action) -> Option<Command> {
    let keep = match action {
        Action::Warm => OllamaKeep::Warm,
        Action::Unload => OllamaKeep::Unload,
        _ => OllamaKeep::Pin,
    };
    let Some((name, _)) = model_rows(s).get(state.selected()).copied() else {
        state.message = Some(match (&s.ollama, s.sources.get("ollama")) {
            (Some(_), _) => "no model selected (Ollama lists none)".into(),
            (None, Some(h)) if h.status != "ok" => {
                format!("Ollama cannot be reached: {}", h.status)
            }
            (None, _) => "Ollama has not been reached yet: no model to act on".into(),
        });
        return None;
    };
    ask(state, Command::Ollama(name.to_string(), keep))
}

/// `[` and `]`: the next sampling period from the one the engine side uses now.
fn sampling(state: &mut UiState, s: &Snapshot, action: Action) -> Option<Command> {
    let longer = action == Action::SampleSlower;
    let Some(now) = s.activity.sampling_s else {
        state.message = Some("the sampling period is not known yet".into());
        return None;
    };
    let in_force = (now * 1000.0).round() as u64;
    let base = match state.sampling_asked {
        Some((asked, seen)) if seen == in_force => asked,
        _ => in_force,
    };
    match crate::model::console::sampling_step(base, longer) {
        Some(ms) => {
            state.sampling_asked = Some((ms, in_force));
            ask(state, Command::SetSampling(ms))
        }
        None => {
            state.message = Some(format!(
                "sampling every {}s already: the {} the console offers",
                base as f64 / 1000.0,
                if longer { "longest" } else { "shortest" }
            ));
            None
        }
    }
}

/// Enter on a fleet line: the console shows that host's stack (the first line, `here`,
/// is this machine's own). Refused here for the host already shown and for one that
/// cannot be reached, with its reason and since when; the engine side refuses a host
/// that stops answering meanwhile.
fn switch_host(state: &mut UiState, s: &Snapshot) -> Option<Command> {
    let Some(r) = s.fleet.get(state.selected()) else {
        // No fleet: Enter shows the status line, as on any view without rows.
        return update_more(state, s, Action::ShowStatus);
    };
    if is_shown(s, r) {
        state.message = Some(format!("the console already shows {}", r.name));
        return None;
    }
    if let Some(u) = r.unreachable() {
        state.message = Some(format!("{}: not switched: {u}", r.name));
        return None;
    }
    let to = (!r.home).then(|| r.name.clone());
    ask(state, Command::Switch(to))
}

/// Whether the console shows this fleet line's stack now.
pub fn is_shown(s: &Snapshot, r: &crate::model::fleet::FleetRow) -> bool {
    match &s.activity.switched {
        None => r.home,
        Some(to) => !r.home && to.name == r.name,
    }
}

/// The keys of the Agents, GPU, Suggestions and Logs views.
pub(super) fn update_views(
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
        Action::SampleFaster | Action::SampleSlower => return sampling(state, s, action),
        Action::SwitchHost => return switch_host(state, s),
        Action::Warm | Action::Unload | Action::Pin => return model_action(state, s, action),
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
