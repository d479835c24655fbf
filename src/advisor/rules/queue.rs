//! Growing queues: an agent whose queue grows over the window (and holds at least one
//! request) is answered with one more gateway replica.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, clock, horizontal, slope};
use crate::model::advice::Suggestion;

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, s, now, win) = (cx.h, cx.s, cx.now, cx.win);
    let win_label = &cx.win_label;
    let gw_replicas = cx.services.get("gateway").map(|c| c.len()).unwrap_or(0);
    for a in &s.agents {
        let name = a.agent.as_str();
        if let Some(sr) = h.series.get(&format!("agent:{name}:queued")) {
            let id = format!("queue:{name}");
            seen.insert(id.clone());
            let growing = slope(sr, now, win).filter(|(m, _)| *m > 0.0);
            let last = sr.last().unwrap_or(0.0);
            let active = state.active.get(&id).copied();
            let since = match (growing, active) {
                (Some(_), None) if last >= 1.0 => {
                    state.active.insert(id.clone(), now);
                    Some(now)
                }
                (_, Some(t)) if last >= 1.0 => Some(t),
                (_, Some(_)) => {
                    state.active.remove(&id);
                    None
                }
                _ => None,
            };
            if let Some(since) = since {
                let (action, command, compose_patch) =
                    horizontal(&s.project, "gateway", gw_replicas, gw_replicas.max(1) + 1);
                out.push(Suggestion {
                    id,
                    service: "gateway".into(),
                    rule: "queue".into(),
                    severity: if last >= 10.0 {
                        "critical".into()
                    } else {
                        "warning".into()
                    },
                    evidence: format!(
                        "agent {name}: {last:.0} queued, growing by {:.2}/s over the last \
                         {win_label}, since {}",
                        growing.map(|g| g.0).unwrap_or(0.0),
                        clock(since)
                    ),
                    since,
                    action,
                    command,
                    compose_patch,
                });
            }
        }
    }
}
