//! What the Ollama collector measured: the server's version, the models installed, and
//! the models loaded now with their share of VRAM (a model with `size_vram < size` runs
//! partly on the CPU). The hub's agent join adds which agents each loaded model answers
//! and the VRAM NVML measured for it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ollama {
    /// The base URL it was asked at.
    pub url: String,
    /// `/api/version`; None when the answer had none.
    pub version: Option<String>,
    /// Names of the installed models (`/api/tags`).
    pub installed: Vec<String>,
    /// The models loaded now (`/api/ps`).
    pub loaded: Vec<LoadedModel>,
}

/// One loaded model, from `/api/ps` (and `/api/show` for its model file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadedModel {
    pub name: String,
    pub size_bytes: u64,
    pub size_vram_bytes: u64,
    /// The share of the model in VRAM, 0 to 100.
    pub gpu_percent: f64,
    /// Some of it runs on the CPU (wholly on the CPU counts too).
    pub partly_on_cpu: bool,
    /// When Ollama unloads it (its keep-alive), RFC 3339.
    pub expires_at: Option<String>,
    /// The context length it was loaded with (`/api/ps`'s `context_length`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    pub digest: Option<String>,
    /// The model file it was loaded from (`sha256-...`), which names its runner process.
    pub blob: Option<String>,
    /// `Q4_K_M`, `Q8_0`, `F16`: the advice never proposes the one it has.
    pub quantization: Option<String>,
    /// The agents it answers now (written by the hub's join).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    /// VRAM NVML measured for it, and how the processes were matched to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_measured_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_measured_from: Option<String>,
}
