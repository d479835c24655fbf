//! View 3: per agent requests/s, errors, P50/P95/P99 with the P99 trend, CPU, memory
//! (working and peak), in flight and queued, from the gateway's own metrics; the model
//! that serves each agent with its VRAM (shared, offloaded, cold), tokens/s and time to
//! first token, tokens and cost per request; a detail pane for the selected agent.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{block, source_down};
use crate::model::snapshot::Snapshot;
use crate::tui::state::{UiState, agent_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::{bytes, fit, ms, pct, spark};

fn num(v: &serde_json::Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = agent_rows(s, st.filter(), st.show_replicas);
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
    let selected = st.selected().min(rows.len() - 1);
    // The selected agent's detail below the table, as tall as its wrapped lines, leaving
    // the table its rows (or at least half the view).
    let lines = detail_lines(rows[selected], t);
    let inner = area.width.saturating_sub(2).max(1) as usize;
    let need: usize = lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner))
        .sum::<usize>()
        + 2;
    let table_need = rows.len() as u16 + 3;
    let room = area
        .height
        .saturating_sub(table_need.min(area.height / 2).max(4));
    let area = if room >= 5 {
        let h = (need as u16).min(room);
        let [table, detail] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(h)]).areas(area);
        let name = rows[selected]["agent"].as_str().unwrap_or("?");
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(block(t, &format!("{name} (p: probe its model)"))),
            detail,
        );
        table
    } else {
        area
    };
    let wide = area.width >= 130;
    let mut header = vec![
        "AGENT",
        "MODEL",
        "VRAM",
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
        header.extend(["TOK/S", "TTFT", "$/REQ", "CPU", "HELD"]);
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
            let (vram, bad) = vram_cell(a);
            // A replica's row sits under its merged row: show just its container.
            let shown = match a["replica"].as_str() {
                Some(r) if st.ascii => format!(" - {r}"),
                Some(r) => format!(" └ {r}"),
                None => name,
            };
            let mut cells = vec![
                Cell::from(shown),
                Cell::from(fit(t, a["model"].as_str().unwrap_or("-"), 16)),
                Cell::from(vram).style(if bad { t.bad() } else { t.dim() }),
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
                    Cell::from(num(&a["tokens_per_second_p50"], 1)),
                    Cell::from(ms(a["ttft_p50_seconds"].as_f64())),
                    Cell::from(dollars(a["cost_per_request_dollars"].as_f64())),
                    Cell::from(pct(a["cpu_percent"].as_f64())),
                    Cell::from(bytes(a["memory_bytes"].as_f64().map(|b| b as u64))),
                ]);
            }
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        // Wide enough for `gateway/knowledge_management` when replicas are merged.
        Constraint::Length(
            rows.iter()
                .filter(|a| a.get("replica").is_none())
                .map(|a| a["agent"].as_str().map(|n| n.chars().count()).unwrap_or(1))
                .max()
                .unwrap_or(20)
                .clamp(20, 30) as u16,
        ),
        Constraint::Length(16),
        Constraint::Length(14),
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
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(9),
        ]);
    }
    let mut title = match &s.activity.gateway {
        Some(g) => format!("agents ({}), gateway {g}", rows.len()),
        None => format!("agents ({})", rows.len()),
    };
    // Providers whose circuit breaker is open or half-open, over every agent.
    let mut failing: Vec<&str> = s
        .agents
        .iter()
        .flat_map(|a| a["providers_failing"].as_array().into_iter().flatten())
        .filter_map(|p| p.as_str())
        .collect();
    failing.sort_unstable();
    failing.dedup();
    if !failing.is_empty() {
        title.push_str(&format!(", FAILING: {} (circuit open)", failing.join(", ")));
    }
    let table = Table::new(body, widths)
        .header(Row::new(header).style(t.header()))
        .row_highlight_style(t.selected())
        .block(block(t, &title));
    let mut ts = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut ts);
}

fn dollars(v: Option<f64>) -> String {
    match v {
        Some(0.0) => "$0".into(),
        Some(d) if d < 0.01 => format!("${d:.5}"),
        Some(d) => format!("${d:.2}"),
        None => "-".into(),
    }
}

/// The VRAM column: the model's VRAM with a mark (shared, off = partly on the CPU),
/// `cold` (the next request loads it), `cpu`, or `remote` for a cloud model. The flag
/// says whether it needs attention.
fn vram_cell(a: &serde_json::Value) -> (String, bool) {
    let g = &a["gpu"];
    let b = || bytes(g["vram_bytes"].as_u64());
    let shared = g["shared_with"].as_array().is_some_and(|x| !x.is_empty());
    match g["state"].as_str() {
        Some("loaded") if shared => (format!("sh {}", b()), false),
        Some("loaded") => (b(), false),
        Some("offloaded") if shared => (format!("off+sh {}", b()), true),
        Some("offloaded") => (format!("off {}", b()), true),
        Some("cpu") => ("cpu only".into(), true),
        Some("cold") => ("cold".into(), false),
        Some("remote") => ("remote".into(), false),
        _ => ("-".into(), false),
    }
}

/// The selected agent: its model and VRAM, speed, economics and the providers it uses.
fn detail_lines<'a>(a: &serde_json::Value, t: &Theme) -> Vec<Line<'a>> {
    let g = &a["gpu"];
    let mut lines: Vec<Line> = Vec::new();
    let mut model = vec![Span::styled("model  ", t.header())];
    match (a["provider"].as_str(), a["model"].as_str()) {
        (Some(p), Some(m)) => model.push(Span::raw(format!(
            "{m} on {p} ({})",
            g["model_from"].as_str().unwrap_or("?")
        ))),
        _ => model.push(Span::styled("not known yet", t.dim())),
    }
    match g["state"].as_str() {
        Some(st @ ("loaded" | "offloaded" | "cpu")) => {
            model.push(Span::raw(format!(
                "  {} of {} in VRAM ({:.0}%)",
                bytes(g["vram_bytes"].as_u64()),
                bytes(g["size_bytes"].as_u64()),
                g["gpu_percent"].as_f64().unwrap_or(0.0)
            )));
            if let Some(m) = g["vram_measured_bytes"].as_u64() {
                model.push(Span::raw(format!(", NVML {}", bytes(Some(m)))));
            }
            if st != "loaded" {
                model.push(Span::styled(
                    "  PARTLY ON THE CPU (slow)".to_string(),
                    t.bad(),
                ));
            }
        }
        Some("cold") => model.push(Span::styled(
            "  not loaded: the next request loads it (cold start)",
            t.warn(),
        )),
        Some("remote") => model.push(Span::styled("  remote: no local VRAM", t.dim())),
        _ => {}
    }
    lines.push(Line::from(model));
    let mut mem = vec![Span::styled("vram   ", t.header())];
    let shared: Vec<&str> = g["shared_with"]
        .as_array()
        .map(|x| x.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    mem.push(Span::raw(if shared.is_empty() {
        "not shared".to_string()
    } else {
        format!("shared with {}", shared.join(", "))
    }));
    if let Some(l) = g["last_load_seconds"].as_f64() {
        mem.push(Span::raw(format!("  last load {}", ms(Some(l)))));
    }
    if let Some(e) = g["expires_at"].as_str() {
        mem.push(Span::styled(format!("  unloads {e}"), t.dim()));
    }
    lines.push(Line::from(mem));
    lines.push(Line::from(vec![
        Span::styled("speed  ", t.header()),
        Span::raw(format!(
            "{} tok/s P50, {} P95   TTFT P50 {}, P95 {}",
            num(&a["tokens_per_second_p50"], 1),
            num(&a["tokens_per_second_p95"], 1),
            ms(a["ttft_p50_seconds"].as_f64()),
            ms(a["ttft_p95_seconds"].as_f64())
        )),
    ]));
    lines.push(Line::from(vec![
        Span::styled("usage  ", t.header()),
        Span::raw(format!(
            "{} tokens/request  {}/request  {} requests/active user  {} requests/day, {}/month at this rate",
            num(&a["tokens_per_request"], 0),
            dollars(a["cost_per_request_dollars"].as_f64()),
            num(&a["per_active_user_requests"], 1),
            num(&a["projected_daily_requests"], 0),
            dollars(a["projected_monthly_cost_dollars"].as_f64()),
        )),
    ]));
    lines.push(Line::from(vec![
        Span::styled("cpu    ", t.header()),
        Span::raw(format!(
            "{}  held {}  peak/run {}",
            pct(a["cpu_percent"].as_f64()),
            bytes(a["memory_bytes"].as_f64().map(|b| b as u64)),
            bytes(a["memory_peak_bytes"].as_f64().map(|b| b as u64)),
        )),
    ]));
    for m in a["models"].as_array().into_iter().flatten() {
        let n = m["requests"].as_f64().unwrap_or(0.0);
        let circuit = m["circuit"].as_str().filter(|c| *c != "closed");
        lines.push(Line::from(Span::styled(
            format!(
                "  {}/{} {}{}: {}",
                m["provider"].as_str().unwrap_or("?"),
                m["model"].as_str().unwrap_or("?"),
                m["role"].as_str().unwrap_or("seen"),
                circuit
                    .map(|c| format!(" [failing: circuit {c}]"))
                    .unwrap_or_default(),
                if n > 0.0 {
                    format!(
                        "{n:.0} answer{}, {} tokens and {} each, mean {}",
                        if n == 1.0 { "" } else { "s" },
                        num(&m["tokens_per_request"], 0),
                        dollars(m["cost_per_request_dollars"].as_f64()),
                        ms(m["mean_seconds"].as_f64())
                    )
                } else {
                    "no answers yet".into()
                }
            ),
            if circuit.is_some() { t.bad() } else { t.dim() },
        )));
    }
    lines
}
