//! `osmen bench`: the guide's load test against the embedded gateway (or any gateway, or
//! with `--raw` any plain-HTTP URL), with a live view on a terminal.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;

use super::{NO, OK, out};
use crate::bench::{self, Plan, Target};
use crate::cli::{BenchArgs, Global};

/// The key: --key, else the first of OSMEN_API_KEYS, else the one the gateway generated.
fn key(global: &Global, args: &BenchArgs) -> Option<String> {
    if let Some(k) = &args.key {
        return Some(k.clone());
    }
    if let Ok(k) = std::env::var("OSMEN_API_KEYS")
        && let Some(first) = k.split(',').map(str::trim).find(|x| !x.is_empty())
    {
        return Some(first.to_string());
    }
    let opts = super::gateway::options(
        global,
        &crate::cli::GatewayArgs {
            listen: None,
            gateway_config: None,
        },
    );
    std::fs::read_to_string(opts.runtime_dir.join("gateway.key"))
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
}

pub async fn run(global: &Global, args: &BenchArgs) -> anyhow::Result<u8> {
    check_args(args)?;
    let target = target(global, args)?;
    let timeout = crate::model::units::parse_duration(&args.timeout)
        .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let duration = args
        .duration
        .as_deref()
        .map(crate::model::units::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
    bench::preflight(&target, timeout).await?;
    let plan = Plan {
        target,
        users: args.users,
        requests: if args.rate.is_some() {
            args.requests * args.users as u64
        } else {
            args.requests
        },
        duration,
        rate: args.rate,
        timeout,
    };
    let tally = bench::new_tally(plan.users);
    let live = std::io::stdout().is_terminal() && !args.json;
    let view = live.then(|| live_view(tally.clone(), &plan));
    let report = bench::run(&plan, tally).await;
    if let Some(v) = view {
        v.abort();
        let _ = out("\r\x1b[2K");
    }
    if args.json {
        out(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        out(&report.render())?;
    }
    if report.successes == 0 {
        eprintln!("osmen: no request succeeded");
        return Ok(NO);
    }
    Ok(OK)
}

/// The arguments a run cannot start without.
fn check_args(args: &BenchArgs) -> anyhow::Result<()> {
    if args.agent.is_empty()
        || !args
            .agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        bail!(
            "--agent {:?}: agent names are letters, digits, _ and - (GET /api/v1/agents lists them)",
            args.agent
        );
    }
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of requests per second");
    }
    Ok(())
}

/// What the load is sent to: an agent's execute endpoint on the gateway (with its key),
/// or with `--raw` the URL itself.
fn target(global: &Global, args: &BenchArgs) -> anyhow::Result<Target> {
    let base = args.url.clone().unwrap_or_else(|| {
        let opts = super::gateway::options(
            global,
            &crate::cli::GatewayArgs {
                listen: None,
                gateway_config: None,
            },
        );
        format!(
            "http://{}",
            crate::gateway::addrfile::listen(&opts.runtime_dir)
        )
    });
    let (host, port, path) = Target::parse_url(&base).map_err(|e| anyhow::anyhow!("--url {e}"))?;
    let mut headers = Vec::new();
    Ok(if args.raw {
        // A raw URL gets a key only when one is given explicitly.
        if let Some(k) = &args.key {
            headers.push(("x-api-key".to_string(), k.clone()));
        }
        Target {
            host,
            port,
            path,
            method: hyper::Method::GET,
            body: Bytes::new(),
            headers,
            numbered_input: None,
        }
    } else {
        if let Some(k) = key(global, args) {
            headers.push(("x-api-key".to_string(), k));
        }
        headers.push(("content-type".to_string(), "application/json".to_string()));
        Target {
            host,
            port,
            path: format!(
                "{}/api/v1/agents/{}/execute",
                path.trim_end_matches('/'),
                args.agent
            ),
            method: hyper::Method::POST,
            body: Bytes::new(),
            headers,
            numbered_input: Some(args.input.clone()),
        }
    })
}

/// The line redrawn twice a second on a terminal: requests, rate, percentiles, errors.
fn live_view(tally: std::sync::Arc<bench::Tally>, plan: &Plan) -> tokio::task::JoinHandle<()> {
    let t = tally;
    let total = match (plan.duration, plan.rate) {
        (Some(_), _) => None,
        (None, Some(_)) => Some(plan.requests),
        (None, None) => Some(plan.requests * plan.users as u64),
    };
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut last = (0u64, start);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let ok = t.ok.load(Ordering::Relaxed);
            let done = t.done.load(Ordering::Relaxed);
            let now = tokio::time::Instant::now();
            let rate =
                done.saturating_sub(last.0) as f64 / now.duration_since(last.1).as_secs_f64();
            last = (done, now);
            let h = t.merged();
            let q = |p| h.value_at_quantile(p) as f64 / 1000.0;
            let of = total.map(|x| format!("/{x}")).unwrap_or_default();
            let line = format!(
                "\r\x1b[2K{done}{of} requests  {rate:.0}/s  p50 {:.1}ms  p95 {:.1}ms  p99 {:.1}ms  errors {}",
                q(0.5),
                q(0.95),
                q(0.99),
                done.saturating_sub(ok)
            );
            let _ = out(&line);
        }
    })
}
