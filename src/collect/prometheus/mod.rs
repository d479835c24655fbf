//! Prometheus text exposition (0.0.4) and OpenMetrics parsing, written here because
//! prometheus-parse 0.2.5 drops valid input (names with colons, escaped quotes) and
//! mis-splits label values holding `,` or `=` (`tests/it/prometheus.rs` proves it on the
//! corpus). Also: quantiles from summaries, and `histogram_quantile` over bucket deltas;
//! agent rows from a gateway's families; replica merging; and the scrape loop (here).

use std::collections::BTreeMap;

mod agents;
mod parse;
mod quantile;
mod replicas;
pub use agents::{agents_from, attach_waits, ollama_in_flight};
pub use parse::{Family, Kind, Labels, ParseError, Sample, SampleError, parse};
pub use quantile::{WINDOW, Windowed, bucket_delta, histogram_quantile, quantiles};
pub use replicas::{group_agents, merge, replica_rows};

/// The merged row's window, one per set of replicas: sums over another set are not
/// comparable (a replica gone would look like a counter reset), so a change of replicas
/// starts a new window.
fn merged_key(g: &ReplicaGroup, answering: usize) -> String {
    let members: Vec<&str> = g.members.iter().map(|(n, _)| n.as_str()).collect();
    format!("merged:{}:{answering}:{}", g.service, members.join(","))
}

/// How long the first scrape waits for the first list of replicas.
const FIRST_GROUPS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The running replicas of one scaled service, each with its /metrics URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaGroup {
    pub service: String,
    /// (container name, URL)
    pub members: Vec<(String, String)>,
}

/// Why a target's `/metrics` could not be read; the text is the scrape row's error.
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Parse(#[from] ParseError),
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<Family>, ScrapeError> {
    let t = client.get(url).send().await?.text().await?;
    Ok(parse(&t)?)
}

fn target_row(
    url: &str,
    r: &Result<Vec<Family>, ScrapeError>,
    lat: Vec<crate::model::snapshot::LatencySeries>,
) -> crate::model::snapshot::ScrapeTarget {
    crate::model::snapshot::ScrapeTarget {
        url: url.to_string(),
        replica_of: None,
        name: None,
        up: r.is_ok(),
        error: r.as_ref().err().map(ToString::to_string),
        families: r.as_ref().map(|f| f.len()).unwrap_or(0),
        samples: r
            .as_ref()
            .map(|f| f.iter().map(|x| x.samples.len()).sum())
            .unwrap_or(0),
        latencies: lat,
    }
}

/// Scrapes every target each `period`: latency series for the snapshot's `scrapes`, and
/// per-agent figures from any osmen gateway among them. The replicas of a scaled service
/// (`groups`, kept current by the caller) are scraped one by one, shown one row each, and
/// merged into one row whose counters are summed and whose percentiles come from the
/// summed buckets.
pub async fn run_targets(
    urls: Vec<String>,
    groups: tokio::sync::watch::Receiver<Vec<ReplicaGroup>>,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let client = crate::http::client(|b| b.timeout(std::time::Duration::from_secs(2)));
    let mut windows: BTreeMap<String, Windowed> = BTreeMap::new();
    // The first scrape waits (a little) for the first look at the replicas, so that a
    // one-shot `status` sees them; without an engine the sender is gone at once.
    let mut groups = groups;
    let _ = tokio::time::timeout(FIRST_GROUPS_WAIT, groups.changed()).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = std::time::Instant::now();
        let mut agents = Vec::new();
        let mut targets = Vec::new();
        let mut down = Vec::new();
        // Summed over every gateway that answered (each replica once, not its merge).
        let mut in_flight: Option<u64> = None;
        let mut add = |n: Option<u64>| {
            if let Some(n) = n {
                *in_flight.get_or_insert(0) += n;
            }
        };
        for u in &urls {
            let r = fetch(&client, u).await;
            let lat = match &r {
                Ok(f) => {
                    let lat = windows.entry(u.clone()).or_default().latencies(f, now);
                    add(ollama_in_flight(f));
                    let mut rows = agents_from(f);
                    attach_waits(&mut rows, &lat);
                    agents.extend(rows);
                    lat
                }
                Err(e) => {
                    down.push(format!("{u}: {e}"));
                    Vec::new()
                }
            };
            targets.push(target_row(u, &r, lat));
        }
        let current = groups.borrow().clone();
        let mut per_replica = Vec::new();
        for g in &current {
            let mut fams = Vec::new();
            for (name, u) in &g.members {
                let r = fetch(&client, u).await;
                let lat = match &r {
                    Ok(f) => windows.entry(u.clone()).or_default().latencies(f, now),
                    Err(e) => {
                        down.push(format!("{name} ({u}): {e}"));
                        Vec::new()
                    }
                };
                let mut rows = r.as_ref().map(|f| agents_from(f)).unwrap_or_default();
                attach_waits(&mut rows, &lat);
                let mut row = target_row(u, &r, lat);
                row.replica_of = Some(g.service.clone());
                row.name = Some(name.clone());
                targets.push(row);
                if let Ok(f) = r {
                    add(ollama_in_flight(&f));
                    per_replica.extend(replica_rows(&g.service, name, rows));
                    fams.push(f);
                }
            }
            if fams.is_empty() {
                continue;
            }
            let merged = merge(&fams);
            let key = merged_key(g, fams.len());
            let lat = windows
                .entry(key.clone())
                .or_default()
                .latencies(&merged, now);
            agents.extend(group_agents(&g.service, fams.len(), &merged, &lat));
            let mut row = target_row(&key, &Ok(merged), lat);
            row.replica_of = Some(g.service.clone());
            row.name = Some(format!("merged ({} replicas)", fams.len()));
            targets.push(row);
        }
        // Replicas that went away take their windows with them.
        windows.retain(|k, _| {
            urls.contains(k)
                || current.iter().any(|g| {
                    k.starts_with(&format!("merged:{}:", g.service))
                        || g.members.iter().any(|(_, u)| u == k)
                })
        });
        let _ = tx.send(Update::OllamaInFlight(in_flight)).await;
        let _ = tx.send(Update::Agents(agents)).await;
        let _ = tx.send(Update::ReplicaAgents(per_replica)).await;
        let _ = tx.send(Update::Scrapes(targets)).await;
        let health = if down.is_empty() {
            Ok(())
        } else {
            Err(format!("unavailable: {}", down.join("; ")))
        };
        let _ = tx.send(Update::Source("scrape", health)).await;
    }
}

#[cfg(test)]
mod tests;
