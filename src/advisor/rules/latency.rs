//! Agent latency: an agent whose P95 stays over its SLO or its own baseline times
//! `latency_factor` for a window is answered with one more gateway replica.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{AdvisorState, Series, clock, horizontal, hysteresis, severity, window};
use crate::model::advice::Suggestion;

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, s, cfg, now, win) = (cx.h, cx.s, cx.cfg, cx.now, cx.win);
    let win_label = &cx.win_label;
    let gw_replicas = cx.services.get("gateway").map(|c| c.len()).unwrap_or(0);
    for a in &s.agents {
        let name = a.agent.as_str();
        if let Some(sr) = h.series.get(&format!("agent:{name}:p95_seconds")) {
            let start = now - win;
            let older: Vec<f64> = sr
                .fine
                .iter()
                .filter(|p| p.0 <= start)
                .map(|p| p.1)
                .collect();
            let baseline = (older.len() >= 10).then(|| {
                let mut v = older.clone();
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            });
            // An idle agent's baseline can be 0: no baseline rule then.
            let baseline = baseline.filter(|b| *b > 0.0);
            let limit = match (cfg.latency_slo, baseline) {
                (Some(slo), Some(b)) => Some(slo.as_secs_f64().min(b * cfg.latency_factor)),
                (Some(slo), None) => Some(slo.as_secs_f64()),
                (None, Some(b)) => Some(b * cfg.latency_factor),
                _ => None,
            }
            .filter(|l| *l > 0.0);
            let id = format!("latency:{name}");
            seen.insert(id.clone());
            if let Some(limit) = limit {
                // In percent of the limit, so the margin means the same as elsewhere.
                let mut pct = Series::default();
                pct.fine = sr.fine.iter().map(|p| (p.0, p.1 / limit * 100.0)).collect();
                let w = window(&pct, now, win, 100.0);
                if let Some(since) = hysteresis(state, &id, w, cfg, 100.0, now)
                    && let Some(w) = w
                {
                    let (action, command, compose_patch) =
                        horizontal(&s.project, "gateway", gw_replicas, gw_replicas.max(1) + 1);
                    out.push(Suggestion {
                        id,
                        service: "gateway".into(),
                        rule: "latency".into(),
                        severity: severity(w.mean, 100.0, 200.0),
                        evidence: format!(
                            "agent {name}: P95 {:.0} ms against a limit of {:.0} ms ({}) in {} of \
                             {} samples of the last {win_label}, since {}",
                            w.last / 100.0 * limit * 1000.0,
                            limit * 1000.0,
                            match baseline {
                                Some(b) => format!(
                                    "{}x its baseline of {:.0} ms",
                                    cfg.latency_factor,
                                    b * 1000.0
                                ),
                                None => "the configured SLO".into(),
                            },
                            w.over,
                            w.samples,
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
}
