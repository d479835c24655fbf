//! View 7: what happened, newest first: the supervisor's journal (written before each
//! action), the engine's lifecycle events (health-check execs filtered out) and the
//! console's own commands.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::block;
use crate::model::snapshot::Snapshot;
use crate::tui::state::{UiState, event_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::clock;

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = event_rows(s, st.filter());
    if rows.is_empty() {
        let why = if st.filter().is_empty() {
            "no events yet: supervisor actions, engine events and console commands appear here"
        } else {
            "no event matches the filter (Esc clears it)"
        };
        f.render_widget(
            Paragraph::new(why).style(t.dim()).block(block(t, "events")),
            area,
        );
        return;
    }
    let body: Vec<Row> = rows
        .iter()
        .map(|e| {
            let style = if e.text.contains("crash-loop")
                || e.text.contains("die")
                || e.text.contains("failed")
            {
                t.bad()
            } else if e.text.contains("unhealthy") || e.text.contains("restart") {
                t.warn()
            } else {
                Default::default()
            };
            Row::new(vec![
                Cell::from(clock(e.time)).style(t.dim()),
                Cell::from(e.source.clone()).style(t.dim()),
                Cell::from(e.service.clone()),
                Cell::from(crate::model::secret::mask_url_credentials(&e.text)).style(style),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(14),
        Constraint::Min(10),
    ];
    let sel = st.selected().min(rows.len() - 1);
    let table = Table::new(body, widths)
        .header(Row::new(vec!["UTC", "SOURCE", "SERVICE", "EVENT"]).style(t.header()))
        .row_highlight_style(t.selected())
        .block(block(t, &format!("events ({}, newest first)", rows.len())));
    let mut ts = TableState::default().with_selected(Some(sel));
    f.render_stateful_widget(table, area, &mut ts);
}
