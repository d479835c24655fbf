//! View 2: every container with state, health, CPU against its limit (and its trend),
//! memory against its limit, restarts, uptime and ports; a dependency view; and, while
//! `up` runs, which service blocks and why. The detail pane shows the selected service's
//! probe: PostgreSQL, Redis, Qdrant, n8n, Langflow or Ollama figures.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{block, source_down};
use crate::model::snapshot::{ServiceStats, Snapshot};
use crate::tui::state::{UiState, service_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::{bytes, fit, spark, uptime};

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = service_rows(s, st.filter(), st.sort);
    let detail = detail_lines(st, s, t);
    // Wrapped lines count: a registry's message runs over several rows.
    let inner = usize::from(area.width.saturating_sub(2)).max(1);
    let rows_needed: usize = detail
        .iter()
        .map(|l| l.width().max(1).div_ceil(inner))
        .sum();
    let [list, info] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length((rows_needed as u16).saturating_add(2).min(area.height / 2)),
    ])
    .areas(area);
    if st.show_dependencies {
        dependencies(f, list, s, t);
    } else if rows.is_empty() {
        render_empty(f, list, st, s, t);
    } else {
        render_table(f, list, &rows, st, s, t);
    }
    f.render_widget(
        Paragraph::new(detail)
            .wrap(Wrap { trim: true })
            .block(block(t, "detail")),
        info,
    );
}

/// No rows: the engine is down, the project has no containers, or the filter hides all.
fn render_empty(f: &mut Frame, list: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let why = source_down(s, "containers").unwrap_or_else(|| {
        if st.filter().is_empty() {
            "no containers in this project: press U to bring the stack up".into()
        } else {
            format!(
                "no service matches the filter {:?} (Esc clears it)",
                st.filter()
            )
        }
    });
    f.render_widget(
        Paragraph::new(why)
            .wrap(Wrap { trim: true })
            .style(t.dim())
            .block(block(t, "services")),
        list,
    );
}

fn render_table(
    f: &mut Frame,
    list: Rect,
    rows: &[&ServiceStats],
    st: &UiState,
    s: &Snapshot,
    t: &Theme,
) {
    let wide = list.width >= 110;
    let mut header = vec![
        "SERVICE",
        "STATE",
        "HEALTH",
        "CPU",
        "TREND",
        "MEM / LIMIT",
        "RST",
        "UP",
    ];
    if wide {
        header.push("PORTS");
    }
    // The engine stopped answering: the rows are what it said last, not what runs now, so
    // no figure is shown as current and every state is marked as unknown.
    let stale = source_down(s, "containers");
    let live = stale.is_none();
    let body: Vec<Row> = rows.iter().map(|x| row(x, s, t, wide, live)).collect();
    let mut widths = vec![
        Constraint::Length(if wide { 18 } else { 12 }),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(if wide { 10 } else { 5 }),
        Constraint::Length(if wide { 19 } else { 15 }),
        Constraint::Length(3),
        Constraint::Length(if wide { 7 } else { 6 }),
    ];
    if wide {
        widths.push(Constraint::Min(10));
    }
    let mut title = format!("services ({}, {}", rows.len(), st.sort.label());
    if !st.filter().is_empty() {
        title.push_str(&format!(", filter {:?}", st.filter()));
    }
    title.push(')');
    if let Some(why) = stale {
        let at = s.sources.get("containers").and_then(|h| h.last_sample);
        let at = at.map_or("never".into(), crate::tui::widgets::clock);
        title = format!("{title} NOT CURRENT: as last listed at {at}; {why}");
    }
    let table = Table::new(body, widths)
        .header(Row::new(header).style(t.header()))
        .row_highlight_style(t.selected())
        .block(block(t, &title));
    let mut ts = TableState::default().with_selected(Some(st.selected().min(rows.len() - 1)));
    f.render_stateful_widget(table, list, &mut ts);
}

fn row<'a>(x: &'a ServiceStats, s: &Snapshot, t: &Theme, wide: bool, live: bool) -> Row<'a> {
    // The same figure as the column: % of the limit (0-100), else % of a core
    // scaled from 10% up, so an idle container's noise stays flat.
    let (trend, scale) = match s
        .trends
        .get(&format!("service:{}:cpu_limit_percent", x.container))
    {
        Some(v) => (v.clone(), 100.0),
        None => {
            let v = s
                .trends
                .get(&format!("service:{}:cpu_percent", x.container))
                .cloned()
                .unwrap_or_default();
            let top = v.iter().cloned().fold(10.0, f64::max);
            (v, top)
        }
    };
    let running = x.state == "running" && live;
    let cpu = x.cpu_limit_percent.or(x.cpu_percent);
    // A container that is not running has no figures: blank, never 0B.
    let mem = match (x.memory_bytes, x.memory_limit_bytes) {
        _ if !running => String::new(),
        (Some(m), Some(l)) => format!("{} / {}", bytes(Some(m)), bytes(Some(l))),
        (m, _) => bytes(m),
    };
    let trend = if running { trend } else { Vec::new() };
    let state = match pull_failed(s, x) {
        _ if !live => Cell::from(format!("{}?", x.state_label())).style(t.dim()),
        Some(_) => Cell::from("pull failed").style(t.bad()),
        None => Cell::from(x.state_label()).style(t.health(&x.state, "")),
    };
    let mut cells = vec![
        // Replicas: the number tells them apart (`worker`, `worker#2`).
        Cell::from(x.display_name()),
        state,
        Cell::from(if x.health.is_empty() || !live {
            "-".into()
        } else {
            x.health.clone()
        })
        .style(t.health(&x.state, &x.health)),
        Cell::from(if running {
            cpu_cell(x.cpu_limit_percent, x.cpu_percent)
        } else {
            String::new()
        })
        .style(cpu.map(|c| t.level(c)).unwrap_or_default()),
        Cell::from(spark(t, &trend, if wide { 10 } else { 5 }, Some(scale))).style(t.accent()),
        Cell::from(mem).style(x.memory_percent.map(|p| t.level(p)).unwrap_or_default()),
        Cell::from(x.restarts.to_string()).style(if x.restarts > 0 { t.warn() } else { t.dim() }),
        Cell::from(if live {
            uptime(x.uptime_s)
        } else {
            String::new()
        }),
    ];
    if wide {
        cells.push(Cell::from(x.ports.join(" ")).style(t.dim()));
    }
    Row::new(cells)
}

/// The CPU cell says what it measures: `% lim` of the container's CPU limit, or `% core`
/// (100 = one core, as `docker stats`) when it has none.
pub fn cpu_cell(of_limit: Option<f64>, of_core: Option<f64>) -> String {
    let f = |v: f64| {
        if v >= 10.0 {
            format!("{v:.0}%")
        } else {
            format!("{v:.1}%")
        }
    };
    match (of_limit, of_core) {
        (Some(l), _) => format!("{} lim", f(l)),
        (None, Some(c)) => format!("{} core", f(c)),
        _ => "-".into(),
    }
}

/// Why the last `up` could not get the row's image, while the row has no running
/// container.
fn pull_failed<'s>(s: &'s Snapshot, x: &ServiceStats) -> Option<&'s String> {
    if x.state == "running" {
        return None;
    }
    s.activity.image_failures.get(&x.service)
}

fn detail_lines<'a>(st: &UiState, s: &Snapshot, t: &Theme) -> Vec<Line<'a>> {
    let mut v = Vec::new();
    if let Some(a) = &s.activity.running {
        v.push(Line::from(Span::styled(
            format!("{a} in progress"),
            t.warn(),
        )));
        for why in s.activity.blocked.values() {
            v.push(Line::from(Span::styled(why.clone(), t.warn())));
        }
    }
    let rows = service_rows(s, st.filter(), st.sort);
    if let Some(why) = source_down(s, "containers")
        && !rows.is_empty()
    {
        // What follows is the engine's last word, not the state now.
        v.push(Line::from(Span::styled(
            format!("not current: {why}"),
            t.bad(),
        )));
        return v;
    }
    if let Some(x) = rows.get(st.selected()) {
        let mut l = if x.container.is_empty() && pull_failed(s, x).is_some() {
            format!("{}  not created: its image could not be pulled", x.service)
        } else if x.container.is_empty() {
            format!(
                "{}  not created: U brings the stack up from the file",
                x.service
            )
        } else {
            format!("{}  {}", x.container, x.state_label())
        };
        if let Some(p) = x.cpu_percent {
            l.push_str(&format!("  cpu {p:.1}% of one core"));
        }
        if let Some(n) = x.pids {
            l.push_str(&format!("  pids {n}"));
        }
        if let (Some(r), Some(w)) = (x.net_rx_bytes_per_s, x.net_tx_bytes_per_s) {
            l.push_str(&format!(
                "  net {}/s in {}/s out",
                bytes(Some(r as u64)),
                bytes(Some(w as u64))
            ));
        }
        v.push(Line::from(l));
        if let Some(why) = pull_failed(s, x) {
            // Whole: the registry's words and the fix, never cut.
            for line in why.lines() {
                v.push(Line::from(Span::styled(line.to_string(), t.bad())));
            }
        }
        if !x.health_output.trim().is_empty() {
            v.push(Line::from(Span::styled(
                format!(
                    "last health check: {}",
                    fit(
                        t,
                        &crate::model::secret::mask_url_credentials(x.health_output.trim()),
                        200
                    )
                ),
                t.dim(),
            )));
        }
        if let Some(d) = s.activity.dependencies.get(&x.service)
            && !d.is_empty()
        {
            v.push(Line::from(Span::styled(
                format!("waits for: {}", d.join(", ")),
                t.dim(),
            )));
        }
        if let Some(p) = &x.probe {
            v.extend(probe_lines(p, t));
        }
    }
    if v.is_empty() {
        v.push(Line::from(Span::styled("no service selected", t.dim())));
    }
    v
}

/// What the service's probe measured: one row per figure, errors in the warning colour.
fn probe_lines<'a>(p: &crate::model::probe::ProbeState, t: &Theme) -> Vec<Line<'a>> {
    let rows = crate::model::probe::show::details(p);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.into_iter()
        .map(|(k, val)| {
            let style = if k == "status" && val != "ok" {
                t.warn()
            } else {
                ratatui::style::Style::default()
            };
            Line::from(vec![
                Span::styled(format!("{k:<width$}  "), t.dim()),
                Span::styled(val, style),
            ])
        })
        .collect()
}

/// The compose dependency graph as an indented tree, roots first, with live state.
fn dependencies(f: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
    let deps = &s.activity.dependencies;
    let mut lines = Vec::new();
    if deps.is_empty() {
        lines.push(Line::from(Span::styled(
            "no dependency information",
            t.dim(),
        )));
    }
    let state_of = |svc: &str| {
        s.services
            .iter()
            .find(|x| x.service == svc)
            .map(|x| (x.state.clone(), x.health.clone()))
            .unwrap_or_else(|| ("absent".into(), String::new()))
    };
    // Services nobody depends on are the tops of the tree.
    let needed: std::collections::BTreeSet<String> = deps
        .values()
        .flatten()
        .map(|d| d.split(' ').next().unwrap_or("").to_string())
        .collect();
    fn walk<'a>(
        svc: &str,
        how: &str,
        depth: usize,
        deps: &std::collections::BTreeMap<String, Vec<String>>,
        state_of: &dyn Fn(&str) -> (String, String),
        t: &Theme,
        out: &mut Vec<Line<'a>>,
    ) {
        if depth > 12 {
            return;
        }
        let (state, health) = state_of(svc);
        let branch = if depth == 0 {
            String::new()
        } else if t.ascii {
            format!("{}`- ", "   ".repeat(depth - 1))
        } else {
            format!("{}└─ ", "   ".repeat(depth - 1))
        };
        out.push(Line::from(vec![
            Span::raw(format!("{branch}{svc} ")),
            Span::styled(
                format!(
                    "{state}{}",
                    if health.is_empty() {
                        String::new()
                    } else {
                        format!("/{health}")
                    }
                ),
                t.health(&state, &health),
            ),
            Span::styled(
                if how.is_empty() {
                    String::new()
                } else {
                    format!("  {how}")
                },
                t.dim(),
            ),
        ]));
        for d in deps.get(svc).into_iter().flatten() {
            let (name, cond) = d.split_once(' ').unwrap_or((d.as_str(), ""));
            walk(name, cond, depth + 1, deps, state_of, t, out);
        }
    }
    for top in deps.keys().filter(|k| !needed.contains(*k)) {
        walk(top, "", 0, deps, &state_of, t, &mut lines);
    }
    f.render_widget(
        Paragraph::new(lines).block(block(t, "dependencies (d: back to the list)")),
        area,
    );
}
