//! Memory working set of the limit: a service whose container stays over
//! `memory_percent` (80%) of its memory limit for a window gets a larger limit.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{
    AdvisorState, ServiceStats, Window, clock, compose_limits, hysteresis, severity,
    update_command, vertical_memory, window,
};
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
    let host = &cx.host;
    for (svc, containers) in &cx.services {
        let mut worst: Option<(Window, &ServiceStats)> = None;
        for x in containers.iter().filter(|x| x.memory_limit.is_some()) {
            let key = format!("service:{}:memory_limit_percent", x.container);
            if let Some(w) = h
                .series
                .get(&key)
                .and_then(|sr| window(sr, now, win, cfg.memory_percent))
                && worst.is_none_or(|(b, _)| w.mean > b.mean)
            {
                worst = Some((w, x));
            }
        }
        let id = format!("memory:{svc}");
        seen.insert(id.clone());
        if let Some(since) =
            hysteresis(state, &id, worst.map(|w| w.0), cfg, cfg.memory_percent, now)
            && let Some((w, x)) = worst
        {
            let limit = x.memory_limit.unwrap_or(0);
            let memory = vertical_memory(limit, svc, s, host);
            out.push(Suggestion {
                id,
                service: svc.to_string(),
                rule: "memory".into(),
                severity: severity(w.last.max(w.mean), cfg.memory_percent, 100.0),
                evidence: format!(
                    "working set {:.0}% of its {} limit now; over {:.0}% in {} of {} samples of \
                     the last {win_label}, since {}",
                    w.last,
                    format_bytes(limit),
                    cfg.memory_percent,
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction {
                    kind: "vertical".into(),
                    cpus: None,
                    memory: Some(memory),
                    replicas: None,
                    maxmemory: None,
                    from: format!("memory {}", format_bytes(limit)),
                },
                command: update_command(containers, None, Some(memory)),
                compose_patch: compose_limits(s, svc, None, Some(memory)),
            });
        }
    }
}
