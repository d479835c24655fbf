//! View 6: the advisor's suggestions: what crossed which threshold, the evidence, and the
//! action (`a` applies it after a confirmation, Enter shows it whole, y copies its command).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::block;
use crate::model::advice::Suggestion;
use crate::model::snapshot::Snapshot;
use crate::tui::state::{UiState, suggestion_rows};
use crate::tui::theme::Theme;

pub fn action_text(x: &Suggestion) -> String {
    format!("{} (now {})", x.action.summary(), x.action.from)
}

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = suggestion_rows(s, st.filter());
    if rows.is_empty() {
        let text = vec![
            Line::from("No suggestions: every threshold of the performance guide is met."),
            Line::from(""),
            Line::from(
                "The advisor watches CPU against each container's limit (70%), memory \
                 against its limit (80%), agents' P95 against their baseline or SLO, queues \
                 that grow, GPU memory (90%), Ollama models that spill onto the CPU, and the \
                 host's CPU and memory, each over a sustained window. Suggestions appear here \
                 with their evidence; a applies one after a confirmation, y copies its \
                 command.",
            )
            .style(t.dim()),
        ];
        f.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(block(t, "suggestions")),
            area,
        );
        return;
    }
    let sel = st.selected().min(rows.len() - 1);
    let [list, detail] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(12.min(area.height / 2)),
    ])
    .areas(area);
    let body: Vec<Row> = rows
        .iter()
        .map(|x| {
            let style = t.severity(&x.severity);
            Row::new(vec![
                Cell::from(x.severity.clone()).style(style),
                Cell::from(x.service.clone()),
                Cell::from(x.rule.clone()),
                Cell::from(action_text(x)),
            ])
        })
        .collect();
    let table = Table::new(
        body,
        [
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Min(10),
        ],
    )
    .header(Row::new(vec!["SEVERITY", "SERVICE", "RULE", "ACTION"]).style(t.header()))
    .row_highlight_style(t.selected())
    .block(block(t, &format!("suggestions ({})", rows.len())));
    let mut ts = TableState::default().with_selected(Some(sel));
    f.render_stateful_widget(table, list, &mut ts);
    let x = rows[sel];
    let mut lines = vec![
        Line::from(vec![
            Span::styled("evidence  ", t.accent()),
            Span::raw(x.evidence.clone()),
        ]),
        Line::from(vec![
            Span::styled("command   ", t.accent()),
            Span::raw(x.command.clone()),
        ]),
    ];
    if !x.compose_patch.is_empty() {
        lines.push(Line::from(Span::styled(
            "keep it in docker-compose.yml:",
            t.accent(),
        )));
        for l in x.compose_patch.lines() {
            lines.push(Line::from(format!("  {l}")));
        }
    }
    let hint = if x.action.kind == "host" {
        "about the machine: nothing to apply here; y copies the text"
    } else if !x.action.appliable() {
        "a setting that needs a restart: nothing to apply live; y copies the command"
    } else {
        "a applies it live (asks first); Enter shows it whole; y copies the command"
    };
    lines.push(Line::from(Span::styled(hint, t.dim())));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(t, &x.id)),
        detail,
    );
}
