//! The fleet lines' join with this snapshot: a host whose engine is this machine gets
//! NVML's GPU memory, and the host running this console's own project its agents failing
//! and the advisor's suggestion count. Other hosts keep `None` there (shown as `-`).

use crate::model::snapshot::Snapshot;

/// Fills the fleet rows' local figures from the rest of `s`.
pub fn join_local(s: &mut Snapshot) {
    let gpu = (!s.gpus.is_empty()).then(|| {
        (
            s.gpus.iter().map(|g| g.memory_used_bytes).sum::<u64>(),
            s.gpus.iter().map(|g| g.memory_total_bytes).sum::<u64>(),
        )
    });
    let failing = s
        .agents
        .iter()
        .filter(|a| a.errors_per_s.is_some_and(|e| e > 0.0))
        .count();
    let advice = s.suggestions.len();
    for r in &mut s.fleet {
        let reachable = r.error.is_none();
        let own = reachable && r.local && r.project == s.project;
        (r.gpu_memory_used_bytes, r.gpu_memory_total_bytes) = match gpu {
            Some((u, t)) if reachable && r.local => (Some(u), Some(t)),
            _ => (None, None),
        };
        r.agents_failing = own.then_some(failing);
        r.advice = own.then_some(advice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fleet::FleetRow;
    use crate::model::snapshot::GpuStats;

    #[test]
    fn only_this_machine_gets_gpu_and_only_this_project_gets_agents_and_advice() {
        let mut s = Snapshot {
            project: "osmen".into(),
            gpus: vec![GpuStats {
                memory_used_bytes: 3,
                memory_total_bytes: 10,
                ..GpuStats::default()
            }],
            fleet: vec![
                FleetRow {
                    name: "here".into(),
                    project: "osmen".into(),
                    local: true,
                    ..FleetRow::default()
                },
                FleetRow {
                    name: "other".into(),
                    project: "shop".into(),
                    local: true,
                    ..FleetRow::default()
                },
                FleetRow {
                    name: "far".into(),
                    project: "osmen".into(),
                    ..FleetRow::default()
                },
            ],
            ..Snapshot::default()
        };
        join_local(&mut s);
        let f = &s.fleet;
        assert_eq!(
            (f[0].gpu_memory_used_bytes, f[0].advice),
            (Some(3), Some(0))
        );
        assert_eq!(f[0].agents_failing, Some(0));
        assert_eq!((f[1].gpu_memory_total_bytes, f[1].advice), (Some(10), None));
        assert_eq!(
            (f[2].gpu_memory_used_bytes, f[2].agents_failing),
            (None, None)
        );
    }
}
