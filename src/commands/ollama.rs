//! `osmen ollama`: the stack's Ollama from the command line, as the GPU view shows it. `ps`
//! lists the loaded models with their context length, GPU and CPU share, size and the time
//! until Ollama unloads them; `warm`, `unload` and `pin` load a model with Ollama's
//! configured keep-alive, unload it, or keep it loaded for good (refused under
//! `--read-only`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use super::{Ctx, NO, OK};
use crate::cli::{OllamaAction, OllamaArgs};
use crate::model::console::OllamaKeep;
use crate::model::container::published_host;
use crate::model::ollama::LoadedModel;
use crate::stack::engine::{DockerEngine, Engine};
use crate::stack::ollama::{KeepAlive, OllamaApi};

/// `OLLAMA_URL`, else the project's ollama service on its published port (as the
/// compose file declares it).
pub fn ollama_url_in(project: &crate::stack::compose::Project) -> Option<String> {
    std::env::var("OLLAMA_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| crate::model::ollama::url_with_scheme(&u))
        .or_else(|| {
            let svc = project.services.get("ollama")?;
            let p = svc.ports.iter().find(|p| p.target == 11434)?;
            let remote = crate::stack::remote::remote_host_from_env();
            let host = published_host(remote.as_deref(), p.host_ip.as_deref().unwrap_or(""))?;
            Some(format!("http://{host}:{}", p.host_port()?))
        })
}

/// Where the stack's Ollama answers: `OLLAMA_URL`, else the compose file's published port
/// of the Ollama service, else the running container's published port.
pub async fn locate(ctx: &Ctx, engine: Option<&DockerEngine>) -> Option<String> {
    locate_in(&ctx.project, engine).await
}

/// [`locate`] for a project.
pub async fn locate_in(
    project: &crate::stack::compose::Project,
    engine: Option<&DockerEngine>,
) -> Option<String> {
    if let Some(u) = ollama_url_in(project) {
        return Some(u);
    }
    let service = crate::stack::compose::models::ollama_service(&project.services)
        .unwrap_or_else(|_| "ollama".into());
    let port = project
        .services
        .get(&service)
        .map_or(crate::stack::compose::models::OLLAMA_PORT, |s| {
            crate::stack::compose::models::ollama_port(s)
        });
    let engine = engine?;
    let rows = engine.list_containers(&project.name).await.ok()?;
    let remote = engine.remote_host();
    rows.iter()
        .filter(|r| r.service == service && r.state == "running")
        .flat_map(|r| r.ports.iter())
        .find(|p| p.container_port == port && p.host_port > 0)
        .and_then(|p| {
            let host = published_host(remote.as_deref(), &p.host_ip)?;
            Some(format!("http://{host}:{}", p.host_port))
        })
}

/// The running Ollama container's own `OLLAMA_NUM_PARALLEL`, from its environment as the
/// engine holds it (the image's `ENV` included): what Ollama serves with now, whatever the
/// compose file says since. `None` when it cannot be told (no engine answer, no running
/// container of the service); `Some(None)` when the container sets none (Ollama's default
/// applies).
pub async fn running_num_parallel(
    project: &crate::stack::compose::Project,
    engine: &DockerEngine,
) -> Option<Option<u32>> {
    let service = crate::stack::compose::models::ollama_service(&project.services).ok()?;
    let rows = engine.list_containers(&project.name).await.ok()?;
    let mut running: Vec<_> = rows
        .iter()
        .filter(|r| r.service == service && r.state == "running")
        .collect();
    running.sort_by_key(|r| r.number);
    let i = engine.inspection(&running.first()?.id).await.ok()?;
    Some(num_parallel_of(&i.env))
}

/// `OLLAMA_NUM_PARALLEL` in a container's `NAME=value` environment (the last one counts,
/// as the engine passes them in order); a value Ollama would not read as a number counts
/// as unset, as its `envconfig.Uint` does.
fn num_parallel_of(env: &[String]) -> Option<u32> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix("OLLAMA_NUM_PARALLEL="))
        .and_then(|v| v.trim().parse().ok())
}

fn table(models: &[LoadedModel]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut out = format!(
        "{:<32} {:>8} {:>6} {:>6} {:>10} {:>10}\n",
        "MODEL", "CONTEXT", "GPU", "CPU", "SIZE", "UNTIL"
    );
    for m in models {
        let gpu = m.gpu_percent.round();
        out.push_str(&format!(
            "{:<32} {:>8} {:>5}% {:>5}% {:>10} {:>10}\n",
            m.name,
            m.context_length.map_or("-".into(), |c| c.to_string()),
            gpu,
            100.0 - gpu,
            crate::model::units::format_bytes(m.size_bytes),
            m.until(now)
        ));
    }
    out
}

fn verb(keep: OllamaKeep) -> &'static str {
    match keep {
        OllamaKeep::Warm => "warm",
        OllamaKeep::Unload => "unload",
        OllamaKeep::Pin => "pin",
    }
}

/// Warms, unloads or pins `model` on the Ollama at `url`, journaled (the console's model
/// actions and `osmen ollama` both come here).
pub async fn act(ctx: &Ctx, url: &str, model: &str, keep: OllamaKeep) -> anyhow::Result<String> {
    let k = match keep {
        OllamaKeep::Warm => None,
        OllamaKeep::Unload => Some(KeepAlive::Unload),
        OllamaKeep::Pin => Some(KeepAlive::Pin),
    };
    OllamaApi::new(url)
        .keep_alive(model, k)
        .await
        .with_context(|| format!("ollama {} {model} at {url}", verb(keep)))?;
    ctx.journal()
        .record("ollama", verb(keep), model)
        .context("the journal")?;
    Ok(match keep {
        OllamaKeep::Warm => format!("{model} loaded with Ollama's keep-alive"),
        OllamaKeep::Unload => format!("{model} unloaded"),
        OllamaKeep::Pin => format!("{model} pinned: loaded until Ollama stops"),
    })
}

pub async fn run(ctx: &Ctx, args: &OllamaArgs) -> anyhow::Result<u8> {
    let engine = DockerEngine::connect().await.ok();
    let Some(url) = locate(ctx, engine.as_ref()).await else {
        bail!(
            "no Ollama to ask: the stack's Ollama service publishes no port osmen can reach \
             and OLLAMA_URL is not set; publish it (`ports: [\"127.0.0.1:11434:11434\"]`) or \
             set OLLAMA_URL"
        );
    };
    let (model, keep) = match &args.action {
        OllamaAction::Ps { json } => {
            let client = crate::http::client(|b| b.timeout(std::time::Duration::from_secs(10)));
            let o = crate::collect::ollama::sample(&client, &url)
                .await
                .map_err(anyhow::Error::msg)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                print!("{}", table(&o.loaded));
            }
            return Ok(OK);
        }
        OllamaAction::Warm { model } => (model, OllamaKeep::Warm),
        OllamaAction::Unload { model } => (model, OllamaKeep::Unload),
        OllamaAction::Pin { model } => (model, OllamaKeep::Pin),
    };
    ctx.refuse_if_read_only(&format!("ollama {}", verb(keep)))?;
    act(ctx, &url, model, keep).await?;
    let client = crate::http::client(|b| b.timeout(std::time::Duration::from_secs(10)));
    let o = crate::collect::ollama::sample(&client, &url)
        .await
        .map_err(anyhow::Error::msg)?;
    let full = crate::stack::ollama::full_name(model);
    let now: Vec<LoadedModel> = o
        .loaded
        .into_iter()
        .filter(|m| crate::stack::ollama::full_name(&m.name) == full)
        .collect();
    match (keep, now.is_empty()) {
        (OllamaKeep::Unload, true) => println!("{model}: unloaded"),
        (OllamaKeep::Unload, false) => {
            print!("{}", table(&now));
            return Ok(NO);
        }
        (_, true) => {
            println!("{model}: Ollama answered but does not list it as loaded");
            return Ok(NO);
        }
        (_, false) => print!("{}", table(&now)),
    }
    Ok(OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn num_parallel_is_read_from_the_environment_as_ollama_reads_it() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (vars, want) in [
            (env(&["PATH=/bin", "OLLAMA_NUM_PARALLEL=3"]), Some(3)),
            (
                env(&["OLLAMA_NUM_PARALLEL=2", "OLLAMA_NUM_PARALLEL=5"]),
                Some(5),
            ),
            (env(&["OLLAMA_NUM_PARALLEL=four"]), None),
            (env(&["OLLAMA_NUM_PARALLELISM=4"]), None),
            (env(&[]), None),
        ] {
            assert_eq!(super::num_parallel_of(&vars), want, "{vars:?}");
        }
    }
}
