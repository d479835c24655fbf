//! View 1: the whole stack at a glance: services, host, GPU, agents, advice, last events.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{block, source_down};
use crate::model::snapshot::Snapshot;
use crate::model::units::format_bytes;
use crate::tui::state::UiState;
use crate::tui::theme::Theme;
use crate::tui::views::agents::{error_share, is_failing};
use crate::tui::widgets::{fit, gauge, ms, spark};

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    // The fleet's hosts first, when the settings file lists some; the rest below.
    let area = if s.fleet.is_empty() {
        area
    } else {
        let fleet = fleet_lines(st, s, t, area.width.saturating_sub(2) as usize);
        let [top, rest] = Layout::vertical([
            Constraint::Length((fleet.len() as u16 + 2).min(area.height / 2)),
            Constraint::Min(0),
        ])
        .areas(area);
        f.render_widget(Paragraph::new(fleet).block(block(t, "fleet")), top);
        rest
    };
    let wide = area.width >= 100;
    let (left, right) = if wide {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(area);
        (l, r)
    } else {
        (area, Rect::default())
    };
    let stack = stack_lines(s, t, left.width.saturating_sub(2) as usize, wide);
    let host = host_lines(s, t, left.width.saturating_sub(2) as usize);
    let gpu = gpu_lines(s, t, left.width.saturating_sub(2) as usize);
    let agents = agent_lines(s, t);
    let advice = advice_lines(
        s,
        t,
        right.width.max(area.width / 2).saturating_sub(2) as usize,
    );
    let events = |r: Rect| {
        event_lines(
            s,
            t,
            r.width.saturating_sub(2) as usize,
            r.height.saturating_sub(2) as usize,
        )
    };
    let h = |v: &Vec<Line>| v.len() as u16 + 2;
    if wide {
        // Wide: host and GPU as tall as they need; the stack, one line per container,
        // takes the rest.
        let [b, c, a] = Layout::vertical([
            Constraint::Length(h(&host)),
            Constraint::Length(h(&gpu)),
            Constraint::Min(3),
        ])
        .areas(left);
        f.render_widget(Paragraph::new(stack).block(block(t, "stack")), a);
        f.render_widget(Paragraph::new(host).block(block(t, "host")), b);
        f.render_widget(Paragraph::new(gpu).block(block(t, "gpu")), c);
        let [d, e, g] = Layout::vertical([
            Constraint::Length(h(&agents)),
            Constraint::Length(h(&advice)),
            Constraint::Min(3),
        ])
        .areas(right);
        f.render_widget(Paragraph::new(agents).block(block(t, "agents")), d);
        f.render_widget(Paragraph::new(advice).block(block(t, "suggestions")), e);
        f.render_widget(Paragraph::new(events(g)).block(block(t, "last events")), g);
    } else {
        // Narrow: one column, each box as tall as it needs, events take what is left.
        let advice_h = if s.suggestions.is_empty() {
            0
        } else {
            h(&advice).min(5)
        };
        let [a, b, c, d, x, e] = Layout::vertical([
            Constraint::Length(h(&stack)),
            Constraint::Length(h(&host)),
            Constraint::Length(h(&gpu).min(4)),
            Constraint::Length(h(&agents).min(4)),
            Constraint::Length(advice_h),
            Constraint::Min(3),
        ])
        .areas(area);
        if advice_h > 0 {
            f.render_widget(Paragraph::new(advice).block(block(t, "suggestions")), x);
        }
        f.render_widget(Paragraph::new(stack).block(block(t, "stack")), a);
        f.render_widget(Paragraph::new(host).block(block(t, "host")), b);
        f.render_widget(Paragraph::new(gpu).block(block(t, "gpu")), c);
        f.render_widget(Paragraph::new(agents).block(block(t, "agents")), d);
        f.render_widget(Paragraph::new(events(e)).block(block(t, "last events")), e);
    }
}

/// The fleet's table, the selected host highlighted (Enter switches to it), the one the
/// console shows marked, an unreachable one in the bad style, one with containers down
/// or unhealthy in the warning style.
fn fleet_lines<'a>(st: &UiState, s: &Snapshot, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let text = crate::model::fleet::table_lines(&s.fleet);
    let mut lines = vec![Line::from(Span::styled(
        fit(t, &format!("  {}", text[0]), width),
        t.header(),
    ))];
    let mark = if t.ascii { ">" } else { "▶" };
    for (i, (r, l)) in s.fleet.iter().zip(&text[1..]).enumerate() {
        let style = if i == st.selected() && st.view == crate::tui::action::View::Overview {
            t.selected()
        } else if r.error.is_some() {
            t.bad()
        } else if r.unhealthy > 0 || r.running < r.total {
            t.warn()
        } else {
            t.ok()
        };
        let shown = crate::tui::state::is_shown(s, r);
        let l = format!("{} {l}", if shown { mark } else { " " });
        lines.push(Line::from(Span::styled(fit(t, &l, width), style)));
    }
    lines
}

fn stack_lines<'a>(s: &Snapshot, t: &Theme, width: usize, detailed: bool) -> Vec<Line<'a>> {
    if let Some(why) = source_down(s, "containers") {
        return vec![Line::from(Span::styled(fit(t, &why, width * 2), t.bad()))];
    }
    let n = s.services.len();
    let running = s.services.iter().filter(|x| x.state == "running").count();
    let healthy = s.services.iter().filter(|x| x.health == "healthy").count();
    let unhealthy = s
        .services
        .iter()
        .filter(|x| x.health == "unhealthy")
        .count();
    let restarts: i64 = s.services.iter().map(|x| x.restarts).sum();
    let mut lines = Vec::new();
    if let Some(why) = source_down(s, "journal") {
        lines.push(Line::from(Span::styled(
            fit(t, &format!("journal: {why}"), width * 2),
            t.bad(),
        )));
    }
    lines.extend([Line::from(vec![
        Span::styled(
            format!("{running}/{n} running"),
            if running == n { t.ok() } else { t.warn() },
        ),
        Span::raw(format!("  {healthy} healthy  ")),
        Span::styled(
            format!("{unhealthy} unhealthy"),
            if unhealthy > 0 { t.bad() } else { t.dim() },
        ),
        Span::raw(format!("  {restarts} restarts")),
    ])]);
    if n == 0 {
        lines.push(Line::from(Span::styled(
            "no containers: press U to bring the stack up",
            t.dim(),
        )));
    }
    let dot = if t.ascii { "*" } else { "●" };
    if detailed {
        // One line per container: state, health, CPU of its limit, memory of its limit.
        for x in &s.services {
            let name = match x.container.rsplit('-').next() {
                Some(n) if n != "1" => format!("{} #{n}", x.service),
                _ => x.service.clone(),
            };
            let cpu = x.cpu_limit_percent.or(x.cpu_percent);
            let health = if x.health.is_empty() { "-" } else { &x.health };
            lines.push(Line::from(vec![
                Span::styled(format!("{dot} "), t.health(&x.state, &x.health)),
                Span::raw(format!("{:<14} ", fit(t, &name, 14))),
                Span::styled(
                    format!("{:<8} {:<9}", x.state, health),
                    t.health(&x.state, &x.health),
                ),
                Span::styled(
                    format!(" cpu {:>6}", crate::tui::widgets::pct(cpu)),
                    cpu.map(|c| t.level(c)).unwrap_or_default(),
                ),
                Span::styled(
                    format!(" mem {:>6}", crate::tui::widgets::pct(x.memory_percent)),
                    x.memory_percent.map(|c| t.level(c)).unwrap_or_default(),
                ),
            ]));
        }
    }
    // One compact cell per container: "● api" coloured by health.
    let services = if detailed { &[][..] } else { &s.services[..] };
    let mut row: Vec<Span> = Vec::new();
    let mut used = 0;
    for x in services {
        let cell = format!("{dot} {}  ", x.service);
        if used + cell.chars().count() > width && !row.is_empty() {
            lines.push(Line::from(std::mem::take(&mut row)));
            used = 0;
        }
        used += cell.chars().count();
        row.push(Span::styled(cell, t.health(&x.state, &x.health)));
    }
    if !row.is_empty() {
        lines.push(Line::from(row));
    }
    if let Some(a) = &s.activity.running {
        lines.push(Line::from(Span::styled(
            format!("{a} in progress"),
            t.warn(),
        )));
        for why in s.activity.blocked.values() {
            lines.push(Line::from(Span::styled(fit(t, why, width), t.warn())));
        }
    }
    lines
}

fn host_lines<'a>(s: &Snapshot, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let Some(h) = &s.host else {
        let why = source_down(s, "host").unwrap_or_else(|| "waiting for the first sample".into());
        return vec![Line::from(Span::styled(why, t.dim()))];
    };
    let gw = width.saturating_sub(34).clamp(0, 30);
    let trend = s
        .trends
        .get("host:cpu_percent")
        .cloned()
        .unwrap_or_default();
    let mem_pct = if h.memory_total_bytes > 0 {
        h.memory_used_bytes as f64 / h.memory_total_bytes as f64 * 100.0
    } else {
        0.0
    };
    let mut lines = vec![
        Line::from(vec![
            Span::raw(format!("cpu {:>5.1}% ", h.cpu_percent)),
            Span::styled(gauge(t, h.cpu_percent, gw), t.level(h.cpu_percent)),
            Span::raw(" "),
            Span::styled(spark(t, &trend, 14, Some(100.0)), t.accent()),
        ]),
        Line::from(vec![
            Span::raw(format!("mem {mem_pct:>5.1}% ")),
            Span::styled(gauge(t, mem_pct, gw), t.level(mem_pct)),
            Span::raw(format!(
                " {} / {}",
                format_bytes(h.memory_used_bytes),
                format_bytes(h.memory_total_bytes)
            )),
        ]),
    ];
    for d in &h.disks {
        let used = d.total_bytes.saturating_sub(d.available_bytes);
        let p = if d.total_bytes > 0 {
            used as f64 / d.total_bytes as f64 * 100.0
        } else {
            0.0
        };
        lines.push(Line::from(vec![
            Span::raw(format!("disk {p:>4.0}% ")),
            Span::styled(gauge(t, p, gw), t.level(p)),
            Span::raw(format!(
                " {} free {}",
                format_bytes(d.available_bytes),
                fit(t, &d.mount, 20)
            )),
        ]));
    }
    let mut last = format!("{} cores", h.per_core_percent.len());
    if let Some(l) = h.load {
        last.push_str(&format!("  load {:.2} {:.2} {:.2}", l[0], l[1], l[2]));
    }
    last.push_str(&format!(
        "  osmen {:.1}% {}",
        h.osmen_cpu_percent,
        format_bytes(h.osmen_memory_bytes)
    ));
    lines.push(Line::from(Span::styled(fit(t, &last, width), t.dim())));
    lines
}

fn gpu_lines<'a>(s: &Snapshot, t: &Theme, width: usize) -> Vec<Line<'a>> {
    if s.gpus.is_empty() {
        let why = source_down(s, "gpu").unwrap_or_else(|| "no GPU reported yet".into());
        return vec![Line::from(Span::styled(fit(t, &why, width), t.dim()))];
    }
    let gw = width.saturating_sub(40).clamp(0, 20);
    s.gpus
        .iter()
        .map(|g| {
            let p = if g.memory_total_bytes > 0 {
                g.memory_used_bytes as f64 / g.memory_total_bytes as f64 * 100.0
            } else {
                0.0
            };
            Line::from(vec![
                Span::raw(format!("{} vram ", g.index)),
                Span::styled(gauge(t, p, gw), t.level(p)),
                Span::raw(format!(
                    " {}/{} util {} {}",
                    format_bytes(g.memory_used_bytes),
                    format_bytes(g.memory_total_bytes),
                    g.gpu_util_percent
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "-".into()),
                    g.temperature_c
                        .map(|c| format!("{c}{}", t.degrees()))
                        .unwrap_or_default(),
                )),
            ])
        })
        .collect()
}

/// One line per agent: requests/s, errors/s and the share that failed, P99, in flight,
/// and FAILING; failing agents first, so that a short box still shows them.
fn agent_lines<'a>(s: &Snapshot, t: &Theme) -> Vec<Line<'a>> {
    if s.agents.is_empty() {
        let why = match &s.activity.gateway {
            Some(g) => format!("no agent figures yet (gateway: {g})"),
            None => "no agent figures: no gateway is scraped".into(),
        };
        return vec![Line::from(Span::styled(why, t.dim()))];
    }
    let num = |v: Option<f64>, digits: usize| {
        v.map(|x| format!("{x:.digits$}"))
            .unwrap_or_else(|| "-".into())
    };
    let mut agents: Vec<&crate::model::agent::AgentRow> = s.agents.iter().collect();
    // Stable: the order within failing and within healthy agents stays the gateway's.
    agents.sort_by_key(|a| !is_failing(a));
    let mut v: Vec<Line> = agents
        .into_iter()
        .map(|a| {
            let share = error_share(a);
            let erring = a.errors_per_s.is_some_and(|e| e > 0.0) || share.is_some_and(|p| p > 0.0);
            let mut spans = vec![
                Span::raw(format!("{:<20}", a.agent)),
                Span::raw(format!(" {:>6}/s", num(a.requests_per_s, 1))),
                Span::styled(
                    format!(
                        "  err {:>5}/s {:>4}",
                        num(a.errors_per_s, 1),
                        share
                            .map(|p| format!("{p:.0}%"))
                            .unwrap_or_else(|| "-".into())
                    ),
                    if erring { t.bad() } else { t.dim() },
                ),
                Span::raw(format!(
                    "  p99 {:>6}  infl {}",
                    ms(a.p99_seconds.flatten()),
                    num(a.inflight, 0)
                )),
            ];
            if is_failing(a) {
                spans.push(Span::styled("  FAILING", t.bad()));
            }
            Line::from(spans)
        })
        .collect();
    if let Some(g) = &s.activity.gateway {
        v.push(Line::from(Span::styled(format!("gateway {g}"), t.dim())));
    }
    v
}

fn advice_lines<'a>(s: &Snapshot, t: &Theme, width: usize) -> Vec<Line<'a>> {
    if s.suggestions.is_empty() {
        return vec![Line::from(Span::styled(
            "none: every threshold is met",
            t.dim(),
        ))];
    }
    s.suggestions
        .iter()
        .map(|x| {
            let style = t.severity(&x.severity);
            Line::from(vec![
                Span::styled(format!("{:<8} ", x.severity), style),
                Span::raw(fit(
                    t,
                    &format!(
                        "{} {}: {}",
                        x.service,
                        x.rule,
                        super::suggestions::action_text(x)
                    ),
                    width.saturating_sub(9),
                )),
            ])
        })
        .collect()
}

fn event_lines<'a>(s: &Snapshot, t: &Theme, width: usize, rows: usize) -> Vec<Line<'a>> {
    if s.events.is_empty() {
        return vec![Line::from(Span::styled("no events yet", t.dim()))];
    }
    s.events
        .iter()
        .rev()
        .take(rows.max(1))
        .rev()
        .map(|e| {
            // Supervisor lines already start with the service's name.
            let text = if e.service.is_empty() || e.text.starts_with(&e.service) {
                e.text.clone()
            } else {
                format!("{} {}", e.service, e.text)
            };
            Line::from(vec![
                Span::styled(crate::tui::widgets::clock(e.time) + " ", t.dim()),
                Span::raw(fit(t, &text, width.saturating_sub(9))),
            ])
        })
        .collect()
}
