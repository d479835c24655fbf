//! `osmen ollama`: the stack's Ollama from the command line, as the GPU view shows it. `ps`
//! lists the loaded models with their context length, GPU and CPU share, size and the time
//! until Ollama unloads them; `warm`, `unload` and `pin` load a model with Ollama's
//! configured keep-alive, unload it, or keep it loaded for good (refused under
//! `--read-only`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use super::{Ctx, NO, OK};
use crate::cli::{OllamaAction, OllamaArgs};
use crate::model::ollama::LoadedModel;
use crate::stack::engine::{DockerEngine, Engine};
use crate::stack::ollama::{KeepAlive, OllamaApi};

/// Where the stack's Ollama answers: `OLLAMA_URL`, else the compose file's published port
/// of the Ollama service, else the running container's published port.
pub async fn locate(ctx: &Ctx, engine: Option<&DockerEngine>) -> Option<String> {
    if let Some(u) = super::status::ollama_url(ctx) {
        return Some(u);
    }
    let service = crate::stack::compose::models::ollama_service(&ctx.project.services)
        .unwrap_or_else(|_| "ollama".into());
    let port = ctx
        .project
        .services
        .get(&service)
        .map_or(crate::stack::compose::models::OLLAMA_PORT, |s| {
            crate::stack::compose::models::ollama_port(s)
        });
    let engine = engine?;
    let rows = engine.list_containers(&ctx.project.name).await.ok()?;
    let remote = engine.remote_host();
    rows.iter()
        .filter(|r| r.service == service && r.state == "running")
        .flat_map(|r| r.ports.iter())
        .find(|p| p.container_port == port && p.host_port > 0)
        .and_then(|p| {
            let host = crate::model::container::published_host(remote.as_deref(), &p.host_ip)?;
            Some(format!("http://{host}:{}", p.host_port))
        })
}

/// Seconds until an RFC 3339 time, from now.
fn seconds_until(at: &str) -> Option<f64> {
    let t = crate::model::units::parse_rfc3339_utc(at)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Some(t - now)
}

/// `4m58s`, `forever` (a pinned model: Ollama reports an expiry centuries away), or
/// `unloading`.
pub fn until_text(m: &LoadedModel) -> String {
    match m.expires_at.as_deref().and_then(seconds_until) {
        None => "-".into(),
        Some(s) if s > 100.0 * 365.0 * 86_400.0 => "forever".into(),
        Some(s) if s <= 0.0 => "unloading".into(),
        Some(s) => crate::model::units::format_duration(std::time::Duration::from_secs(s as u64)),
    }
}

fn table(models: &[LoadedModel]) -> String {
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
            until_text(m)
        ));
    }
    out
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
    let (model, keep, verb) = match &args.action {
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
        OllamaAction::Warm { model } => (model, None, "warm"),
        OllamaAction::Unload { model } => (model, Some(KeepAlive::Unload), "unload"),
        OllamaAction::Pin { model } => (model, Some(KeepAlive::Pin), "pin"),
    };
    ctx.refuse_if_read_only(&format!("ollama {verb}"))?;
    let api = OllamaApi::new(&url);
    api.keep_alive(model, keep)
        .await
        .with_context(|| format!("ollama {verb} {model} at {url}"))?;
    ctx.journal()
        .record("ollama", verb, model)
        .context("the journal")?;
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
        (Some(KeepAlive::Unload), true) => println!("{model}: unloaded"),
        (Some(KeepAlive::Unload), false) => {
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
