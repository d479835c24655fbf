//! The whole machine: host CPU and host memory over their thresholds for a window;
//! the answer is a machine of the capacity guide's next size.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, capacity, clock, hysteresis, severity, window};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::units::format_bytes;

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, cfg, now, win) = (cx.h, cx.cfg, cx.now, cx.win);
    let win_label = &cx.win_label;
    let host = &cx.host;
    for (rule, key, threshold) in [
        ("host-cpu", "host:cpu_percent", cfg.host_cpu_percent),
        (
            "host-memory",
            "host:memory_percent",
            cfg.host_memory_percent,
        ),
    ] {
        let id = format!("{rule}:host");
        seen.insert(id.clone());
        let w = h
            .series
            .get(key)
            .and_then(|sr| window(sr, now, win, threshold));
        if let Some(since) = hysteresis(state, &id, w, cfg, threshold, now)
            && let Some(w) = w
        {
            let row = capacity::next_above(host.cores as usize, host.memory);
            out.push(Suggestion {
                id,
                service: "host".into(),
                rule: rule.into(),
                severity: severity(w.last, threshold, 100.0),
                evidence: format!(
                    "the machine's {} is at {:.0}% now; over {threshold:.0}% in {} of {} samples \
                     of the last {win_label}, since {}",
                    if rule == "host-cpu" { "CPU" } else { "memory" },
                    w.last,
                    w.over,
                    w.samples,
                    clock(since)
                ),
                since,
                action: ScaleAction {
                    kind: "host".into(),
                    cpus: Some(f64::from(row.cpu_cores)),
                    memory: Some(u64::from(row.ram_gb) << 30),
                    replicas: None,
                    maxmemory: None,
                    from: format!("{} cores, {}", host.cores, format_bytes(host.memory)),
                },
                command: format!(
                    "move to a machine of the guide's next size: {}",
                    row.describe()
                ),
                compose_patch: String::new(),
            });
        }
    }
}
