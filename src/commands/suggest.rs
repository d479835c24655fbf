//! `osmen suggest`: the advisor's suggestions for the running stack, from the same
//! collectors and hub as the console; `--apply ID` carries one out (journaled first).
//! `osmen plan`: the guide's capacity row for a load, and a projection from this
//! deployment's own measured cost per request when its gateway has served some.

use std::time::Duration;

use anyhow::bail;

use super::{Ctx, NO, OK, out};
use crate::cli::{PlanArgs, SuggestArgs};
use crate::model::advice::Suggestion;
use crate::model::snapshot::Snapshot;
use crate::model::units::format_bytes;
use crate::stack::engine::{DockerEngine, Engine};

/// Collects until the advisor has a whole window of samples (or history from a console
/// that ran until now), then returns the snapshot with its suggestions.
pub async fn collect(ctx: &Ctx) -> Snapshot {
    let window = ctx.config.advisor.window;
    let fresh = history_age(&ctx.runtime_dir)
        .filter(|a| *a <= FRESH_HISTORY)
        .filter(|_| history_covers(&ctx.runtime_dir, window));
    let side = super::engine_side::EngineSide::start(ctx).await;
    let (tx, mut rx, stop) = (side.updates, side.snapshots, side.stop);
    let started = tokio::time::Instant::now();
    // The hub evaluates the advisor once a second (`hub::ADVISE_EVERY`): wait until an
    // evaluation has seen the whole window. A console that ran until now left that
    // window in runtime/history.json (the hub reads it at start): then a few seconds of
    // current samples on top of it will do.
    let settle = match fresh {
        Some(age) => {
            eprintln!(
                "osmen: using the console's history (runtime/history.json, written {} ago) \
                 and a few seconds of samples…",
                crate::model::units::format_duration(Duration::from_secs(age.as_secs()))
            );
            FRESH_SETTLE
        }
        None => {
            eprintln!(
                "osmen: sampling the stack for the advisor's window ({})…",
                crate::model::units::format_duration(window)
            );
            window + crate::hub::ADVISE_EVERY * 2 + Duration::from_millis(500)
        }
    };
    let deadline = started + settle + Duration::from_secs(3);
    loop {
        let enough = started.elapsed() >= settle;
        if enough
            || tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
        {
            break;
        }
    }
    let snap = (*rx.borrow().clone()).clone();
    let _ = stop.send(true);
    drop(tx);
    snap
}

/// History the console persisted this recently is current enough to advise from (the
/// hub persists it every `hub::PERSIST_EVERY`).
pub const FRESH_HISTORY: Duration = Duration::from_secs(90);
/// Samples taken on top of fresh history: two rounds of every collector and advisor.
const FRESH_SETTLE: Duration = Duration::from_secs(5);

/// How long ago the console's history was written, when it exists.
fn history_age(runtime_dir: &std::path::Path) -> Option<Duration> {
    let m = std::fs::metadata(runtime_dir.join("history.json")).ok()?;
    m.modified().ok()?.elapsed().ok()
}

/// Whether the persisted history reaches back a whole advisor window (a console that ran
/// for 30 s has not measured a minute).
fn history_covers(runtime_dir: &std::path::Path, window: Duration) -> bool {
    let Ok(text) = std::fs::read_to_string(runtime_dir.join("history.json")) else {
        return false;
    };
    let Ok(h) = serde_json::from_str::<crate::model::history::History>(&text) else {
        return false;
    };
    let since = crate::sys::now_secs() - window.as_secs_f64();
    h.series
        .get("host:cpu_percent")
        .and_then(|s| s.fine.front())
        .is_some_and(|(t, _)| *t <= since)
}

fn text(s: &[Suggestion]) -> String {
    if s.is_empty() {
        return "no suggestions: every threshold is met\n".into();
    }
    let mut o = String::new();
    for x in s {
        o.push_str(&format!(
            "[{}] {} ({}, {})\n  evidence: {}\n  action: {} (now {})\n  command: {}\n",
            x.id,
            x.service,
            x.rule,
            x.severity,
            x.evidence,
            x.action.summary(),
            x.action.from,
            x.command,
        ));
        if !x.compose_patch.is_empty() {
            o.push_str("  keep it in docker-compose.yml:\n");
            for l in x.compose_patch.lines() {
                o.push_str(&format!("    {l}\n"));
            }
        }
    }
    o
}

pub async fn run(ctx: &Ctx, args: &SuggestArgs) -> anyhow::Result<u8> {
    // Refused before a minute of sampling, not after.
    if let Some(id) = &args.apply {
        ctx.refuse_if_read_only(&format!("suggest --apply {id}"))?;
    }
    let snap = collect(ctx).await;
    if let Some(id) = &args.apply {
        let Some(s) = snap.suggestions.iter().find(|x| &x.id == id) else {
            let have: Vec<&str> = snap.suggestions.iter().map(|x| x.id.as_str()).collect();
            bail!(
                "no suggestion {id:?} holds now; current: {}",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            );
        };
        let engine = ctx.engine().await?;
        let done = apply(ctx, &engine, s, super::stderr_reporter()).await?;
        out(&format!("{done}\n"))?;
        return Ok(OK);
    }
    if args.json {
        let v = serde_json::json!({ "suggestions": snap.suggestions });
        out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
    } else {
        out(&text(&snap.suggestions))?;
    }
    Ok(if snap.suggestions.is_empty() { OK } else { NO })
}

/// Carries out a suggestion live: limits with `docker update` (no restart), replicas
/// by converging the service to the new count. Journaled before it acts.
pub async fn apply(
    ctx: &Ctx,
    engine: &std::sync::Arc<DockerEngine>,
    s: &Suggestion,
    report: crate::stack::supervise::Reporter,
) -> anyhow::Result<String> {
    let journal = ctx.journal();
    // On a Swarm the service's spec changes and Swarm rolls its tasks.
    if ctx.global.engine == crate::cli::EngineKind::Swarm
        && matches!(s.action.kind.as_str(), "vertical" | "horizontal")
        && s.action.maxmemory.is_none()
    {
        return apply_on_swarm(ctx, engine, s, &journal).await;
    }
    match s.action.kind.as_str() {
        "vertical" => apply_vertical(ctx, engine, s, &journal).await,
        "horizontal" => apply_horizontal(ctx, engine, s, journal, report).await,
        _ => bail!(
            "suggestion {} is about the machine itself ({}); osmen cannot apply it",
            s.id,
            s.command
        ),
    }
}

/// A Swarm service's spec updated; Swarm rolls its tasks.
async fn apply_on_swarm(
    ctx: &Ctx,
    engine: &std::sync::Arc<DockerEngine>,
    s: &Suggestion,
    journal: &std::sync::Arc<crate::stack::journal::Journal>,
) -> anyhow::Result<String> {
    let (replicas, cpus, memory) = match s.action.kind.as_str() {
        "horizontal" => (s.action.replicas, None, None),
        _ => (None, s.action.cpus, s.action.memory),
    };
    journal.record(
        &s.service,
        "service-update",
        &format!("suggestion {}: {}", s.id, s.action.summary()),
    )?;
    crate::stack::swarm::update(engine, &ctx.project, &s.service, replicas, cpus, memory).await?;
    Ok(format!(
        "{}: Swarm service {} updated ({}); keep it with:\n{}",
        s.service,
        crate::stack::swarm::service_name(&ctx.project, &s.service),
        s.action.summary(),
        s.compose_patch
    ))
}

/// New limits on every running container, live (and Redis's maxmemory with them).
async fn apply_vertical(
    ctx: &Ctx,
    engine: &std::sync::Arc<DockerEngine>,
    s: &Suggestion,
    journal: &std::sync::Arc<crate::stack::journal::Journal>,
) -> anyhow::Result<String> {
    let rows: Vec<_> = engine
        .list_containers(&ctx.project.name)
        .await?
        .into_iter()
        .filter(|r| r.service == s.service && r.state == "running")
        .collect();
    if rows.is_empty() {
        bail!("service {} has no running container", s.service);
    }
    let limits = s.action.cpus.is_some() || s.action.memory.is_some();
    for r in rows.iter().filter(|_| limits) {
        journal.record(
            &s.service,
            "update-limits",
            &format!(
                "{}: suggestion {}: {}{}",
                r.name,
                s.id,
                s.action
                    .cpus
                    .map(|c| format!("cpus {c} "))
                    .unwrap_or_default(),
                s.action
                    .memory
                    .map(|m| format!("memory {}", format_bytes(m)))
                    .unwrap_or_default()
            ),
        )?;
        engine
            .update_limits(&r.id, s.action.cpus, s.action.memory)
            .await?;
    }
    // Redis: its maxmemory grows with the limit, live, with the probe's credentials.
    if let Some(max) = s.action.maxmemory {
        let target = super::engine_side::probe_targets(&ctx.project)
            .into_iter()
            .find(|t| t.service == s.service)
            .ok_or_else(|| anyhow::anyhow!("{} is not probed as Redis", s.service))?;
        let addr =
            crate::collect::probes::endpoint(&rows, &target, engine.remote_host().as_deref())
                .map_err(|e| anyhow::anyhow!(e))?;
        journal.record(
            &s.service,
            "set-maxmemory",
            &format!("suggestion {}: maxmemory {}", s.id, format_bytes(max)),
        )?;
        crate::stack::redis_admin::set_maxmemory(&addr, &target.creds, max)
            .await
            .map_err(|e| {
                anyhow::anyhow!("{}: {}", s.service, target.creds.scrub(&e.to_string()))
            })?;
    }
    Ok(format!(
        "{}: {} ({}) live, no restart (was {}); keep it with:\n{}",
        s.service,
        if limits {
            format!("limits updated on {} container(s)", rows.len())
        } else {
            "set".to_string()
        },
        s.action.summary(),
        s.action.from,
        s.compose_patch
    ))
}

/// The service scaled to the suggested replicas (until the next `up` from the file).
async fn apply_horizontal(
    ctx: &Ctx,
    engine: &std::sync::Arc<DockerEngine>,
    s: &Suggestion,
    journal: std::sync::Arc<crate::stack::journal::Journal>,
    report: crate::stack::supervise::Reporter,
) -> anyhow::Result<String> {
    let Some(n) = s.action.replicas else {
        bail!("suggestion {} names no replica count", s.id);
    };
    let mut project = (*ctx.project).clone();
    let Some(svc) = project.services.get_mut(&s.service) else {
        bail!("no service {} in {}", s.service, ctx.project.file.display());
    };
    svc.replicas = n;
    journal.record(
        &s.service,
        "scale",
        &format!("suggestion {}: {} -> {n} replicas", s.id, s.action.from),
    )?;
    let sup = crate::stack::supervise::Supervisor::new(
        engine.clone(),
        std::sync::Arc::new(project),
        ctx.config.supervisor.clone(),
        journal,
        report,
    );
    let targets = std::collections::BTreeSet::from([s.service.clone()]);
    sup.up(&targets, &Default::default(), std::sync::Arc::new(|_| {}))
        .await?;
    Ok(format!(
        "{}: {n} replicas; keep it with:\n{}",
        s.service, s.compose_patch
    ))
}

/// Cores as capacity is planned: whole millicores when small (a gateway's own work
/// usually is), and `under 1 millicore` rather than a fraction nobody can reserve.
fn cores(c: f64) -> String {
    if c <= 0.0 {
        // An empty sum of floats is -0.0: no limits add up to plain zero.
        "0 cores".into()
    } else if c >= 0.1 {
        format!("{c:.2} cores")
    } else if c >= 0.001 {
        format!("{:.0} millicores", c * 1000.0)
    } else {
        "under 1 millicore".into()
    }
}

pub async fn plan(ctx: Option<&Ctx>, args: &PlanArgs) -> anyhow::Result<u8> {
    use crate::advisor::capacity;
    let requests = args.requests_per_day.unwrap_or(args.users * 100);
    let row = capacity::row_for(args.users, requests);
    let mut o = format!(
        "load: {} users, {} requests/day\nguide's capacity row: {}\n",
        args.users,
        requests,
        row.describe()
    );
    // The deployment's own cost per request, from its gateway's counters.
    let runtime = ctx
        .map(|c| c.runtime_dir.clone())
        .unwrap_or_else(|| std::path::PathBuf::from("runtime"));
    let listen = crate::gateway::addrfile::listen(&runtime);
    let url = format!("http://{listen}/metrics");
    let measured = async {
        let client = crate::http::client(|b| b.timeout(Duration::from_secs(3)));
        let body = client.get(&url).send().await.ok()?.text().await.ok()?;
        let fams = crate::collect::prometheus::parse(&body).ok()?;
        let agents = crate::collect::prometheus::agents_from(&fams);
        let mut req = 0.0;
        let mut cpu = 0.0;
        let mut peak: f64 = 0.0;
        for a in &agents {
            req += a.requests_total();
            cpu += a.cpu_seconds_total.unwrap_or(0.0);
            peak = peak.max(a.memory_peak_bytes.unwrap_or(0.0));
        }
        (req > 0.0).then_some((req, cpu, peak))
    }
    .await;
    match measured {
        Some((req, cpu, peak)) => {
            let per = cpu / req;
            let avg_cores = requests as f64 * per / 86_400.0;
            // The busiest hour taken as a tenth of the day's requests.
            let peak_cores = requests as f64 * 0.1 * per / 3600.0;
            o.push_str(&format!(
                "measured here ({url}): {req:.0} requests, {:.1} ms of gateway CPU each, \
                 largest execution {}\nprojection: {} on average, {} in the busiest hour (a \
                 tenth of the day's requests), for the gateway's own work; LLM time is spent \
                 by the providers, not here\n",
                per * 1000.0,
                format_bytes(peak as u64),
                cores(avg_cores),
                cores(peak_cores)
            ));
        }
        None => o.push_str(&format!(
            "no measured projection: the gateway at {url} has served no requests (or does \
             not answer); run some traffic or `osmen bench` first\n"
        )),
    }
    if let Some(ctx) = ctx {
        // The services `up` would start: those of the active profiles.
        let active = ctx.project.active_services(&ctx.global.profiles, &[]);
        let services: Vec<&crate::stack::compose::Service> = ctx
            .project
            .services
            .values()
            .filter(|s| active.contains(&s.name))
            .collect();
        let limits: f64 = services
            .iter()
            .filter_map(|s| s.resources.cpus.map(|c| c * f64::from(s.replicas)))
            .sum();
        let unlimited = services
            .iter()
            .filter(|s| s.resources.cpus.is_none())
            .count();
        let inactive = ctx.project.services.len() - services.len();
        let mut line = format!(
            "this stack's CPU limits add up to {} over {} active services",
            cores(limits),
            services.len()
        );
        if unlimited > 0 {
            line.push_str(&format!(" ({unlimited} without a CPU limit)"));
        }
        if inactive > 0 {
            line.push_str(&format!("; {inactive} more in profiles not enabled"));
        }
        o.push_str(&line);
        o.push('\n');
    }
    out(&o)?;
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use super::cores;

    #[test]
    fn cores_read_as_capacity_is_planned() {
        assert_eq!(cores(2.5), "2.50 cores");
        assert_eq!(cores(0.25), "0.25 cores");
        assert_eq!(cores(0.044), "44 millicores");
        assert_eq!(cores(0.000_044), "under 1 millicore");
        assert_eq!(cores(0.0), "0 cores");
        assert_eq!(cores(std::iter::empty::<f64>().sum()), "0 cores");
    }
}
