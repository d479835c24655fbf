//! View 3: per agent requests/s, errors, P50/P95/P99 with the P99 trend, CPU, memory
//! (working and peak), in flight and queued, from the gateway's own metrics.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{block, source_down};
use crate::model::snapshot::Snapshot;
use crate::tui::state::{UiState, agent_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::{bytes, ms, pct, spark};

fn num(v: &serde_json::Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = agent_rows(s, st.filter());
    if rows.is_empty() {
        let mut why = match &s.activity.gateway {
            Some(g) => format!("No agent figures yet. Gateway: {g}."),
            None => "No agent figures: no gateway is scraped.".into(),
        };
        if let Some(d) = source_down(s, "scrape") {
            why.push_str(&format!(" Scrape: {d}."));
        }
        why.push_str(
            " Figures appear after the gateway's first /metrics scrape; rates after the second.",
        );
        f.render_widget(
            Paragraph::new(why)
                .style(t.dim())
                .wrap(Wrap { trim: true })
                .block(block(t, "agents")),
            area,
        );
        return;
    }
    let wide = area.width >= 120;
    let mut header = vec![
        "AGENT",
        "REQ/S",
        "ERR/S",
        "P50",
        "P95",
        "P99",
        "P99 TREND",
        "INFL",
        "QUEUE",
    ];
    if wide {
        header.extend(["CPU", "HELD", "PEAK/RUN"]);
    }
    let body: Vec<Row> = rows
        .iter()
        .map(|a| {
            let name = a["agent"].as_str().unwrap_or("?").to_string();
            let trend = s
                .trends
                .get(&format!("agent:{name}:p99_seconds"))
                .cloned()
                .unwrap_or_default();
            let err = a["errors_per_s"].as_f64().unwrap_or(0.0);
            let mut cells = vec![
                Cell::from(name),
                Cell::from(num(&a["requests_per_s"], 1)),
                Cell::from(num(&a["errors_per_s"], 2)).style(if err > 0.0 {
                    t.bad()
                } else {
                    t.dim()
                }),
                Cell::from(ms(a["p50_seconds"].as_f64())),
                Cell::from(ms(a["p95_seconds"].as_f64())),
                Cell::from(ms(a["p99_seconds"].as_f64())),
                Cell::from(spark(t, &trend, 10, None)).style(t.accent()),
                Cell::from(num(&a["inflight"], 0)),
                Cell::from(num(&a["queued"], 0)),
            ];
            if wide {
                cells.extend([
                    Cell::from(pct(a["cpu_percent"].as_f64())),
                    Cell::from(bytes(a["memory_bytes"].as_f64().map(|b| b as u64))),
                    Cell::from(bytes(a["memory_peak_bytes"].as_f64().map(|b| b as u64))),
                ]);
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(22),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(5),
    ];
    if wide {
        widths.extend([
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(9),
        ]);
    }
    let title = match &s.activity.gateway {
        Some(g) => format!("agents ({}), gateway {g}", rows.len()),
        None => format!("agents ({})", rows.len()),
    };
    let table = Table::new(body, widths)
        .header(Row::new(header).style(t.header()))
        .row_highlight_style(t.selected())
        .block(block(t, &title));
    let mut ts = TableState::default().with_selected(Some(st.selected().min(rows.len() - 1)));
    f.render_stateful_widget(table, area, &mut ts);
}
