//! `--engine swarm` for `up`, `down` and `ps`: the stack as Swarm services
//! ([`crate::stack::swarm`]), every change journaled before it is made.

use std::collections::BTreeSet;

use super::{Ctx, OK, out};
use crate::stack::compose::Project;
use crate::stack::engine::EngineError;
use crate::stack::swarm;

fn recorder(ctx: &Ctx) -> impl FnMut(&str, &str, &str) -> Result<(), EngineError> {
    let journal = ctx.journal();
    move |svc: &str, action: &str, why: &str| {
        journal.record(svc, action, why).map_err(|e| {
            EngineError::Other(format!(
                "cannot write the journal, so nothing was changed: {e}"
            ))
        })
    }
}

pub async fn up(
    ctx: &Ctx,
    project: &Project,
    targets: &BTreeSet<String>,
    wait: bool,
) -> anyhow::Result<u8> {
    let engine = ctx.engine().await?;
    let lines = swarm::deploy(&engine, project, targets, recorder(ctx)).await?;
    for l in &lines {
        eprintln!("{l}");
    }
    if wait {
        let deadline = std::time::Instant::now() + ctx.config.supervisor.health_timeout;
        let mut unschedulable_polls = 0;
        loop {
            let (summary, rows) = swarm::tasks(&engine, project).await?;
            // Only what this `up` deployed is waited for.
            let wanted: BTreeSet<String> = targets
                .iter()
                .map(|t| swarm::service_name(project, t))
                .collect();
            let summary: Vec<_> = summary
                .into_iter()
                .filter(|(n, _, _, _)| wanted.contains(n))
                .collect();
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|r| wanted.contains(&r.service))
                .collect();
            let pending: Vec<String> = summary
                .iter()
                .filter(|(_, desired, running, rolling)| running < desired || *rolling)
                .map(|(n, d, r, rolling)| {
                    format!(
                        "{n} {r}/{d}{}",
                        if *rolling { " (update rolling)" } else { "" }
                    )
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            // No node can take a task (resources, constraints): waiting will not help.
            let waiting: Vec<_> = rows.iter().filter(|r| r.state != "running").collect();
            let stuck = !waiting.is_empty()
                && waiting.iter().all(|r| {
                    r.error
                        .as_deref()
                        .is_some_and(|e| e.contains("no suitable node"))
                });
            unschedulable_polls = if stuck { unschedulable_polls + 1 } else { 0 };
            if unschedulable_polls >= 6 || std::time::Instant::now() > deadline {
                let why: Vec<String> = rows
                    .iter()
                    .filter(|r| r.state != "running")
                    .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.service)))
                    .collect();
                eprintln!(
                    "up did not complete: {} running of the wanted replicas{}",
                    pending.join(", "),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                );
                return Ok(super::NO);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    ps(ctx, false).await
}

pub async fn down(ctx: &Ctx) -> anyhow::Result<u8> {
    let engine = ctx.engine().await?;
    let n = swarm::remove(&engine, &ctx.project, recorder(ctx)).await?;
    eprintln!(
        "removed {n} Swarm service(s) of {}; volumes kept",
        ctx.project.name
    );
    Ok(OK)
}

/// Services with running/desired replicas, then each task with its node.
pub async fn ps(ctx: &Ctx, json: bool) -> anyhow::Result<u8> {
    let engine = ctx.engine().await?;
    let (summary, rows) = swarm::tasks(&engine, &ctx.project).await?;
    if json {
        let v = serde_json::json!({
            "services": summary.iter().map(|(n, d, r, u)| serde_json::json!({
                "service": n, "desired": d, "running": r, "updating": u})).collect::<Vec<_>>(),
            "tasks": rows,
        });
        out(&(serde_json::to_string_pretty(&v)? + "\n"))?;
        return Ok(OK);
    }
    let mut s = format!("{:<28} {:>8}\n", "SERVICE", "REPLICAS");
    for (n, d, r, u) in &summary {
        s.push_str(&format!(
            "{n:<28} {:>8}{}\n",
            format!("{r}/{d}"),
            if *u { "  update rolling" } else { "" }
        ));
    }
    s.push_str(&format!(
        "\n{:<32} {:<20} {:<10} {:<10} {:<13} ERROR\n",
        "TASK", "NODE", "STATE", "DESIRED", "CONTAINER"
    ));
    for t in &rows {
        s.push_str(&format!(
            "{:<32} {:<20} {:<10} {:<10} {:<13} {}\n",
            format!("{}.{}", t.service, t.slot.unwrap_or(0)),
            t.node,
            t.state,
            t.desired,
            t.container.as_deref().unwrap_or("-"),
            t.error.as_deref().unwrap_or("")
        ));
    }
    out(&s)?;
    Ok(OK)
}
