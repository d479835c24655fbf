//! The advisor's output: a suggestion names the service, the rule that fired, the
//! evidence, and a concrete action in three forms (apply live, compose patch, command).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleAction {
    /// `vertical`, `horizontal`, `host` (about the machine) or `config` (a service
    /// setting that needs a restart): only the first two are applied live.
    #[serde(rename = "type")]
    pub kind: String,
    /// The proposed new CPU limit (cores).
    pub cpus: Option<f64>,
    /// The proposed new memory limit (bytes).
    pub memory: Option<u64>,
    /// The proposed number of replicas.
    pub replicas: Option<u32>,
    /// The proposed Redis `maxmemory` (bytes), set live with `CONFIG SET` beside the
    /// container's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory: Option<u64>,
    /// What it is now, for the operator: `cpus 0.5, memory 64MiB` or `2 replicas`.
    pub from: String,
}

impl ScaleAction {
    /// Whether osmen can carry it out live (limits, replicas, Redis maxmemory).
    pub fn appliable(&self) -> bool {
        matches!(self.kind.as_str(), "vertical" | "horizontal")
    }

    /// `vertical cpus 2 memory 512MiB`, `horizontal replicas 3`, `vertical maxmemory 4MiB`.
    pub fn summary(&self) -> String {
        use crate::model::units::format_bytes;
        let mut a = self.kind.clone();
        if let Some(c) = self.cpus {
            a.push_str(&format!(" cpus {c}"));
        }
        if let Some(m) = self.memory {
            a.push_str(&format!(" memory {}", format_bytes(m)));
        }
        if let Some(r) = self.replicas {
            a.push_str(&format!(" replicas {r}"));
        }
        if let Some(m) = self.maxmemory {
            a.push_str(&format!(" maxmemory {}", format_bytes(m)));
        }
        a
    }

    /// A service setting the operator changes (it needs a restart): shown, not applied.
    pub fn config(from: String) -> ScaleAction {
        ScaleAction {
            kind: "config".into(),
            ..ScaleAction::host(from)
        }
    }

    /// Advice about the machine itself (a GPU, VRAM): nothing osmen can apply.
    pub fn host(from: String) -> ScaleAction {
        ScaleAction {
            kind: "host".into(),
            cpus: None,
            memory: None,
            replicas: None,
            maxmemory: None,
            from,
        }
    }
}

/// How the compose file writes what a patch changes, so that the patch edits the key the
/// file already uses (a service-level `cpus:` stays there; a `deploy.resources.limits`
/// one stays there) and keeps the rest of a `command:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComposeForm {
    /// The CPU limit the file sets is the service-level `cpus:`.
    pub cpus_service_level: bool,
    /// The memory limit the file sets is the service-level `mem_limit:`.
    pub memory_service_level: bool,
    /// The `command:` as the file writes it: a secret's value written back as
    /// `${VAR}` and `$` as `$$`, so a patch quoting it never shows a secret.
    pub command: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// `rule:service`, stable while the condition lasts (what `--apply` takes).
    pub id: String,
    /// The compose service, or `host`.
    pub service: String,
    /// cpu, memory, latency, queue, agent-errors, gpu-vram, ollama-offload, ollama-queue,
    /// host-cpu, host-memory, redis-evicting, postgres-connections.
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
