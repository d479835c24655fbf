//! CPU of the limit: a service whose worst container stays over `cpu_percent` (70%)
//! of its CPU limit for a window gets more CPUs (vertical) or, when it is stateless,
//! more replicas.

use std::collections::BTreeSet;

use super::Ctx;
use crate::advisor::{
    AdvisorState, ServiceStats, Window, clock, compose_limits, horizontal, hysteresis, severity,
    update_command, vertical_cpus, window,
};
use crate::model::advice::{ScaleAction, Suggestion};

pub(super) fn evaluate(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let (h, s, cfg, now, win) = (cx.h, cx.s, cx.cfg, cx.now, cx.win);
    let win_label = &cx.win_label;
    let host = &cx.host;
    let stateless = |svc: &str| cx.cfg.stateless.iter().any(|x| x == svc);
    for (svc, containers) in &cx.services {
        // CPU of the limit: the worst container of the service decides.
        let mut worst: Option<(Window, &ServiceStats)> = None;
        for x in containers.iter().filter(|x| x.cpu_limit.is_some()) {
            let key = format!("service:{}:cpu_limit_percent", x.container);
            if let Some(w) = h
                .series
                .get(&key)
                .and_then(|sr| window(sr, now, win, cfg.cpu_percent))
                && worst
                    .is_none_or(|(b, _)| w.over > b.over || (w.over == b.over && w.mean > b.mean))
            {
                worst = Some((w, x));
            }
        }
        let id = format!("cpu:{svc}");
        seen.insert(id.clone());
        if let Some(since) = hysteresis(state, &id, worst.map(|w| w.0), cfg, cfg.cpu_percent, now)
            && let Some((w, x)) = worst
        {
            let limit = x.cpu_limit.unwrap_or(1.0);
            let evidence = format!(
                "CPU {:.0}% of its {limit}-CPU limit now; over {:.0}% in {} of {} samples of the \
                 last {win_label} (mean {:.0}%), since {}",
                w.last,
                cfg.cpu_percent,
                w.over,
                w.samples,
                w.mean,
                clock(since)
            );
            let (action, command, compose_patch) = if stateless(svc) {
                let n = containers.len();
                let target = ((n as f64 * w.mean / (cfg.cpu_percent - cfg.margin).max(1.0)).ceil()
                    as usize)
                    .max(n + 1);
                horizontal(&s.project, svc, n, target)
            } else {
                let cpus = vertical_cpus(limit, svc, s, host);
                (
                    ScaleAction {
                        kind: "vertical".into(),
                        cpus: Some(cpus),
                        memory: None,
                        replicas: None,
                        maxmemory: None,
                        from: format!("cpus {limit}"),
                    },
                    update_command(containers, Some(cpus), None),
                    compose_limits(s, svc, Some(cpus), None),
                )
            };
            out.push(Suggestion {
                id,
                service: svc.to_string(),
                rule: "cpu".into(),
                severity: severity(w.last.max(w.mean), cfg.cpu_percent, 100.0),
                evidence,
                since,
                action,
                command,
                compose_patch,
            });
        }
    }
}
