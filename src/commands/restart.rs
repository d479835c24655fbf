//! `osmen restart SERVICE`.

use super::{Ctx, OK};
use crate::cli::RestartArgs;

pub async fn run(ctx: &Ctx, args: &RestartArgs) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("restart")?;
    let sup = ctx.supervisor().await?;
    let n = sup.restart(&args.service).await?;
    eprintln!("restarted {n} container(s) of {}", args.service);
    Ok(OK)
}
