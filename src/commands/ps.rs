//! `osmen ps`: the stack's containers, as a table or as JSON.

use super::{Ctx, OK, out};
use crate::cli::PsArgs;
use crate::model::container::ContainerRow;
use crate::stack::engine::Engine;

pub fn table(rows: &[ContainerRow]) -> String {
    let head = ["NAME", "SERVICE", "STATUS", "RESTARTS", "PORTS"];
    let body: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.service.clone(),
                r.status_word(),
                r.restart_count.to_string(),
                r.ports
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for row in &body {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for row in &body {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    out
}

pub async fn run(ctx: &Ctx, args: &PsArgs) -> anyhow::Result<u8> {
    if ctx.global.engine == crate::cli::EngineKind::Swarm {
        return super::swarm::ps(ctx, args.json).await;
    }
    let engine = ctx.engine().await?;
    let rows = engine.list_containers(&ctx.project.name).await?;
    if args.json {
        out(&(serde_json::to_string_pretty(&rows)? + "\n"))?;
    } else {
        out(&table(&rows))?;
    }
    Ok(OK)
}
