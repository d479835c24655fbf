//! GPU memory: a GPU whose VRAM stays over `vram_percent` for a window; the answer is
//! fewer resident models or a GPU with more VRAM.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, clock, hysteresis, severity, window};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::units::format_bytes;

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, s, cfg, now, win) = (cx.h, cx.s, cx.cfg, cx.now, cx.win);
    let win_label = &cx.win_label;
    for g in &s.gpus {
        let id = format!("gpu-vram:{}", g.index);
        seen.insert(id.clone());
        let w = h
            .series
            .get(&format!("gpu:{}:vram_percent", g.index))
            .and_then(|sr| window(sr, now, win, cfg.vram_percent));
        if let Some(since) = hysteresis(state, &id, w, cfg, cfg.vram_percent, now)
            && let Some(w) = w
        {
            let owner = g
                .processes
                .iter()
                .max_by_key(|p| p.used_memory_bytes)
                .and_then(|p| p.service.clone())
                .unwrap_or_else(|| "gpu".into());
            out.push(Suggestion {
                id,
                service: owner,
                rule: "gpu-vram".into(),
                severity: severity(w.last, cfg.vram_percent, 100.0),
                evidence: format!(
                    "GPU {} ({}) VRAM {:.0}% used ({} of {}) in {} of {} samples of the last \
                     {win_label}, since {}",
                    g.index,
                    g.name,
                    w.last,
                    format_bytes(g.memory_used_bytes),
                    format_bytes(g.memory_total_bytes),
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction::host(format!("{} VRAM", format_bytes(g.memory_total_bytes))),
                command: "OLLAMA_MAX_LOADED_MODELS=1 (fewer resident models) or a GPU with more VRAM".into(),
                compose_patch: "services:\n  ollama:\n    environment:\n      OLLAMA_MAX_LOADED_MODELS: \"1\"\n".into(),
            });
        }
    }
}
