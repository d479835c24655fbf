//! View 4: GPUs (VRAM gauge, utilisation, temperature, power), their processes with the
//! service that owns each, Ollama's loaded models (VRAM against size, partial offload),
//! and the tokens/s probe.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, source_down};
use crate::model::snapshot::Snapshot;
use crate::model::units::format_bytes;
use crate::tui::state::UiState;
use crate::tui::theme::Theme;
use crate::tui::widgets::{fit, gauge};

pub fn render(f: &mut Frame, area: Rect, _st: &UiState, s: &Snapshot, t: &Theme) {
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
        Paragraph::new(ollama_lines(s, t))
            .wrap(Wrap { trim: true })
            .block(block(t, "ollama (p: tokens/s probe)")),
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

fn ollama_lines<'a>(s: &Snapshot, t: &Theme) -> Vec<Line<'a>> {
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
    for m in &o.loaded {
        let (size, vram) = (m.size_bytes, m.size_vram_bytes);
        let partial = m.partly_on_cpu;
        let mut spans = vec![Span::raw(format!(
            "  {}  vram {} of {}",
            m.name,
            format_bytes(vram),
            format_bytes(size)
        ))];
        if partial {
            spans.push(Span::styled(
                "  PARTIAL OFFLOAD: part of the model runs on the CPU (slow)",
                t.bad(),
            ));
        }
        if let Some(b) = m.vram_measured_bytes {
            spans.push(Span::raw(format!("  NVML {}", format_bytes(b))));
        }
        if let Some(e) = &m.expires_at {
            spans.push(Span::styled(format!("  unloads {e}"), t.dim()));
        }
        v.push(Line::from(spans));
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
