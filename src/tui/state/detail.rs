//! The whole text behind a row: what Enter opens in a scrollable popup when a table cell
//! or the status line had to cut it. Built from the snapshot only, secrets masked.

use super::{Detail, UiState, agent_rows, event_rows, log_rows, service_rows, suggestion_rows};
use crate::model::secret::mask_url_credentials;
use crate::model::snapshot::Snapshot;
use crate::tui::action::View;
use crate::tui::widgets::clock;

/// What the status line says now, uncut: the last key's message until an answer comes
/// back, then what is running, then the last answer.
pub fn status_text(st: &UiState, s: &Snapshot) -> Option<String> {
    if let Some(m) = &st.message
        && s.activity.results == st.result_seen
    {
        return Some(m.clone());
    }
    if !s.activity.pending.is_empty() {
        return Some(format!("running: {}", s.activity.pending.join(", ")));
    }
    s.activity.last_result.clone()
}

fn detail(title: String, lines: Vec<String>) -> Detail {
    Detail {
        title,
        lines: lines.iter().map(|l| mask_url_credentials(l)).collect(),
        scroll: 0,
    }
}

/// The popup of the status line.
pub fn of_status(st: &UiState, s: &Snapshot) -> Option<Detail> {
    let text = status_text(st, s)?;
    Some(detail("status".into(), vec![text]))
}

/// The popup of the highlighted row of the current view; None where it has no rows.
pub fn of_row(st: &UiState, s: &Snapshot) -> Option<Detail> {
    let sel = st.selected();
    let f = st.filter();
    match st.view {
        View::Events => {
            let e = *event_rows(s, f).get(sel)?;
            Some(detail(
                format!("event at {} UTC", clock(e.time)),
                vec![
                    format!("source   {}", e.source),
                    format!("service  {}", e.service),
                    String::new(),
                    e.text.clone(),
                ],
            ))
        }
        View::Logs => {
            let rows = log_rows(s, &st.logs);
            let i = if st.logs.follow {
                rows.len().checked_sub(1)?
            } else {
                sel
            };
            let l = *rows.get(i)?;
            Some(detail(
                format!("{} at {} UTC", l.source(), clock(l.time)),
                vec![
                    format!("container {}", l.container),
                    String::new(),
                    l.text.clone(),
                ],
            ))
        }
        View::Suggestions => {
            let x = *suggestion_rows(s, f).get(sel)?;
            let mut lines = vec![
                format!("{} ({}), since {} UTC", x.id, x.severity, clock(x.since)),
                String::new(),
                x.evidence.clone(),
                String::new(),
                format!("live: {}", x.command),
            ];
            if !x.compose_patch.is_empty() {
                lines.push(String::new());
                lines.push("to keep it, in docker-compose.yml:".into());
                lines.extend(x.compose_patch.lines().map(|l| format!("  {l}")));
            }
            lines.push(String::new());
            lines.push(if x.action.appliable() {
                "a applies it (asks first)".into()
            } else {
                "nothing to apply live: change it as it says".into()
            });
            Some(detail(format!("suggestion {}", x.id), lines))
        }
        View::Services => {
            let x = *service_rows(s, f, st.sort).get(sel)?;
            let mut lines = vec![
                format!("container  {}", x.container),
                format!("state      {}", x.state_label()),
                format!(
                    "health     {}",
                    if x.health.is_empty() { "-" } else { &x.health }
                ),
                format!("restarts   {}", x.restarts),
                format!("ports      {}", x.ports.join(" ")),
            ];
            if !x.health_output.trim().is_empty() {
                lines.push(String::new());
                lines.push("last health check:".into());
                lines.push(x.health_output.trim().to_string());
            }
            if let Some(d) = s.activity.dependencies.get(&x.service) {
                lines.push(format!("waits for  {}", d.join(", ")));
            }
            if let Some(p) = &x.probe {
                lines.push(String::new());
                for (k, v) in crate::model::probe::show::details(p) {
                    lines.push(format!("{k}  {v}"));
                }
            }
            Some(detail(x.display_name(), lines))
        }
        View::Agents => {
            let a = *agent_rows(s, f, st.show_replicas).get(sel)?;
            let name = a.agent.clone();
            let mut lines = Vec::new();
            // Every figure of the row, by its `status --json` key.
            if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(a) {
                for (k, v) in &o {
                    let v = match v {
                        serde_json::Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    lines.push(format!("{k}: {v}"));
                }
            }
            Some(detail(name, lines))
        }
        View::Overview => s.fleet.get(sel).map(fleet_detail),
        View::Gpu => None,
    }
}

/// A fleet host's whole line, and the command that attaches a console to its stack.
fn fleet_detail(r: &crate::model::fleet::FleetRow) -> Detail {
    use crate::model::fleet::FLEET_COLUMNS;
    let mut lines = vec![format!("engine     {}", r.engine)];
    match r.unreachable() {
        Some(u) => lines.push(u),
        None => {
            for (k, v) in FLEET_COLUMNS.iter().zip(r.cells()).skip(1) {
                lines.push(format!("{:<15}{v}", k.to_lowercase()));
            }
        }
    }
    if !r.services.is_empty() {
        let when = r.last_ok.map(clock).unwrap_or_default();
        lines.push(String::new());
        lines.push(format!("its containers (read-only, as of {when} UTC):"));
        lines.extend(r.services.iter().map(|x| x.line()));
    }
    lines.push(String::new());
    let how = match r.engine.strip_prefix("context ") {
        Some(c) => format!("osmen --context {c}"),
        None => format!("DOCKER_HOST={} osmen", r.engine),
    };
    let project = if r.project.is_empty() {
        "PROJECT"
    } else {
        &r.project
    };
    lines.push(if r.home {
        "this machine's own stack: Enter on its line shows it again after a switch".into()
    } else {
        "Enter on its line switches this console to its stack (its own engine; nothing is \
         brought up there)"
            .into()
    });
    lines.push(format!("its own console: {how} -p {project} --no-up"));
    detail(format!("fleet host {}", r.name), lines)
}
