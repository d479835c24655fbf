//! `osmen pull` and `osmen build`: the image steps of `up`, on their own.

use std::collections::BTreeSet;

use anyhow::bail;

use super::{Ctx, NO, OK, out};
use crate::cli::ServicesArgs;
use crate::stack::image::PullPolicy;
use crate::stack::provision::{self, ImageAction};

fn selected(ctx: &Ctx, args: &ServicesArgs) -> anyhow::Result<BTreeSet<String>> {
    if args.services.is_empty() {
        return Ok(ctx.project.active_services(&ctx.global.profiles, &[]));
    }
    for s in &args.services {
        if !ctx.project.services.contains_key(s) {
            bail!("no service named {s:?} in {}", ctx.project.file.display());
        }
    }
    Ok(args.services.iter().cloned().collect())
}

fn report(failures: Vec<String>) -> u8 {
    eprintln!("failed:");
    for f in failures {
        eprintln!("  {f}");
    }
    NO
}

pub async fn pull(ctx: &Ctx, args: &ServicesArgs) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("pull")?;
    let targets = selected(ctx, args)?;
    let engine = ctx.engine().await?;
    let plans = provision::plan_images(&*engine, &ctx.project, &targets, Some(PullPolicy::Always))
        .await?
        .into_iter()
        .filter(|p| {
            // Services that are only built have nothing to pull.
            let pullable = ctx.project.services[&p.service].image.is_some();
            if !pullable {
                eprintln!("{}: built from its `build:` section, not pulled", p.service);
            }
            pullable && p.action == ImageAction::Pull
        })
        .collect::<Vec<_>>();
    let sink = super::progress::stderr_sink();
    match provision::provision(engine, ctx.project.clone(), &plans, sink).await {
        Ok(()) => {
            let images: BTreeSet<&str> = plans.iter().map(|p| p.image.as_str()).collect();
            out(&format!("pulled {} image(s)\n", images.len()))?;
            Ok(OK)
        }
        Err(f) => Ok(report(f)),
    }
}

pub async fn build(ctx: &Ctx, args: &ServicesArgs) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("build")?;
    let targets = selected(ctx, args)?;
    let engine = ctx.engine().await?;
    let sink = super::progress::stderr_sink();
    let mut failures = Vec::new();
    let mut built = 0;
    for name in &targets {
        let svc = &ctx.project.services[name];
        if svc.build.is_none() {
            if !args.services.is_empty() {
                failures.push(format!("{name}: no `build:` section"));
            }
            continue;
        }
        match provision::build_one(&*engine, &ctx.project, svc, &sink).await {
            Ok(_) => built += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if !failures.is_empty() {
        return Ok(report(failures));
    }
    out(&format!("built {built} image(s)\n"))?;
    Ok(OK)
}
