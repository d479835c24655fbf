//! Quantiles: from summaries as given, and `histogram_quantile` over bucket deltas kept
//! over a sliding window.

use std::collections::BTreeMap;

use super::parse::parse_value;
use super::{Family, Kind, Labels};

/// `histogram_quantile`: `buckets` are (upper bound, cumulative count), in any order.
/// Linear interpolation inside the bucket that holds the rank, as Prometheus does.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last()?.1;
    if total <= 0.0 || b.len() < 2 || !b.last()?.0.is_infinite() {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (i, &(le, count)) in b.iter().enumerate() {
        if count >= rank {
            if le.is_infinite() {
                // The rank is in the open-ended bucket: the last finite bound is the answer.
                return Some(b.get(i.wrapping_sub(1)).map(|x| x.0).unwrap_or(0.0));
            }
            let lower = if i == 0 { 0.0f64.min(le) } else { prev.0 };
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    None
}

/// Quantile series of one family: (labels without `quantile`/`le`, q, value). Summaries
/// give their own quantiles; histograms are computed from their (cumulative) buckets.
pub fn quantiles(f: &Family, qs: &[f64]) -> Vec<(Labels, f64, f64)> {
    let mut out = Vec::new();
    match f.kind {
        Kind::Summary => {
            for s in f.samples.iter().filter(|s| s.name == f.name) {
                if let Some(q) = s.label("quantile").and_then(|q| q.parse::<f64>().ok()) {
                    let rest = s
                        .labels
                        .iter()
                        .filter(|(k, _)| k != "quantile")
                        .cloned()
                        .collect();
                    out.push((rest, q, s.value));
                }
            }
        }
        Kind::Histogram | Kind::GaugeHistogram => {
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
                let Some(le) = s.label("le").and_then(parse_value) else {
                    continue;
                };
                let rest: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                series.entry(rest).or_default().push((le, s.value));
            }
            for (labels, buckets) in series {
                for q in qs {
                    if let Some(v) = histogram_quantile(*q, &buckets) {
                        out.push((labels.clone(), *q, v));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Bucket deltas between two scrapes of one histogram series (for a sliding window):
/// each bound's count now minus then. A counter reset (count went down) gives `now`.
pub fn bucket_delta(then: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let reset = now
        .iter()
        .any(|(le, c)| then.iter().any(|(l2, c2)| l2 == le && c2 > c));
    if reset {
        return now.to_vec();
    }
    now.iter()
        .map(|(le, c)| {
            let before = then
                .iter()
                .find(|(l2, _)| l2 == le)
                .map(|x| x.1)
                .unwrap_or(0.0);
            (*le, c - before)
        })
        .collect()
}

/// How far back histogram quantiles look (bucket deltas over this window).
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

type SeriesKey = (String, Labels);
/// The buckets of every histogram series in one scrape.
type BucketMap = BTreeMap<SeriesKey, Vec<(f64, f64)>>;

/// One target's recent histogram scrapes, for windowed quantiles.
#[derive(Default)]
pub struct Windowed {
    scrapes: std::collections::VecDeque<(std::time::Instant, BucketMap)>,
}

fn label_text(l: &[(String, String)]) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Windowed {
    /// Latency series of one scrape: summaries as reported, histograms over the bucket
    /// deltas since the oldest scrape still inside the window.
    pub fn latencies(
        &mut self,
        fams: &[Family],
        now: std::time::Instant,
    ) -> Vec<crate::model::snapshot::LatencySeries> {
        use crate::model::snapshot::LatencySeries;
        let mut out = Vec::new();
        let mut buckets: BucketMap = BTreeMap::new();
        for f in fams {
            match f.kind {
                Kind::Summary => {
                    let mut by: BTreeMap<String, [Option<f64>; 3]> = BTreeMap::new();
                    for (l, q, v) in quantiles(f, &[]) {
                        let slot = by.entry(label_text(&l)).or_default();
                        let i = if (q - 0.5).abs() < 1e-9 {
                            0
                        } else if (q - 0.95).abs() < 1e-9 {
                            1
                        } else if (q - 0.99).abs() < 1e-9 {
                            2
                        } else {
                            continue;
                        };
                        slot[i] = (!v.is_nan()).then_some(v);
                    }
                    for (labels, [p50, p95, p99]) in by {
                        out.push(LatencySeries {
                            family: f.name.clone(),
                            labels,
                            p50,
                            p95,
                            p99,
                            source: "summary".into(),
                        });
                    }
                }
                Kind::Histogram => {
                    for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
                        let Some(le) = s.label("le").and_then(parse_value) else {
                            continue;
                        };
                        let rest: Labels = s
                            .labels
                            .iter()
                            .filter(|(k, _)| k != "le")
                            .cloned()
                            .collect();
                        buckets
                            .entry((f.name.clone(), rest))
                            .or_default()
                            .push((le, s.value));
                    }
                }
                _ => {}
            }
        }
        while self
            .scrapes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.scrapes.pop_front();
        }
        for ((fam, labels), now_b) in &buckets {
            let delta = match self
                .scrapes
                .front()
                .and_then(|(_, m)| m.get(&(fam.clone(), labels.clone())))
            {
                Some(then) => bucket_delta(then, now_b),
                None => now_b.clone(),
            };
            // With nothing observed in the window (osmen started after the traffic), the
            // figures since the process started, said as such, rather than none.
            let idle = histogram_quantile(0.5, &delta).is_none();
            let used = if idle { now_b } else { &delta };
            let q = |x: f64| histogram_quantile(x, used);
            out.push(LatencySeries {
                family: fam.clone(),
                labels: label_text(labels),
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
                source: if self.scrapes.is_empty() {
                    "histogram, since start".into()
                } else if idle {
                    "histogram, since start (none in the last 60 s)".into()
                } else {
                    "histogram, last 60 s".into()
                },
            });
        }
        self.scrapes.push_back((now, buckets));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::prometheus::parse;

    #[test]
    fn histogram_quantiles_come_from_the_window_deltas() {
        let page = |fast: u64, slow: u64| {
            format!(
                "# TYPE lat histogram\nlat_bucket{{le=\"0.1\"}} {fast}\nlat_bucket{{le=\"1\"}} {}\nlat_bucket{{le=\"+Inf\"}} {}\n",
                fast + slow,
                fast + slow
            )
        };
        let t0 = std::time::Instant::now();
        let mut w = Windowed::default();
        // Since start: 1000 fast requests.
        let first = w.latencies(&parse(&page(1000, 0)).unwrap(), t0);
        assert!(first[0].p99.unwrap() <= 0.1);
        // In the window only slow ones arrive: the window's P50 is in (0.1, 1].
        let later = w.latencies(
            &parse(&page(1000, 100)).unwrap(),
            t0 + std::time::Duration::from_secs(10),
        );
        let p50 = later[0].p50.unwrap();
        assert!((0.1..=1.0).contains(&p50) && p50 > 0.5, "{p50}");
        assert_eq!(later[0].source, "histogram, last 60 s");
    }
}
