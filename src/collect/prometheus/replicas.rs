//! Replica merging: the families of a scaled service's replicas summed into one, and the
//! per-agent rows of a replica group.

use std::collections::BTreeMap;

use super::parse::parse_value;
use super::{Family, Kind, Labels, Sample, agents_from, attach_waits};
use crate::model::agent::AgentRow;
use crate::model::metric::{
    ACTIVE_USERS, AGENT_DURATION_SECONDS, AGENT_MODEL_LOAD_SECONDS, AGENT_REQUESTS_PER_ACTIVE_USER,
    PROJECTION_WINDOW_SECONDS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeRule {
    Sum,
    Max,
    Drop,
}

/// How one family's samples combine across replicas.
fn merge_rule(f: &Family) -> MergeRule {
    let n = f.name.as_str();
    match f.kind {
        Kind::Counter | Kind::Histogram | Kind::Summary => MergeRule::Sum,
        // Distinct users and per-user ratios do not add up across processes.
        _ if n == ACTIVE_USERS || n == AGENT_REQUESTS_PER_ACTIVE_USER => MergeRule::Drop,
        // Points in time, facts, the longest load and one process's peak: the largest.
        _ if n.ends_with("_timestamp_seconds")
            || n.ends_with("_timestamp")
            || n.ends_with("_info")
            || n.ends_with("_peak_bytes")
            || n == AGENT_MODEL_LOAD_SECONDS
            || n == PROJECTION_WINDOW_SECONDS =>
        {
            MergeRule::Max
        }
        // In flight, queued, memory held, projections: the total over the replicas.
        _ => MergeRule::Sum,
    }
}

/// The families of several replicas of one service as one: every counter and histogram
/// bucket (and a summary's `_sum` and `_count`) summed over the replicas per identical
/// label set, so that quantiles computed from the merged buckets are those of all
/// requests together. Quantile samples (a summary's, or a gauge's) are left out:
/// percentiles cannot be added or averaged into a percentile. Gauges are summed (in
/// flight, queued, memory), except timestamps, facts and peaks (the largest) and counts
/// of distinct users (left out: a user seen by two replicas would count twice). `le`
/// bounds are matched by value (`0.5` and `0.50` agree).
pub fn merge(replicas: &[Vec<Family>]) -> Vec<Family> {
    let mut order: Vec<String> = Vec::new();
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    // (family, sample name, labels with `le` normalised) -> index in the family's samples
    let mut index: BTreeMap<(String, String, Labels), usize> = BTreeMap::new();
    for fs in replicas {
        for f in fs {
            let rule = merge_rule(f);
            if rule == MergeRule::Drop {
                continue;
            }
            let merged = fams.entry(f.name.clone()).or_insert_with(|| {
                order.push(f.name.clone());
                Family {
                    name: f.name.clone(),
                    kind: f.kind,
                    help: f.help.clone(),
                    samples: Vec::new(),
                }
            });
            for smp in &f.samples {
                if smp.label("quantile").is_some() {
                    continue;
                }
                let key_labels: Labels = smp
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        if k == "le" {
                            let norm = parse_value(v).map(|x| x.to_string());
                            (k.clone(), norm.unwrap_or_else(|| v.clone()))
                        } else {
                            (k.clone(), v.clone())
                        }
                    })
                    .collect();
                let key = (f.name.clone(), smp.name.clone(), key_labels);
                match index.get(&key) {
                    Some(&i) if rule == MergeRule::Max => {
                        let v = &mut merged.samples[i].value;
                        *v = v.max(smp.value);
                    }
                    Some(&i) => merged.samples[i].value += smp.value,
                    None => {
                        index.insert(key, merged.samples.len());
                        merged.samples.push(Sample {
                            timestamp: None,
                            ..smp.clone()
                        });
                    }
                }
            }
        }
    }
    order.into_iter().filter_map(|n| fams.remove(&n)).collect()
}

/// Per-agent figures of a replica group: the merged counters, and P50/P95/P99 from the
/// merged histogram buckets over the window (the replicas' own summaries cannot be
/// combined). Agents are named `service/agent`, apart from the embedded gateway's.
pub fn group_agents(
    service: &str,
    replicas: usize,
    merged: &[Family],
    lat: &[crate::model::snapshot::LatencySeries],
) -> Vec<AgentRow> {
    let mut agents = agents_from(merged);
    attach_waits(&mut agents, lat);
    for a in agents.iter_mut() {
        let name = a.agent.clone();
        let series = lat
            .iter()
            .find(|l| l.family == AGENT_DURATION_SECONDS && l.labels == format!("agent={name}"));
        a.p50_seconds = Some(series.and_then(|l| l.p50));
        a.p95_seconds = Some(series.and_then(|l| l.p95));
        a.p99_seconds = Some(series.and_then(|l| l.p99));
        a.agent = format!("{service}/{name}");
        a.replicas = Some(replicas as u64);
        a.latency_source = Some(format!(
            "merged histogram buckets of {replicas} replica(s), {}",
            series
                .map(|l| l.source.as_str())
                .unwrap_or("no requests yet")
        ));
    }
    agents
}

/// The rows of one replica of a scaled service, named `service/agent@container`, with
/// `group_agent` naming their merged row.
pub fn replica_rows(service: &str, name: &str, rows: Vec<AgentRow>) -> Vec<AgentRow> {
    rows.into_iter()
        .map(|mut a| {
            a.group_agent = Some(format!("{service}/{}", a.agent));
            a.agent = format!("{service}/{}@{name}", a.agent);
            a.replica = Some(name.to_string());
            a
        })
        .collect()
}
