//! A service probe's report folded into its last state: the last good figures stay
//! (marked by `last_sample`) while the probe fails, with the error beside them.

use crate::model::probe::{ProbeReport, ProbeState};

/// The figures of a report as the hub keeps them: the last good figures stay (marked by
/// `last_sample`) while the probe fails, with the error beside them.
pub fn merge(prev: Option<&ProbeState>, r: &ProbeReport, now: f64) -> ProbeState {
    let (status, last_error, last_sample, figures) = match &r.result {
        Ok(figures) => ("ok".to_string(), None, Some(now), Some(figures.clone())),
        Err(e) => (
            format!("error: {e}"),
            Some(e.clone()),
            prev.and_then(|p| p.last_sample),
            prev.and_then(|p| p.figures.clone()),
        ),
    };
    ProbeState {
        kind: r.kind,
        address: r.address.clone(),
        every_s: r.every_s,
        status,
        last_error,
        last_sample,
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::figures::Redis;
    use crate::model::probe::{Figures, ProbeKind};

    #[test]
    fn a_failing_probe_keeps_its_last_figures() {
        let ok = ProbeReport {
            service: "db".into(),
            kind: ProbeKind::Redis,
            address: Some("127.0.0.1:6379".into()),
            every_s: 2.0,
            result: Ok(Figures::Redis(Redis {
                ops_per_s: Some(5.0),
                ..Default::default()
            })),
        };
        let first = merge(None, &ok, 100.0);
        assert_eq!(first.status, "ok");
        let bad = ProbeReport {
            result: Err("connection refused".into()),
            ..ok
        };
        let second = merge(Some(&first), &bad, 102.0);
        assert_eq!(second.status, "error: connection refused");
        assert_eq!(second.last_sample, Some(100.0));
        assert_eq!(second.redis().and_then(|r| r.ops_per_s), Some(5.0));
    }
}
