//! `osmen gateway`: the agents API, headless. SIGINT or SIGTERM stop it gracefully.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use super::OK;
use crate::cli::{GatewayArgs, Global};
use crate::gateway::{self, Gateway, Options};

/// Files beside the compose file: config/gateway.toml, assets/, runtime/.
pub fn options(global: &Global, args: &GatewayArgs) -> Options {
    let base = global
        .compose_file()
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let config_file = args.gateway_config.clone().or_else(|| {
        let p = base.join("config/gateway.toml");
        p.exists().then_some(p)
    });
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let runtime_dir = super::runtime_dir_in(&base);
    Options {
        config_file,
        assets_dir: base.join("assets"),
        runtime_dir,
        listen: args.listen.clone(),
        env,
        stack: stack_probe(global),
    }
}

/// The stack's containers as daily_brief sees them: service -> status, when the compose
/// file loads; an engine that does not answer is reported as such.
fn stack_probe(global: &Global) -> Option<gateway::StackProbe> {
    let ctx = super::Ctx::load(global).ok()?;
    let project = ctx.project.name.clone();
    Some(Arc::new(move || {
        let project = project.clone();
        Box::pin(async move {
            use crate::stack::engine::{DockerEngine, Engine};
            let engine = match DockerEngine::connect().await {
                Ok(e) => e,
                Err(e) => return serde_json::json!({"engine": format!("unreachable: {e}")}),
            };
            match engine.list_containers(&project).await {
                Ok(rows) => serde_json::json!({
                    "project": project,
                    "containers": rows.iter().map(|r| serde_json::json!({
                        "service": r.service, "name": r.name, "status": r.status_word(),
                        "restarts": r.restart_count,
                    })).collect::<Vec<_>>(),
                }),
                // DOCKER_HOST may carry credentials (tcp://user:pass@host).
                Err(e) => serde_json::json!({
                    "engine": crate::model::secret::mask_url_credentials(&e.to_string())
                }),
            }
        })
    }))
}

pub async fn run(global: &Global, args: &GatewayArgs) -> anyhow::Result<u8> {
    let gw = Gateway::build(&options(global, args)).map_err(|e| anyhow::anyhow!(e))?;
    let listener = crate::gateway::listen(gw.listen)
        .await
        .with_context(|| format!("cannot listen on {}", gw.listen))?;
    eprintln!(
        "gateway listening on http://{} ({} agents; providers: {})",
        listener.local_addr()?,
        gw.agents.len(),
        gw.providers
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!("{}", gateway::connections::prepare(&gw));
    if let Some(o) = &gw.otel {
        eprintln!("{}", o.describe());
    }
    if let Some(p) = &gw.generated_key_file {
        eprintln!(
            "no API key was configured: generated one in {} (mode 0600); send it as X-API-Key",
            p.display()
        );
    }
    if let Some(w) = gw.memory.usage().warning {
        eprintln!("memory: {w}");
    }
    let mut term = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    gateway::serve(Arc::new(gw), listener, shutdown).await?;
    eprintln!("gateway stopped");
    Ok(OK)
}
