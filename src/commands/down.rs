//! `osmen down`: stop and remove the stack, keeping named volumes unless `--volumes`.

use super::{Ctx, OK};
use crate::cli::DownArgs;

pub async fn run(ctx: &Ctx, args: &DownArgs) -> anyhow::Result<u8> {
    ctx.refuse_if_read_only("down")?;
    if ctx.global.engine == crate::cli::EngineKind::Swarm {
        if args.volumes {
            anyhow::bail!(
                "--engine swarm: down keeps volumes; Swarm volumes live on each node, remove \
                 them there with `docker volume rm`"
            );
        }
        return super::swarm::down(ctx).await;
    }
    let sup = ctx.supervisor().await?;
    let n = sup.down(args.volumes).await?;
    if ctx.project.files.is_empty() {
        eprintln!(
            "no compose file: took down the containers and networks labelled with project \
             {}{}",
            ctx.project.name,
            if args.volumes {
                "; its named volumes are kept (the file names them: run down --volumes \
                 beside it, or `docker volume rm`)"
            } else {
                ""
            }
        );
    }
    eprintln!(
        "removed {n} container(s) of {}{}",
        ctx.project.name,
        if args.volumes {
            " and its volumes"
        } else {
            "; volumes kept"
        }
    );
    Ok(OK)
}
