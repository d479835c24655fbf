//! View 4: GPUs (VRAM gauge, utilisation, temperature, power), their processes with the
//! service that owns each, Ollama's loaded models (VRAM against size, partial offload),
//! and the tokens/s probe.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, source_down};
use crate::model::snapshot::Snapshot;
use crate::model::units::format_bytes;
use crate::tui::action::View;
use crate::tui::state::UiState;
use crate::tui::theme::Theme;
use crate::tui::widgets::{fit, gauge};

pub fn render(f: &mut Frame, area: Rect, st: &UiState, s: &Snapshot, t: &Theme) {
    let dev = device_lines(s, t, area.width.saturating_sub(2) as usize);
    let [a, b] = Layout::vertical([
        // A reason without a GPU may wrap: room for three lines of it.
        Constraint::Length(
            (dev.len() as u16 + 2 + if s.gpus.is_empty() { 2 } else { 0 })
                .min(area.height.saturating_sub(4)),
        ),
        Constraint::Min(3),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(dev)
            .wrap(Wrap { trim: true })
            .block(block(t, "gpus")),
        a,
    );
    f.render_widget(
        // Not trimmed: the two-space indent lines the rows up under the selected `> `.
        Paragraph::new(ollama_lines(s, t, st.selected[View::Gpu.index()]))
            .wrap(Wrap { trim: false })
            .block(block(
                t,
                "ollama (w warm  u unload  P pin  p tokens/s probe)",
            )),
        b,
    );
}

fn device_lines<'a>(s: &Snapshot, t: &Theme, width: usize) -> Vec<Line<'a>> {
    if s.gpus.is_empty() {
        let why = source_down(s, "gpu").unwrap_or_else(|| "no GPU reported yet".into());
        return vec![Line::from(Span::styled(why, t.dim()))];
    }
    let gw = width.saturating_sub(50).clamp(0, 40);
    let mut v = Vec::new();
    for g in &s.gpus {
        let p = if g.memory_total_bytes > 0 {
            g.memory_used_bytes as f64 / g.memory_total_bytes as f64 * 100.0
        } else {
            0.0
        };
        let opt = |x: Option<u32>, unit: &str| {
            x.map(|v| format!("{v}{unit}"))
                .unwrap_or_else(|| "-".into())
        };
        v.push(Line::from(Span::styled(
            format!("{} {}  {}", g.index, g.name, fit(t, &g.uuid, 44)),
            t.header(),
        )));
        v.push(Line::from(vec![
            Span::raw("  vram "),
            Span::styled(gauge(t, p, gw), t.level(p)),
            Span::raw(format!(
                " {} / {} ({p:.0}%)",
                format_bytes(g.memory_used_bytes),
                format_bytes(g.memory_total_bytes)
            )),
        ]));
        v.push(Line::from(format!(
            "  util {}  mem util {}  temp {}  power {}  fan {}",
            opt(g.gpu_util_percent, "%"),
            opt(g.memory_util_percent, "%"),
            opt(g.temperature_c, t.degrees()),
            match (g.power_w, g.power_limit_w) {
                (Some(w), Some(l)) => format!("{w:.0}/{l:.0} W"),
                (Some(w), None) => format!("{w:.0} W"),
                _ => "-".into(),
            },
            opt(g.fan_percent, "%"),
        )));
        for p in &g.processes {
            v.push(Line::from(Span::styled(
                format!(
                    "  pid {:<8} {:>10}  {}",
                    p.pid,
                    format_bytes(p.used_memory_bytes),
                    match (&p.service, &p.container) {
                        (Some(s), Some(c)) => format!("{s} ({c})"),
                        _ => "not a container of this stack".into(),
                    }
                ),
                t.dim(),
            )));
        }
    }
    v
}

fn ollama_lines<'a>(s: &Snapshot, t: &Theme, selected: usize) -> Vec<Line<'a>> {
    let mut v = Vec::new();
    let Some(o) = &s.ollama else {
        let why = source_down(s, "ollama")
            .unwrap_or_else(|| "not measured yet (OLLAMA_URL or the stack's ollama port)".into());
        v.push(Line::from(Span::styled(why, t.dim())));
        return v;
    };
    v.push(Line::from(format!(
        "{} version {}  {} models installed",
        o.url,
        o.version.as_deref().unwrap_or("-"),
        o.installed.len()
    )));
    if let Some(q) = &o.queue {
        v.push(queue_line(q, s.taken_at, t));
    }
    let rows = crate::tui::state::model_rows(s);
    for (i, (name, loaded)) in rows.iter().enumerate() {
        let mark = if i == selected { "> " } else { "  " };
        let style = if i == selected {
            t.selected()
        } else {
            Style::default()
        };
        let Some(m) = loaded else {
            v.push(Line::from(Span::styled(
                format!("{mark}{name}  installed, not loaded"),
                if i == selected { style } else { t.dim() },
            )));
            continue;
        };
        v.push(Line::from(model_spans(m, mark, style, s.taken_at, t)));
        let serves: Vec<&str> = m.agents.iter().flatten().map(String::as_str).collect();
        v.push(Line::from(Span::styled(
            if serves.is_empty() {
                "    serves no agent of the gateway".to_string()
            } else {
                format!("    serves {}", serves.join(", "))
            },
            t.accent(),
        )));
    }
    if o.loaded.is_empty() {
        v.push(Line::from(Span::styled("  no model loaded", t.dim())));
    }
    v
}

/// One loaded model: context, GPU and CPU share, VRAM (NVML's beside it, flagged when the
/// two disagree by more than a tenth) and the time until Ollama unloads it.
fn model_spans<'a>(
    m: &crate::model::ollama::LoadedModel,
    mark: &str,
    style: Style,
    now: f64,
    t: &Theme,
) -> Vec<Span<'a>> {
    // From the two sizes, as Ollama's `ollama ps` computes its PROCESSOR column.
    let gpu = if m.size_bytes > 0 {
        (m.size_vram_bytes as f64 / m.size_bytes as f64 * 100.0).round()
    } else {
        0.0
    };
    let mut spans = vec![Span::styled(
        format!(
            "{mark}{}  ctx {}  gpu {gpu:.0}% cpu {:.0}%  vram {} of {}",
            m.name,
            m.context_length.map_or("-".into(), |c| c.to_string()),
            100.0 - gpu,
            format_bytes(m.size_vram_bytes),
            format_bytes(m.size_bytes)
        ),
        style,
    )];
    if m.partly_on_cpu {
        spans.push(Span::styled(
            "  PARTIAL OFFLOAD: part of the model runs on the CPU (slow)",
            t.bad(),
        ));
    }
    match (m.vram_disagreement(), m.vram_measured_bytes) {
        (Some((nvml, said)), _) => spans.push(Span::styled(
            format!(
                "  VRAM DISAGREES: NVML {} vs Ollama {} ({:+.0}%)",
                format_bytes(nvml),
                format_bytes(said),
                (nvml as f64 - said as f64) / said as f64 * 100.0
            ),
            t.bad(),
        )),
        (None, Some(b)) => spans.push(Span::raw(format!("  NVML {}", format_bytes(b)))),
        (None, None) => {}
    }
    let until = m.until(now);
    spans.push(Span::styled(
        match until.as_str() {
            "forever" => "  pinned".to_string(),
            "-" => String::new(),
            u => format!("  unloads in {u}"),
        },
        t.dim(),
    ));
    spans
}

/// The gateway's requests in flight to Ollama against what it serves at once.
fn queue_line<'a>(q: &crate::model::ollama::OllamaQueue, now: f64, t: &Theme) -> Line<'a> {
    let text = format!(
        "queue: {} in flight, serves {} at once ({})",
        q.in_flight, q.parallel, q.parallel_from
    );
    match q.waiting_since {
        Some(since) => Line::from(vec![
            Span::raw(text),
            Span::styled(
                format!(
                    "  requests waiting for {}",
                    crate::model::units::format_duration(std::time::Duration::from_secs(
                        (now - since).max(0.0) as u64
                    ))
                ),
                t.warn(),
            ),
        ]),
        None => Line::from(Span::styled(text, t.dim())),
    }
}
