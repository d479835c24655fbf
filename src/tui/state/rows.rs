//! Each view's rows as the screen shows them: the snapshot's lists after the view's
//! filter, in display order. `update` and the views read the same rows, so a key acts on
//! the row that is highlighted.

use super::{LogsState, ServiceSort, UiState};
use crate::model::agent::AgentRow;
use crate::model::console::LogLine;
use crate::model::snapshot::{ServiceStats, Snapshot};
use crate::tui::action::View;

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

/// The GPU view's rows: Ollama's installed models in its order, each with its loaded state
/// when loaded (then any loaded model not listed as installed). Loading or unloading one
/// does not move the rows, so the selection stays on the model acted on.
pub fn model_rows(s: &Snapshot) -> Vec<(&str, Option<&crate::model::ollama::LoadedModel>)> {
    let Some(o) = &s.ollama else {
        return Vec::new();
    };
    let mut rows: Vec<(&str, Option<&crate::model::ollama::LoadedModel>)> = o
        .installed
        .iter()
        .map(|n| (n.as_str(), o.loaded.iter().find(|m| &m.name == n)))
        .collect();
    for m in &o.loaded {
        if !o.installed.contains(&m.name) {
            rows.push((m.name.as_str(), Some(m)));
        }
    }
    rows
}

/// How many rows the current view's list has.
pub fn row_count(state: &UiState, s: &Snapshot) -> usize {
    let f = state.filter();
    match state.view {
        View::Services => service_rows(s, f, state.sort).len(),
        View::Agents => agent_rows(s, f, state.show_replicas).len(),
        View::Logs => log_rows(s, &state.logs).len(),
        View::Events => event_rows(s, f).len(),
        View::Gpu => model_rows(s).len(),
        View::Suggestions => suggestion_rows(s, f).len(),
        // The fleet's lines (none without `[[fleet]]` entries).
        View::Overview => s.fleet.len(),
    }
}
