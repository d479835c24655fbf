//! The advisor's output: a suggestion names the service, the rule that fired, the
//! evidence, and a concrete action in three forms (apply live, compose patch, command).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleAction {
    /// `vertical`, `horizontal` or `host`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The proposed new CPU limit (cores).
    pub cpus: Option<f64>,
    /// The proposed new memory limit (bytes).
    pub memory: Option<u64>,
    /// The proposed number of replicas.
    pub replicas: Option<u32>,
    /// What it is now, for the operator: `cpus 0.5, memory 64MiB` or `2 replicas`.
    pub from: String,
}

impl ScaleAction {
    /// Advice about the machine itself (a GPU, VRAM): nothing osmen can apply.
    pub fn host(from: String) -> ScaleAction {
        ScaleAction {
            kind: "host".into(),
            cpus: None,
            memory: None,
            replicas: None,
            from,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// `rule:service`, stable while the condition lasts (what `--apply` takes).
    pub id: String,
    /// The compose service, or `host`.
    pub service: String,
    /// cpu, memory, latency, queue, gpu-vram, ollama-offload, host-cpu, host-memory.
    pub rule: String,
    /// `warning` or `critical`.
    pub severity: String,
    pub evidence: String,
    /// Seconds since the epoch when the condition started to hold.
    pub since: f64,
    pub action: ScaleAction,
    /// The equivalent command to copy (docker update, docker compose --scale...).
    pub command: String,
    /// The change to keep in docker-compose.yml.
    pub compose_patch: String,
}
