//! Which agent holds which VRAM: an agent does not own a GPU process, it owns the model
//! that answers it. This joins three measured sources: the gateway's metrics (the
//! provider and model that last answered each agent, or the one it tries first), Ollama's
//! loaded models (`/api/ps`: size, size_vram, expiry) and NVML's per-process VRAM, where
//! each Ollama runner process is matched to its model by the model file it was started
//! with (`--model .../sha256-...` against the `FROM` line of `/api/show`).

use crate::model::agent::{AgentGpu, AgentRow, ModelUse};
use crate::model::ollama::{LoadedModel, Ollama, blob_id};
use crate::model::snapshot::GpuStats;

/// Ollama names carry a tag; `llama3.2` means `llama3.2:latest`.
pub fn model_key(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// The model file of an Ollama runner from its command line (`/proc/PID/cmdline`,
/// NUL-separated): the argument after `--model`, or `--model=PATH`.
pub fn runner_blob(cmdline: &str) -> Option<String> {
    let args: Vec<&str> = cmdline
        .split(['\0', ' '])
        .filter(|a| !a.is_empty())
        .collect();
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(p) = a.strip_prefix("--model=") {
            blob_id(p)
        } else if *a == "--model" {
            args.get(i + 1).and_then(|p| blob_id(p))
        } else {
            None
        }
    })
}

/// Marks each GPU process that is an Ollama runner with its model file. `read_cmdline`
/// gives the text of `/proc/<pid>/cmdline` as the collector read it (a fixture in tests).
pub fn mark_runners(gpus: &mut [GpuStats], read_cmdline: impl Fn(u32) -> Option<String>) {
    for g in gpus.iter_mut() {
        for p in g.processes.iter_mut() {
            p.model_blob = read_cmdline(p.pid).and_then(|c| runner_blob(&c));
        }
    }
}

/// The provider and model serving an agent now: the one that answered last, else the
/// one it tries first. Returns (provider, model, how it is known).
fn serving(agent: &AgentRow) -> Option<(String, String, &'static str)> {
    let models = &agent.models;
    if models.is_empty() {
        return None;
    }
    let answered = models
        .iter()
        .filter(|m| m.requests.unwrap_or(0.0) > 0.0)
        .max_by(|a, b| {
            let t = |m: &ModelUse| m.last_used.unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        });
    let (m, how) = match answered {
        Some(m) => (m, "last answer"),
        None => (
            models
                .iter()
                .find(|m| m.role.as_deref() == Some("primary"))?,
            "configured",
        ),
    };
    Some((m.provider.clone(), m.model.clone(), how))
}

/// Joins agents, Ollama's loaded models and the GPUs. Writes `model`, `provider` and a
/// `gpu` object into each agent, and `agents` (and the NVML-measured VRAM, when a runner
/// could be matched) into each of Ollama's loaded models. Idempotent.
pub fn join(agents: &mut [AgentRow], ollama: Option<&mut Ollama>, gpus: &[GpuStats]) {
    let serving: Vec<Option<(String, String, &str)>> = agents.iter().map(serving).collect();
    let mut loaded: Vec<LoadedModel> = Vec::new();
    let ollama_measured = ollama.is_some();
    if let Some(o) = ollama {
        let procs: Vec<_> = gpus.iter().flat_map(|g| g.processes.iter()).collect();
        let ollama_procs: Vec<_> = procs
            .iter()
            .filter(|p| p.model_blob.is_some() || p.service.as_deref() == Some("ollama"))
            .collect();
        let n_loaded = o.loaded.len();
        for m in o.loaded.iter_mut() {
            let key = model_key(&m.name);
            let users: Vec<String> = agents
                .iter()
                .zip(&serving)
                .filter(|(_, s)| {
                    s.as_ref()
                        .is_some_and(|(p, model, _)| p == "ollama" && model_key(model) == key)
                })
                .map(|(a, _)| a.agent.clone())
                .collect();
            m.agents = Some(users);
            // NVML: the runner started with this model's file; with a single model
            // loaded, every Ollama process's VRAM is that model's.
            let by_blob: Vec<_> = match m.blob.as_deref() {
                Some(b) => ollama_procs
                    .iter()
                    .filter(|p| p.model_blob.as_deref() == Some(b))
                    .collect(),
                None => Vec::new(),
            };
            let measured = if !by_blob.is_empty() {
                Some((
                    by_blob.iter().map(|p| p.used_memory_bytes).sum::<u64>(),
                    "runner process",
                ))
            } else if n_loaded == 1 && !ollama_procs.is_empty() {
                Some((
                    ollama_procs
                        .iter()
                        .map(|p| p.used_memory_bytes)
                        .sum::<u64>(),
                    "ollama container (one model loaded)",
                ))
            } else {
                None
            };
            m.vram_measured_bytes = measured.map(|(b, _)| b);
            m.vram_measured_from = measured.map(|(_, how)| how.to_string());
            loaded.push(m.clone());
        }
    }
    let names: Vec<String> = agents.iter().map(|a| a.agent.clone()).collect();
    for (i, a) in agents.iter_mut().enumerate() {
        let Some((provider, model, how)) = &serving[i] else {
            a.gpu = None;
            continue;
        };
        a.provider = Some(provider.clone());
        a.model = Some(model.clone());
        let load = a
            .models
            .iter()
            .find(|m| &m.provider == provider && &m.model == model)
            .and_then(|m| m.load_seconds);
        if provider != "ollama" {
            a.gpu = Some(AgentGpu {
                state: "remote".into(),
                model_from: how.to_string(),
                ..Default::default()
            });
            continue;
        }
        let key = model_key(model);
        let shared: Vec<String> = serving
            .iter()
            .enumerate()
            .filter(|(j, s)| {
                *j != i
                    && s.as_ref()
                        .is_some_and(|(p, m, _)| p == "ollama" && model_key(m) == key)
            })
            .map(|(j, _)| names[j].clone())
            .collect();
        let m = loaded.iter().find(|m| model_key(&m.name) == key);
        let mut g = AgentGpu {
            model_from: how.to_string(),
            shared_with: Some(shared),
            last_load_seconds: Some(load),
            ..Default::default()
        };
        match m {
            None if !ollama_measured => g.state = "unknown".into(),
            None => g.state = "cold".into(),
            Some(m) => {
                let (size, vram) = (m.size_bytes, m.size_vram_bytes);
                g.state = if vram == 0 {
                    "cpu"
                } else if vram < size {
                    "offloaded"
                } else {
                    "loaded"
                }
                .into();
                g.vram_bytes = Some(vram);
                g.size_bytes = Some(size);
                g.gpu_percent = Some(m.gpu_percent);
                g.expires_at = Some(m.expires_at.clone());
                g.vram_measured_bytes = m.vram_measured_bytes;
            }
        }
        a.gpu = Some(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_files_are_found_in_cmdlines() {
        let h = "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";
        let cmd = format!(
            "/usr/bin/ollama\0runner\0--model\0/root/.ollama/models/blobs/sha256-{h}\0--port\039123\0"
        );
        assert_eq!(runner_blob(&cmd), Some(format!("sha256-{h}")));
        assert_eq!(
            runner_blob(&format!("ollama runner --model=/m/sha256-{h}")),
            Some(format!("sha256-{h}"))
        );
        assert_eq!(runner_blob("/usr/bin/ollama\0serve\0"), None);
        assert_eq!(model_key("llama3.2"), "llama3.2:latest");
        assert_eq!(model_key("qwen2.5:7b"), "qwen2.5:7b");
    }
}
