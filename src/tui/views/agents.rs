//! View 3: per agent requests/s, errors/s and the share of failed requests (FAILING when
//! most of the last minute's failed), P50/P95/P99 with the P99 trend, CPU, memory
//! (working and peak), in flight, queued and the P95 wait for a slot, from the gateway's
//! own metrics; the model
//! that serves each agent with its VRAM (shared, offloaded, cold), tokens/s and time to
//! first token, tokens and cost per request; a detail pane for the selected agent.

use ratatui::Frame;
use std::time::Duration;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{block, source_down};
use crate::model::agent::{AgentGpu, AgentRow};
use crate::model::agent_error::ErrorKind;
use crate::model::snapshot::Snapshot;
use crate::model::units::format_duration;
use crate::tui::state::{UiState, agent_rows};
use crate::tui::theme::Theme;
use crate::tui::widgets::{bytes, clock, fit, fit_middle, ms, pct, spark};

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let rows = agent_rows(s, st.filter(), st.show_replicas);
    if rows.is_empty() {
        render_empty(f, area, s, t);
        return;
    }
    let selected = st.selected().min(rows.len() - 1);
    let area = render_detail(f, area, &rows, selected, s, t);
    let cols = Columns::of(area.width);
    let body: Vec<Row> = rows.iter().map(|a| row(a, st, s, t, cols)).collect();
    // What fails comes first in the title, so that a narrow terminal still shows it.
    let mut title = format!("agents ({})", rows.len());
    if let Some(f) = failing_summary(s) {
        title.push_str(&format!(", {f}"));
    }
    if let Some(g) = &s.activity.gateway {
        title.push_str(&format!(", gateway {g}"));
    }
    let table = Table::new(body, widths(&rows, cols))
        .header(Row::new(header(cols)).style(t.header()))
        .row_highlight_style(t.selected())
        .block(block(t, &title));
    let mut ts = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut ts);
}

/// No agent rows: why, and when figures will appear.
fn render_empty(f: &mut Frame, area: Rect, s: &Snapshot, t: &Theme) {
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
}

/// The selected agent's detail below the table, as tall as its wrapped lines, leaving
/// the table its rows (or at least half the view). Returns the table's area.
fn render_detail(
    f: &mut Frame,
    area: Rect,
    rows: &[&AgentRow],
    selected: usize,
    s: &Snapshot,
    t: &Theme,
) -> Rect {
    let lines = detail_lines(rows[selected], t, s.taken_at);
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
    if room >= 5 {
        let h = (need as u16).min(room);
        let [table, detail] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(h)]).areas(area);
        let name = rows[selected].agent.as_str();
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: true })
                .block(block(t, &format!("{name} (p: probe its model)"))),
            detail,
        );
        table
    } else {
        area
    }
}

/// Which columns the table's width allows.
#[derive(Clone, Copy)]
struct Columns {
    wide: bool,
    /// Under 122 columns (80 included) MODEL and ERR/S give their room to the others, so
    /// that names keep 14 characters and every figure its unit; both are in the detail.
    narrow: bool,
    /// The P95 wait for a slot has its column from 122 columns on; the detail always
    /// shows the wait.
    with_wait: bool,
}

impl Columns {
    fn of(width: u16) -> Columns {
        let narrow = width < 122;
        Columns {
            wide: width >= 130,
            narrow,
            with_wait: !narrow,
        }
    }
}

fn header(c: Columns) -> Vec<&'static str> {
    let mut header = vec![
        "AGENT",
        "MODEL",
        "VRAM",
        "REQ/S",
        "ERR/S",
        "ERR%",
        "P50",
        "P95",
        "P99",
        "P99 TREND",
        "INFL",
        "QUEUE",
        "WAIT95",
    ];
    if !c.with_wait {
        header.pop();
    }
    if c.wide {
        header.extend(["TOK/S", "TTFT", "$/REQ", "CPU", "HELD"]);
    }
    if c.narrow {
        header[9] = "TREND";
        header.remove(4);
        header.remove(1);
    }
    header
}

fn row<'a>(a: &AgentRow, st: &UiState, s: &Snapshot, t: &Theme, c: Columns) -> Row<'a> {
    let Columns {
        wide,
        narrow,
        with_wait,
    } = c;
    let name = a.agent.clone();
    let trend = s
        .trends
        .get(&format!("agent:{name}:p99_seconds"))
        .cloned()
        .unwrap_or_default();
    let err = a.errors_per_s.unwrap_or(0.0);
    let (mut vram, bad) = vram_cell(a);
    if narrow {
        vram = vram.replace("off+sh ", "o+s ");
    }
    // A replica's row sits under its merged row: show just its container.
    let shown = match a.replica.as_deref() {
        Some(r) if st.ascii => format!(" - {r}"),
        Some(r) => format!(" └ {r}"),
        None => name,
    };
    let shown = if narrow {
        fit_middle(t, &shown, 14)
    } else {
        shown
    };
    let bad_if = |on: bool| if on { t.bad() } else { t.dim() };
    let share = error_share(a);
    let mut cells = vec![
        Cell::from(shown).style(if a.is_failing() {
            t.bad()
        } else {
            Style::default()
        }),
        Cell::from(fit(t, a.model.as_deref().unwrap_or("-"), 15)),
        Cell::from(vram).style(if bad { t.bad() } else { t.dim() }),
        Cell::from(num(a.requests_per_s, 1)),
        Cell::from(num(a.errors_per_s, 2)).style(bad_if(err > 0.0)),
        Cell::from(percent(share)).style(bad_if(share.is_some_and(|p| p > 0.0))),
        Cell::from(ms(a.p50_seconds.flatten())),
        Cell::from(ms(a.p95_seconds.flatten())),
        Cell::from(ms(a.p99_seconds.flatten())),
        Cell::from(spark(t, &trend, if narrow { 5 } else { 9 }, None)).style(t.accent()),
        Cell::from(num(a.inflight, 0)),
        Cell::from(num(a.queued, 0)),
    ];
    if with_wait {
        cells.push(Cell::from(ms(a.wait_p95_seconds)));
    }
    if wide {
        cells.extend([
            Cell::from(num(a.tokens_per_second_p50.flatten(), 1)),
            Cell::from(ms(a.ttft_p50_seconds.flatten())),
            Cell::from(dollars(a.cost_per_request_dollars)),
            Cell::from(pct(a.cpu_percent)),
            Cell::from(bytes(a.memory_bytes.map(|b| b as u64))),
        ]);
    }
    if narrow {
        cells.remove(4);
        cells.remove(1);
    }
    Row::new(cells)
}

fn widths(rows: &[&AgentRow], c: Columns) -> Vec<Constraint> {
    let mut widths = vec![
        // Wide enough for `gateway/knowledge_management` when replicas are merged.
        Constraint::Length(
            rows.iter()
                .filter(|a| a.replica.is_none())
                .map(|a| a.agent.chars().count())
                .max()
                .unwrap_or(20)
                .clamp(20, 30) as u16,
        ),
        Constraint::Length(15),
        Constraint::Length(14),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(4),
        Constraint::Length(5),
    ];
    if c.with_wait {
        widths.push(Constraint::Length(6));
    }
    if c.narrow {
        widths = [14, 11, 6, 5, 6, 6, 6, 5, 4, 5]
            .into_iter()
            .map(Constraint::Length)
            .collect();
    }
    if c.wide {
        widths.extend([
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(6),
            // `117.6KiB`, `1023.9MiB` fits but for its last letter.
            Constraint::Length(8),
        ]);
    }
    widths
}

/// The share of the agent's requests that failed: since the previous scrape, else over
/// the gateway's last minute.
pub fn error_share(a: &AgentRow) -> Option<f64> {
    a.error_share()
}

/// Most of the agent's requests of the last minute failed (the gateway's window).
pub fn is_failing(a: &AgentRow) -> bool {
    a.is_failing()
}

fn percent(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into())
}

/// `FAILING: daily_brief (100% of requests), ollama (circuit open)`: the agents whose
/// requests mostly fail and the providers whose circuit is open or half-open, over every
/// agent; None when nothing fails.
pub fn failing_summary(s: &Snapshot) -> Option<String> {
    let mut parts: Vec<String> = s
        .agents
        .iter()
        .filter(|a| is_failing(a))
        .map(|a| format!("{} ({} of requests)", a.agent, percent(error_share(a))))
        .collect();
    let mut providers: Vec<&str> = s
        .agents
        .iter()
        .flat_map(|a| a.providers_failing.iter().flatten())
        .map(String::as_str)
        .collect();
    providers.sort_unstable();
    providers.dedup();
    if !providers.is_empty() {
        parts.push(format!("{} (circuit open)", providers.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("FAILING: {}", parts.join(", ")))
}

/// The detail pane's error lines: the rate and share, FAILING, and the last error with
/// its kind and time (`now` for its age).
fn error_lines<'a>(a: &AgentRow, t: &Theme, now: f64) -> Vec<Line<'a>> {
    let share = error_share(a);
    let mut rate = vec![
        Span::styled("errors ", t.header()),
        Span::styled(
            format!(
                "{}/s, {} of requests",
                num(a.errors_per_s, 2),
                percent(share)
            ),
            if share.is_some_and(|p| p > 0.0) {
                t.bad()
            } else {
                Style::default()
            },
        ),
    ];
    if let (Some(n), Some(e)) = (a.window_requests, a.window_errors) {
        rate.push(Span::raw(format!(
            " ({e:.0} of {n:.0} failed in the last minute)"
        )));
    }
    if is_failing(a) {
        rate.push(Span::styled("  FAILING", t.bad()));
    }
    let mut last = vec![Span::styled("last   ", t.header())];
    match a.last_error_kind.as_deref() {
        Some(k) => {
            let kind = ErrorKind::from_label(k).map_or(k.to_string(), |k| k.describe().into());
            last.push(Span::styled(kind, t.bad()));
            if let Some(at) = a.last_error_at {
                let ago = Duration::from_secs((now - at).max(0.0) as u64);
                last.push(Span::raw(format!(
                    " at {} UTC, {} ago",
                    clock(at),
                    format_duration(ago)
                )));
            }
            let m = a.last_error.as_deref().unwrap_or("");
            let m: String = if t.ascii {
                m.chars()
                    .map(|c| if c.is_ascii() { c } else { '?' })
                    .collect()
            } else {
                m.to_string()
            };
            last.push(Span::raw(format!(": {m}")));
        }
        None => last.push(Span::styled("no error yet", t.dim())),
    }
    vec![Line::from(rate), Line::from(last)]
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
fn vram_cell(a: &AgentRow) -> (String, bool) {
    let g = a.gpu.as_ref();
    let b = || bytes(g.and_then(|g| g.vram_bytes));
    let shared = g
        .and_then(|g| g.shared_with.as_ref())
        .is_some_and(|x| !x.is_empty());
    match g.map(|g| g.state.as_str()) {
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

/// The selected agent: its model and VRAM, its errors, speed, economics and the
/// providers it uses.
fn detail_lines<'a>(a: &AgentRow, t: &Theme, now: f64) -> Vec<Line<'a>> {
    let no_gpu = AgentGpu::default();
    let g = a.gpu.as_ref().unwrap_or(&no_gpu);
    let mut lines: Vec<Line> = Vec::new();
    lines.push(model_line(a, t));
    lines.extend(error_lines(a, t, now));
    lines.push(vram_line(g, t));
    lines.push(Line::from(vec![
        Span::styled("wait   ", t.header()),
        Span::raw(format!(
            "for a slot P50 {}, P95 {}, P99 {}   slot held P50 {}, P95 {}, P99 {}   (last 60 s; latency includes the wait)",
            ms(a.wait_p50_seconds),
            ms(a.wait_p95_seconds),
            ms(a.wait_p99_seconds),
            ms(a.execution_p50_seconds),
            ms(a.execution_p95_seconds),
            ms(a.execution_p99_seconds),
        )),
    ]));
    lines.push(Line::from(vec![
        Span::styled("speed  ", t.header()),
        Span::raw(format!(
            "{} tok/s P50, {} P95   TTFT P50 {}, P95 {}",
            num(a.tokens_per_second_p50.flatten(), 1),
            num(a.tokens_per_second_p95.flatten(), 1),
            ms(a.ttft_p50_seconds.flatten()),
            ms(a.ttft_p95_seconds.flatten())
        )),
    ]));
    lines.push(Line::from(vec![
        Span::styled("usage  ", t.header()),
        Span::raw(format!(
            "{} tokens/request  {}/request  {} requests/active user  {} requests/day, {}/month at this rate",
            num(a.tokens_per_request, 0),
            dollars(a.cost_per_request_dollars),
            num(a.per_active_user_requests.flatten(), 1),
            num(a.projected_daily_requests.flatten(), 0),
            dollars(a.projected_monthly_cost_dollars.flatten()),
        )),
    ]));
    lines.push(Line::from(vec![
        Span::styled("cpu    ", t.header()),
        Span::raw(format!(
            "{}  held {}  peak/run {}",
            pct(a.cpu_percent),
            bytes(a.memory_bytes.map(|b| b as u64)),
            bytes(a.memory_peak_bytes.map(|b| b as u64)),
        )),
    ]));
    lines.extend(provider_lines(a, t));
    lines
}

/// The model serving the agent, where, and how much of it is in VRAM.
fn model_line<'a>(a: &AgentRow, t: &Theme) -> Line<'a> {
    let no_gpu = AgentGpu::default();
    let gpu = a.gpu.as_ref();
    let g = gpu.unwrap_or(&no_gpu);
    let mut model = vec![Span::styled("model  ", t.header())];
    match (a.provider.as_deref(), a.model.as_deref()) {
        (Some(p), Some(m)) => model.push(Span::raw(format!(
            "{m} on {p} ({})",
            gpu.map(|g| g.model_from.as_str()).unwrap_or("?")
        ))),
        _ => model.push(Span::styled("not known yet", t.dim())),
    }
    match gpu.map(|g| g.state.as_str()) {
        Some(st @ ("loaded" | "offloaded" | "cpu")) => {
            model.push(Span::raw(format!(
                "  {} of {} in VRAM ({:.0}%)",
                bytes(g.vram_bytes),
                bytes(g.size_bytes),
                g.gpu_percent.unwrap_or(0.0)
            )));
            if let Some(m) = g.vram_measured_bytes {
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
    Line::from(model)
}

/// Whether the model's VRAM is shared, its last load and when it unloads.
fn vram_line<'a>(g: &AgentGpu, t: &Theme) -> Line<'a> {
    let mut mem = vec![Span::styled("vram   ", t.header())];
    let shared: Vec<&str> = g.shared_with.iter().flatten().map(String::as_str).collect();
    mem.push(Span::raw(if shared.is_empty() {
        "not shared".to_string()
    } else {
        format!("shared with {}", shared.join(", "))
    }));
    if let Some(l) = g.last_load_seconds.flatten() {
        mem.push(Span::raw(format!("  last load {}", ms(Some(l)))));
    }
    if let Some(e) = g.expires_at.as_ref().and_then(|e| e.as_deref()) {
        mem.push(Span::styled(format!("  unloads {e}"), t.dim()));
    }
    Line::from(mem)
}

/// One line per provider and model the agent used, failing ones marked.
fn provider_lines<'a>(a: &AgentRow, t: &Theme) -> Vec<Line<'a>> {
    let mut lines = Vec::new();
    for m in &a.models {
        let n = m.requests.unwrap_or(0.0);
        let circuit = m.circuit.as_deref().filter(|c| *c != "closed");
        lines.push(Line::from(Span::styled(
            format!(
                "  {}/{} {}{}: {}",
                m.provider,
                m.model,
                m.role.as_deref().unwrap_or("seen"),
                circuit
                    .map(|c| format!(" [failing: circuit {c}]"))
                    .unwrap_or_default(),
                if n > 0.0 {
                    format!(
                        "{n:.0} answer{}, {} tokens and {} each, mean {}",
                        if n == 1.0 { "" } else { "s" },
                        num(m.tokens_per_request, 0),
                        dollars(m.cost_per_request_dollars),
                        ms(m.mean_seconds)
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
