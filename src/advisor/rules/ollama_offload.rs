//! Ollama models that do not fit: a loaded model partly on the CPU, critical when an
//! agent it serves is getting slower.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, clock, loaded_models, slope, smaller_model};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::units::format_bytes;

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, s, now, win) = (cx.h, cx.s, cx.now, cx.win);
    let win_label = &cx.win_label;
    if let Some(o) = &s.ollama {
        for m in &o.loaded {
            if !m.partly_on_cpu {
                continue;
            }
            let name = m.name.as_str();
            let id = format!("ollama-offload:{name}");
            seen.insert(id.clone());
            let since = *state.active.entry(id.clone()).or_insert(now);
            // The agents this model answers, and which of them are getting slower: P95
            // rising over the window (by a fifth or more) or the latency rule holding.
            let mut slower = Vec::new();
            let agents: Vec<&str> = m.agents.iter().flatten().map(String::as_str).collect();
            for a in &agents {
                let sr = h.series.get(&format!("agent:{a}:p95_seconds"));
                let pts: Vec<f64> = sr
                    .map(|sr| {
                        sr.fine
                            .iter()
                            .filter(|p| p.0 > now - win)
                            .map(|p| p.1)
                            .collect()
                    })
                    .unwrap_or_default();
                let rising = sr
                    .and_then(|sr| slope(sr, now, win))
                    .is_some_and(|(m, _)| m > 0.0);
                let (first, last) = (pts.first().copied(), pts.last().copied());
                let grew = matches!((first, last), (Some(f), Some(l)) if f > 0.0 && l >= f * 1.2);
                if (rising && grew) || state.active.contains_key(&format!("latency:{a}")) {
                    slower.push(format!(
                        "{a} (P95 {} -> {})",
                        first
                            .map(|f| format!("{:.0} ms", f * 1000.0))
                            .unwrap_or("-".into()),
                        last.map(|l| format!("{:.0} ms", l * 1000.0))
                            .unwrap_or("-".into())
                    ));
                }
            }
            let serves = if agents.is_empty() {
                String::new()
            } else if slower.is_empty() {
                format!("; serves {}", agents.join(", "))
            } else {
                format!(
                    "; serves {}, slower over the last {win_label}: {}",
                    agents.join(", "),
                    slower.join(", ")
                )
            };
            out.push(Suggestion {
                id,
                service: "ollama".into(),
                rule: "ollama-offload".into(),
                severity: if slower.is_empty() { "warning" } else { "critical" }.into(),
                evidence: format!(
                    "model {name}: {} of {} in VRAM ({:.0}%): the rest runs on the CPU, \
                     several times slower{serves}; since {}",
                    format_bytes(m.size_vram_bytes),
                    format_bytes(m.size_bytes),
                    m.gpu_percent,
                    clock(since)
                ),
                since,
                action: ScaleAction::host(format!("{name} partly on the CPU")),
                command: format!(
                    "{}, keep fewer models resident (OLLAMA_MAX_LOADED_MODELS=1), or a GPU \
                     with more VRAM",
                    smaller_model(name, m.quantization.as_deref())
                ),
                compose_patch: if loaded_models(o) > 1 {
                    "services:\n  ollama:\n    environment:\n      OLLAMA_MAX_LOADED_MODELS: \"1\"\n".into()
                } else {
                    String::new()
                },
            });
        }
    }
}
