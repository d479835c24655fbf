//! Compose `models:` at `up`: before a service that uses models starts (its Ollama service
//! is waited on like a dependency), each model is made present on the stack's Ollama
//! (pulled with an image pull's progress, derived with its context size), one model at a
//! time across services, so two users of one model pull it once. A model that cannot be
//! made present fails the service before it is created, with Ollama's words and the fix.

use super::*;
use crate::model::progress::ImageEvent;
use crate::stack::compose::models::ModelDef;
use crate::stack::ollama::{OllamaApi, OllamaError, ensure};

/// How long `up` waits for a just-started Ollama to answer before its first model request.
const OLLAMA_ANSWER: Duration = Duration::from_secs(60);

/// Why a model could not be made present, and the fix. Only Ollama's own answer (a name it
/// does not know) sends the operator to the library; an Ollama that never answered is
/// the service's problem, not the name's.
fn model_failure(key: &str, def: &ModelDef, user: &str, ollama: &str, e: &OllamaError) -> String {
    let head = format!("model {key:?} ({}) for {user}: {e}", def.model);
    match e {
        OllamaError::Said { .. } => format!(
            "{head}; check the name on https://ollama.com/library (or run `ollama pull {}` \
             in the {ollama} container to see the same error), then `osmen up` again",
            def.model
        ),
        OllamaError::NoAnswer { .. } => format!(
            "{head}; the {ollama} service is running but does not listen there: see why with \
             `osmen logs {ollama}`, then `osmen up` again"
        ),
        OllamaError::Unreachable { .. } | OllamaError::Protocol { .. } => {
            format!("{head}; see `osmen logs {ollama}`, then `osmen up` again")
        }
    }
}

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
        let mut answered = false;
        for u in &binding.uses {
            let Some(def) = self.project.models.get(&u.key) else {
                continue;
            };
            if st.present.contains(&def.served) {
                continue;
            }
            if !answered {
                let waiting = || {
                    sink(ImageEvent::Note(format!(
                        "waiting for {} to answer at {url} (up to {} s)",
                        binding.ollama,
                        OLLAMA_ANSWER.as_secs()
                    )))
                };
                if let Err(e) = api.wait_answering(OLLAMA_ANSWER, waiting).await {
                    return Err(model_failed(name, &u.key, def, &binding.ollama, &e, &sink));
                }
                answered = true;
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
                    return Err(model_failed(name, &u.key, def, &binding.ollama, &e, &sink));
                }
            }
        }
        Ok(())
    }
}

/// The error that fails `user`, also handed to the progress sink as a failed pull so
/// that the console shows it on the service's row, as an image's.
fn model_failed(
    user: &str,
    key: &str,
    def: &ModelDef,
    ollama: &str,
    e: &OllamaError,
    sink: &provision::ImageSink,
) -> SuperviseError {
    let message = model_failure(key, def, user, ollama, e);
    sink(ImageEvent::PullFailed {
        service: user.to_string(),
        image: format!("model {}", def.model),
        message: message.clone(),
    });
    SuperviseError::Plan(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ollamas_own_refusal_sends_the_operator_to_the_library() {
        let def = ModelDef {
            model: "smollm".into(),
            context_size: None,
            served: "smollm".into(),
        };
        let said = OllamaError::Said {
            message: "pull model manifest: file does not exist".into(),
        };
        let m = model_failure("llm", &def, "app", "ollama", &said);
        assert!(
            m.contains("ollama.com/library") && m.contains("`ollama pull smollm`"),
            "{m}"
        );
        let none = OllamaError::NoAnswer {
            url: "http://192.168.96.2:11434".into(),
            waited: Duration::from_secs(60),
            detail: "connection refused".into(),
        };
        let m = model_failure("llm", &def, "app", "ollama", &none);
        assert!(
            m.starts_with(
                "model \"llm\" (smollm) for app: Ollama did not answer at \
                 http://192.168.96.2:11434 in 60 s of waiting (last try: connection refused)"
            ) && m.contains("`osmen logs ollama`"),
            "{m}"
        );
        assert!(
            !m.contains("ollama.com/library") && !m.contains("check the name"),
            "{m}"
        );
    }

    /// M2: the console learns of a model that failed as of an image that failed, by
    /// the service that needed it.
    #[test]
    fn a_failed_model_reaches_the_sink_as_its_users_failed_pull() {
        let def = ModelDef {
            model: "no-such-model:7b".into(),
            context_size: None,
            served: "no-such-model:7b".into(),
        };
        let seen: Arc<std::sync::Mutex<Vec<ImageEvent>>> = Arc::default();
        let sink: provision::ImageSink = {
            let seen = seen.clone();
            Arc::new(move |e| seen.lock().unwrap().push(e))
        };
        let e = OllamaError::Said {
            message: "pull model manifest: file does not exist".into(),
        };
        let err = model_failed("embedder", "embed", &def, "ollama", &e, &sink);
        let seen = seen.lock().unwrap();
        let [
            ImageEvent::PullFailed {
                service,
                image,
                message,
            },
        ] = seen.as_slice()
        else {
            panic!("{seen:?}");
        };
        assert_eq!(
            (service.as_str(), image.as_str()),
            ("embedder", "model no-such-model:7b")
        );
        assert!(message.contains("file does not exist"), "{message}");
        assert!(err.to_string().contains(message.as_str()), "{err}");
    }
}
