//! Requests waiting on Ollama: the gateway has had more calls in flight to it than it
//! serves at once (`OLLAMA_NUM_PARALLEL`, or Ollama's default) for a sustained minute.
//! The way out is more slots (each holds its own context's KV cache in VRAM, so only as
//! many as the free VRAM allows), or another Ollama replica or GPU.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, clock};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::ollama::Ollama;
use crate::model::units::{format_bytes, format_duration};

/// How long requests wait on Ollama before the rule speaks.
pub const SUSTAINED_S: f64 = 60.0;

/// The slots the free VRAM holds beyond today's, when the GPUs and the loaded models are
/// known. Conservative: a slot is taken to cost what the loaded models hold now per
/// slot (weights included), more than its KV cache alone.
fn slots_that_fit(cx: &Ctx, o: &Ollama, parallel: u32) -> Option<u64> {
    if cx.s.gpus.is_empty() || o.loaded.is_empty() {
        return None;
    }
    let free: u64 =
        cx.s.gpus
            .iter()
            .map(|g| g.memory_total_bytes.saturating_sub(g.memory_used_bytes))
            .sum();
    let held: u64 = o.loaded.iter().map(|m| m.size_vram_bytes).sum();
    let per_slot = held / u64::from(parallel.max(1));
    (per_slot > 0).then(|| free / per_slot)
}

pub(super) fn evaluate(
    cx: &Ctx,
    _state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let Some(o) = &cx.s.ollama else {
        return;
    };
    let Some(q) = &o.queue else {
        return;
    };
    let Some(since) = q.waiting_since else {
        return;
    };
    let parallel = u64::from(q.parallel);
    if q.in_flight <= parallel || cx.now - since < SUSTAINED_S {
        return;
    }
    let id = "ollama-queue:ollama".to_string();
    seen.insert(id.clone());
    let fit = slots_that_fit(cx, o, q.parallel);
    let raise_to = match fit {
        Some(extra) => q.in_flight.min(parallel + extra),
        None => q.in_flight,
    };
    let free = fit.map(|_| {
        let f: u64 =
            cx.s.gpus
                .iter()
                .map(|g| g.memory_total_bytes.saturating_sub(g.memory_used_bytes))
                .sum();
        format!(" ({} VRAM free)", format_bytes(f))
    });
    let (command, compose_patch) = if raise_to > parallel {
        (
            format!(
                "raise OLLAMA_NUM_PARALLEL from {parallel} to {raise_to} (each slot holds its \
                 own context in VRAM{}), or add an Ollama replica or a GPU",
                free.unwrap_or_default()
            ),
            format!(
                "services:\n  ollama:\n    environment:\n      OLLAMA_NUM_PARALLEL: \"{raise_to}\"\n"
            ),
        )
    } else {
        (
            format!(
                "add an Ollama replica or a GPU: no VRAM for more slots{}",
                free.unwrap_or_default()
            ),
            String::new(),
        )
    };
    let waited = std::time::Duration::from_secs((cx.now - since).max(0.0) as u64);
    out.push(Suggestion {
        id,
        service: "ollama".into(),
        rule: "ollama-queue".into(),
        severity: "warning".into(),
        evidence: format!(
            "{} requests in flight to Ollama, it serves {parallel} at once ({}): {} wait in \
             its queue, for {} (since {})",
            q.in_flight,
            q.parallel_from,
            q.in_flight - parallel,
            format_duration(waited),
            clock(since)
        ),
        since,
        action: ScaleAction {
            kind: "config".into(),
            cpus: None,
            memory: None,
            replicas: None,
            maxmemory: None,
            from: format!("OLLAMA_NUM_PARALLEL={parallel}"),
        },
        command,
        compose_patch,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisor::{Host, by_service};
    use crate::model::config::AdvisorConfig;
    use crate::model::history::History;
    use crate::model::ollama::{LoadedModel, OllamaQueue};
    use crate::model::snapshot::{GpuStats, Snapshot};

    const NOW: f64 = 1_795_924_800.0;

    fn snap(in_flight: u64, parallel: u32, waited: Option<f64>, free_gib: Option<u64>) -> Snapshot {
        Snapshot {
            ollama: Some(Ollama {
                loaded: vec![LoadedModel {
                    name: "llama3.2".into(),
                    size_vram_bytes: 4 << 30,
                    ..Default::default()
                }],
                queue: Some(OllamaQueue {
                    in_flight,
                    parallel,
                    parallel_from: "OLLAMA_NUM_PARALLEL".into(),
                    waiting_since: waited.map(|w| NOW - w),
                }),
                ..Default::default()
            }),
            gpus: free_gib
                .map(|f| {
                    vec![GpuStats {
                        memory_total_bytes: 24 << 30,
                        memory_used_bytes: (24 - f) << 30,
                        ..Default::default()
                    }]
                })
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// (evidence, command, compose patch) of each suggestion.
    type Yield = Vec<(String, String, String)>;

    fn yields(s: &Snapshot) -> Yield {
        let (h, cfg) = (History::default(), AdvisorConfig::default());
        let cx = Ctx {
            h: &h,
            s,
            cfg: &cfg,
            now: NOW,
            win: 60.0,
            win_label: "1m".into(),
            host: Host {
                cores: 8.0,
                memory: 32 << 30,
            },
            services: by_service(s),
        };
        let (mut seen, mut out) = (BTreeSet::new(), Vec::new());
        evaluate(&cx, &mut AdvisorState::default(), &mut seen, &mut out);
        out.into_iter()
            .map(|x| (x.evidence, x.command, x.compose_patch))
            .collect()
    }

    #[test]
    fn ollama_queue_rule_table() {
        let raise = |to: u32, free: &str| {
            format!(
                "raise OLLAMA_NUM_PARALLEL from 4 to {to} (each slot holds its own context in \
                 VRAM{free}), or add an Ollama replica or a GPU"
            )
        };
        let patch = |to: u32| {
            format!("services:\n  ollama:\n    environment:\n      OLLAMA_NUM_PARALLEL: \"{to}\"\n")
        };
        let evidence = "6 requests in flight to Ollama, it serves 4 at once (OLLAMA_NUM_PARALLEL): \
                        2 wait in its queue, for 1m12s (since 03:58:48 UTC)";
        // (case, snapshot, what it yields: evidence, command, patch)
        let rows: Vec<(&str, Snapshot, Yield)> = vec![
            ("no queue figures", Snapshot::default(), vec![]),
            (
                "waiting, but not for a minute yet",
                snap(6, 4, Some(59.0), None),
                vec![],
            ),
            ("the queue cleared", snap(4, 4, None, None), vec![]),
            (
                "cleared, a stale start left behind",
                snap(3, 4, Some(300.0), None),
                vec![],
            ),
            (
                "a minute and more, VRAM unknown: raise to the calls in flight",
                snap(6, 4, Some(72.0), None),
                vec![(evidence.into(), raise(6, ""), patch(6))],
            ),
            (
                "room for the slots: raise to the calls in flight",
                snap(6, 4, Some(72.0), Some(8)),
                vec![(evidence.into(), raise(6, " (8GiB VRAM free)"), patch(6))],
            ),
            (
                "room for one slot (1 GiB each): raise by one",
                snap(6, 4, Some(72.0), Some(1)),
                vec![(evidence.into(), raise(5, " (1GiB VRAM free)"), patch(5))],
            ),
            (
                "no room: a replica or a GPU",
                snap(6, 4, Some(72.0), Some(0)),
                vec![(
                    evidence.into(),
                    "add an Ollama replica or a GPU: no VRAM for more slots (0B VRAM free)".into(),
                    String::new(),
                )],
            ),
        ];
        for (case, s, want) in rows {
            assert_eq!(yields(&s), want, "{case}");
        }
    }
}
