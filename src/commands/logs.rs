//! `osmen logs SERVICE`: each container's output, prefixed with its name.

use anyhow::bail;
use futures_util::StreamExt;
use futures_util::stream::select_all;

use super::{Ctx, OK, out};
use crate::cli::LogsArgs;
use crate::stack::engine::Engine;

pub async fn run(ctx: &Ctx, args: &LogsArgs) -> anyhow::Result<u8> {
    if !ctx.project.services.contains_key(&args.service) {
        bail!(
            "no service named {:?} in {}",
            args.service,
            ctx.project.file.display()
        );
    }
    let engine = ctx.engine().await?;
    let rows: Vec<_> = engine
        .list_containers(&ctx.project.name)
        .await?
        .into_iter()
        .filter(|r| r.service == args.service)
        .collect();
    if rows.is_empty() {
        bail!(
            "service {} has no container: run `osmen up` first",
            args.service
        );
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let streams = rows.iter().map(|r| {
        let prefix = format!("{:<width$} | ", r.name);
        engine
            .logs(&r.id, args.follow, args.tail)
            .map(move |c| (prefix.clone(), c))
    });
    let mut all = select_all(streams);
    let mut partial: std::collections::HashMap<String, String> = Default::default();
    while let Some((prefix, chunk)) = all.next().await {
        let chunk = chunk?;
        let buf = partial.entry(prefix.clone()).or_default();
        buf.push_str(&chunk.text);
        let mut text = String::new();
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            text.push_str(&prefix);
            text.push_str(&line);
        }
        out(&text)?;
    }
    let mut rest = String::new();
    for (prefix, buf) in partial {
        if !buf.is_empty() {
            rest.push_str(&format!("{prefix}{buf}\n"));
        }
    }
    out(&rest)?;
    Ok(OK)
}
