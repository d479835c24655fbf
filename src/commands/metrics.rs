//! `osmen metrics URL`: what does this service actually report? Every family and sample
//! of one scrape, and P50/P95/P99 for each summary and histogram.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{OK, out};
use crate::cli::MetricsArgs;
use crate::collect::prometheus::{Kind, parse, quantiles};

fn labels(l: &[(String, String)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

pub async fn run(args: &MetricsArgs) -> anyhow::Result<u8> {
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        bail!(
            "metrics takes an http:// or https:// URL, got {:?}",
            args.url
        );
    }
    let client = crate::http::client(|b| b.timeout(Duration::from_secs(10)));
    let resp = client
        .get(&args.url)
        .header("accept", "text/plain;version=0.0.4")
        .send()
        .await
        .with_context(|| format!("cannot scrape {}", args.url))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("{} answered {status}", args.url);
    }
    let fams = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.url))?;
    let qs = [0.5, 0.95, 0.99];
    if args.json {
        let v = json!({
            "url": args.url,
            "families": fams,
            "quantiles": fams.iter().flat_map(|f| quantiles(f, &qs).into_iter().map(move |(l, q, v)| json!({
                "family": f.name, "labels": l.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "quantile": q, "value": v,
                "source": if f.kind == Kind::Summary { "summary" } else { "histogram buckets since start" },
            }))).collect::<Vec<_>>(),
        });
        out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(OK);
    }
    let mut s = format!(
        "{}: {} families, {} samples\n",
        args.url,
        fams.len(),
        fams.iter().map(|f| f.samples.len()).sum::<usize>()
    );
    for f in &fams {
        s.push_str(&format!(
            "\n{} ({})",
            f.name,
            format!("{:?}", f.kind).to_lowercase()
        ));
        if !f.help.is_empty() {
            s.push_str(&format!("  {}", f.help));
        }
        s.push('\n');
        for smp in &f.samples {
            s.push_str(&format!(
                "  {}{} {}\n",
                smp.name,
                labels(&smp.labels),
                value(smp.value)
            ));
        }
        let q = quantiles(f, &qs);
        if !q.is_empty() {
            let src = if f.kind == Kind::Summary {
                "reported"
            } else {
                "from buckets since start"
            };
            let mut by_series: std::collections::BTreeMap<String, Vec<(f64, f64)>> =
                Default::default();
            for (l, qq, v) in q {
                by_series.entry(labels(&l)).or_default().push((qq, v));
            }
            for (l, vals) in by_series {
                let pick = |want: f64| {
                    vals.iter()
                        .find(|(q, _)| (*q - want).abs() < 1e-9)
                        .map(|(_, v)| format!("{v:.6}"))
                        .unwrap_or_else(|| "-".into())
                };
                s.push_str(&format!(
                    "  => p50 {} p95 {} p99 {} {l} ({src})\n",
                    pick(0.5),
                    pick(0.95),
                    pick(0.99)
                ));
            }
        }
    }
    out(&s)?;
    Ok(OK)
}
