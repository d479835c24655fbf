//! `osmen up`: create and start the stack in dependency order.

use std::collections::BTreeSet;

use anyhow::bail;

use super::{Ctx, NO, OK, out};
use crate::cli::UpArgs;
use crate::stack::compose::dependency_closure;
use crate::stack::supervise::{SuperviseError, UpOptions};

/// The services `up` acts on: the named ones (or every active one) and their
/// dependencies. A dependency hidden behind a profile that is not enabled is an error.
pub fn targets(ctx: &Ctx, named: &[String]) -> anyhow::Result<BTreeSet<String>> {
    let p = &ctx.project;
    for n in named {
        if !p.services.contains_key(n) {
            let all: Vec<&str> = p.services.keys().map(String::as_str).collect();
            bail!(
                "no service named {n:?} in {}; services: {}",
                p.file.display(),
                all.join(", ")
            );
        }
    }
    let active = p.active_services(&ctx.global.profiles, named);
    let roots: Vec<String> = if named.is_empty() {
        active.iter().cloned().collect()
    } else {
        named.to_vec()
    };
    let all = dependency_closure(p, &roots);
    for s in &all {
        if !active.contains(s) {
            let svc = &p.services[s];
            bail!(
                "service {s} is needed but belongs to profile(s) {}: enable one with --profile {}",
                svc.profiles.join(", "),
                svc.profiles.first().map(String::as_str).unwrap_or("")
            );
        }
    }
    Ok(all)
}

pub async fn run(ctx: &Ctx, args: &UpArgs) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("up")?;
    let mut targets = targets(ctx, &args.services)?;
    let mut project = (*ctx.project).clone();
    for (svc, n) in &args.scale {
        let Some(s) = project.services.get_mut(svc) else {
            let names: Vec<&str> = ctx.project.services.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--scale {svc}={n}: no service {svc} in {}; services: {}",
                ctx.project.file.display(),
                names.join(", ")
            );
        };
        if n > &1 && s.container_name.is_some() {
            anyhow::bail!(
                "--scale {svc}={n}: {svc} sets container_name, which one container only can \
                 have; remove it to run replicas"
            );
        }
        if s.deploy.is_global() && ctx.global.engine == crate::cli::EngineKind::Swarm {
            anyhow::bail!(
                "--scale {svc}={n}: {svc} is a global service (deploy.mode: global, one task \
                 per node): it has no replica count to scale; set mode: replicated in the \
                 file to scale it"
            );
        }
        s.replicas = *n;
        targets.insert(svc.clone());
    }
    if ctx.global.engine == crate::cli::EngineKind::Swarm {
        return super::swarm::up(ctx, &project, &targets, args.wait).await;
    }
    for t in &targets {
        let svc = &project.services[t];
        let notes = crate::stack::compose::deploy::local_up_notes(svc);
        for line in notes
            .into_iter()
            .chain(crate::stack::compose::ports::local_up_notes(svc))
        {
            eprintln!("note: {line}");
        }
    }
    let sup = ctx.supervisor_for(std::sync::Arc::new(project)).await?;
    let opts = UpOptions {
        wait: args.wait,
        force_recreate: args.force_recreate,
        pull: args.pull,
    };
    match sup
        .up(&targets, &opts, super::progress::stderr_sink())
        .await
    {
        Ok(outcomes) => {
            let mut text = String::new();
            for o in outcomes {
                text.push_str(&format!("{:<20} {:<10} {}\n", o.service, o.action, o.state));
            }
            out(&text)?;
            Ok(OK)
        }
        Err(SuperviseError::Failed(lines)) => {
            eprintln!("up did not complete:");
            for l in lines {
                eprintln!("  {l}");
            }
            Ok(NO)
        }
        Err(e) => Err(e.into()),
    }
}
