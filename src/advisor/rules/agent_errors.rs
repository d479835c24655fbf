//! The agent error-rate rule: an agent whose share of failed requests stays over
//! `agent_error_percent` (5%) for a window gets a suggestion naming the cause (its last
//! error's kind and message, as the gateway reported them) and the fix for that kind. Most
//! fixes are settings the operator changes (a provider's URL, a timeout): informational
//! (`config`) actions; an overloaded agent gets gateway replicas.

use std::collections::BTreeSet;

use crate::advisor::{AdvisorState, clock, horizontal, hysteresis, severity, window};
use crate::model::advice::{ScaleAction, Suggestion};
use crate::model::agent_error::ErrorKind;
use crate::model::config::AdvisorConfig;
use crate::model::history::History;
use crate::model::snapshot::Snapshot;

/// The history series of an agent's failed requests, in percent of its requests.
pub fn series_key(agent: &str) -> String {
    format!("agent:{agent}:error_percent")
}

pub(super) fn evaluate(
    h: &History,
    s: &Snapshot,
    cfg: &AdvisorConfig,
    state: &mut AdvisorState,
    now: f64,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    let win = cfg.window.as_secs_f64();
    let win_label = crate::model::units::format_duration(cfg.window);
    let threshold = cfg.agent_error_percent;
    // The usual 10-point margin would never clear a 5% threshold: clear under half of it.
    let cleared = AdvisorConfig {
        margin: threshold / 2.0,
        ..cfg.clone()
    };
    let gw_replicas = s
        .services
        .iter()
        .filter(|x| x.service == "gateway" && x.state == "running")
        .count();
    for a in &s.agents {
        let name = a.agent.as_str();
        let id = format!("agent-errors:{name}");
        seen.insert(id.clone());
        let w = h
            .series
            .get(&series_key(name))
            .and_then(|sr| window(sr, now, win, threshold));
        let (Some(since), Some(w)) = (hysteresis(state, &id, w, &cleared, threshold, now), w)
        else {
            continue;
        };
        let kind = a.last_error_kind.as_deref().and_then(ErrorKind::from_label);
        let cause = match (kind, a.last_error.as_deref()) {
            (Some(k), Some(m)) => {
                let at = a
                    .last_error_at
                    .map(|t| format!(" at {}", clock(t)))
                    .unwrap_or_default();
                format!("; last error ({}){at}: {m}", k.describe())
            }
            (Some(k), None) => format!("; last error: {}", k.describe()),
            _ => "; the gateway reported no last error".into(),
        };
        let evidence = format!(
            "agent {name}: {:.0}% of its requests failed lately ({} errors/s); over \
             {threshold}% in {} of {} samples of the last {win_label} (mean {:.0}%), since {}{cause}",
            w.last,
            a.errors_per_s
                .map(|e| format!("{e:.1}"))
                .unwrap_or_else(|| "-".into()),
            w.over,
            w.samples,
            w.mean,
            clock(since)
        );
        let (action, command, compose_patch) = match kind {
            Some(ErrorKind::Overload) => {
                let (action, command, patch) =
                    horizontal(&s.project, "gateway", gw_replicas, gw_replicas.max(1) + 1);
                (action, format!("{command}  ({})", ErrorKind::Overload.fix()), patch)
            }
            Some(k) => (
                ScaleAction::config(format!("failing with {}", k.describe())),
                k.fix().to_string(),
                match k {
                    ErrorKind::NoProvider => {
                        "services:\n  gateway:\n    environment:\n      OLLAMA_URL: http://ollama:11434\n"
                            .into()
                    }
                    _ => String::new(),
                },
            ),
            None => (
                ScaleAction::config("failing".into()),
                "read the agent's errors in the console's Agents view or in GET \
                 /api/v1/agents/status, and fix what they name"
                    .into(),
                String::new(),
            ),
        };
        let failing = a.is_failing();
        out.push(Suggestion {
            id,
            service: "gateway".into(),
            rule: "agent-errors".into(),
            severity: if failing {
                "critical".into()
            } else {
                severity(w.last.max(w.mean), threshold, 100.0)
            },
            evidence,
            since,
            action,
            command,
            compose_patch,
        });
    }
}
