//! Compose `models:` at `up`: before a service that uses models starts (its Ollama service
//! is waited on like a dependency), each model is made present on the stack's Ollama
//! (pulled with an image pull's progress, derived with its context size), one model at a
//! time across services, so two users of one model pull it once. A model that cannot be
//! made present fails the service before it is created, with Ollama's words and the fix.

use super::*;
use crate::stack::ollama::{OllamaApi, ensure};

/// The progress sink of the running `up`, and the models already made present by it.
#[derive(Default)]
pub(super) struct ModelsState {
    pub sink: Option<provision::ImageSink>,
    pub present: BTreeSet<String>,
}

impl<E: Engine> Supervisor<E> {
    /// Where osmen reaches the Ollama service: its published port (on the engine's
    /// machine), else, on a local engine, its address on the first network it joined.
    async fn ollama_url(&self, ollama: &str) -> SResult<String> {
        let svc = &self.project.services[ollama];
        let port = crate::stack::compose::models::ollama_port(svc);
        let rows = self.engine.list_containers(&self.project.name).await?;
        let Some(c) = rows
            .iter()
            .find(|c| c.service == ollama && c.state == "running")
        else {
            return Err(SuperviseError::Plan(format!(
                "the {ollama} service, which serves the models, is not running: start it \
                 first (`osmen up {ollama}`)"
            )));
        };
        let remote = self.engine.machine();
        if let Some(p) = c.ports.iter().find(|p| p.container_port == port) {
            let host = match (remote.as_deref(), p.host_ip.as_str()) {
                (Some(r), "" | "0.0.0.0" | "::") => r.to_string(),
                (None, "" | "0.0.0.0" | "::") => "127.0.0.1".to_string(),
                (_, ip) if ip.contains(':') => format!("[{ip}]"),
                (_, ip) => ip.to_string(),
            };
            return Ok(format!("http://{host}:{}", p.host_port));
        }
        if remote.is_none() {
            let i = self.engine.inspection(&c.id).await?;
            if let Some(ip) = i
                .networks
                .iter()
                .filter_map(|n| n.split_whitespace().nth(1))
                .find(|ip| !ip.is_empty())
            {
                return Ok(format!("http://{ip}:{port}"));
            }
        }
        Err(SuperviseError::Plan(format!(
            "osmen cannot reach the {ollama} service's port {port} to serve the models: \
             publish it (`ports: [\"127.0.0.1:{port}:{port}\"]`)"
        )))
    }

    /// Makes every model `name` uses present on the stack's Ollama.
    pub(super) async fn ensure_models(&self, name: &str, svc: &Service) -> SResult<()> {
        let Some(binding) = &svc.models else {
            return Ok(());
        };
        let url = self.ollama_url(&binding.ollama).await?;
        let api = OllamaApi::new(&url);
        let mut st = self.models.lock().await;
        let sink: provision::ImageSink = st.sink.clone().unwrap_or_else(|| Arc::new(|_| {}));
        for u in &binding.uses {
            let Some(def) = self.project.models.get(&u.key) else {
                continue;
            };
            if st.present.contains(&def.served) {
                continue;
            }
            let users: Vec<String> = self
                .project
                .services
                .iter()
                .filter(|(_, s)| {
                    s.models
                        .as_ref()
                        .is_some_and(|b| b.uses.iter().any(|x| x.key == u.key))
                })
                .map(|(n, _)| n.clone())
                .collect();
            match ensure(&api, def, &users, &sink).await {
                Ok(did) => {
                    self.record(name, "model", &did)?;
                    st.present.insert(def.served.clone());
                }
                Err(e) => {
                    return Err(SuperviseError::Plan(format!(
                        "model {:?} ({}) for {name}: {e}; check the name on \
                         https://ollama.com/library (or run `ollama pull {}` in the {} \
                         container to see the same error), then `osmen up` again",
                        u.key, def.model, def.model, binding.ollama
                    )));
                }
            }
        }
        Ok(())
    }
}
