//! What the Ollama collector measured: the server's version, the models installed, and
//! the models loaded now with their share of VRAM (a model with `size_vram < size` runs
//! partly on the CPU). The hub's agent join adds which agents each loaded model answers
//! and the VRAM NVML measured for it. Also the names of Ollama's model files
//! (`sha256-...`), as `/api/show` writes them for the collector and a runner's command line
//! shows them to the hub.

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
    /// Requests the gateway has in flight to this Ollama against how many it serves at
    /// once (None until both are known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<OllamaQueue>,
}

/// Queue pressure on Ollama: the gateway's requests in flight to it against the
/// container's `OLLAMA_NUM_PARALLEL` (or Ollama's default when it is unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OllamaQueue {
    /// Requests the gateway has sent to Ollama that have not answered yet.
    pub in_flight: u64,
    /// Requests Ollama serves at once per model.
    pub parallel: u32,
    /// Where `parallel` comes from: `OLLAMA_NUM_PARALLEL` or `Ollama's default`.
    pub parallel_from: String,
    /// Since when (seconds since the epoch) more requests are in flight than Ollama
    /// serves at once: they wait in Ollama's queue. None while they do not.
    pub waiting_since: Option<f64>,
}

/// NVML's and Ollama's VRAM for one model differ by more than this share (of Ollama's).
pub const VRAM_DISAGREEMENT: f64 = 0.10;

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

/// `sha256-<hex>` from a model file path or a digest (`sha256:<hex>` or `sha256-<hex>`).
impl LoadedModel {
    /// The time until Ollama unloads it, from `now` (seconds since the epoch): `4m58s`,
    /// `forever` (pinned: Ollama reports an expiry centuries away), `unloading`, or `-`.
    pub fn until(&self, now: f64) -> String {
        let at = self
            .expires_at
            .as_deref()
            .and_then(crate::model::units::parse_rfc3339_utc);
        match at.map(|t| t - now) {
            None => "-".into(),
            Some(s) if s > 100.0 * 365.0 * 86_400.0 => "forever".into(),
            Some(s) if s <= 0.0 => "unloading".into(),
            Some(s) => {
                crate::model::units::format_duration(std::time::Duration::from_secs(s as u64))
            }
        }
    }

    /// (NVML's figure, Ollama's `size_vram`) when they differ by more than
    /// [`VRAM_DISAGREEMENT`] of Ollama's: the runner holds more (or less) than Ollama says.
    pub fn vram_disagreement(&self) -> Option<(u64, u64)> {
        let measured = self.vram_measured_bytes?;
        let said = self.size_vram_bytes;
        let diff = measured.abs_diff(said) as f64;
        (said > 0 && diff > VRAM_DISAGREEMENT * said as f64).then_some((measured, said))
    }
}

/// An Ollama address as a URL: `host:port` alone (as Ollama's own `OLLAMA_HOST` takes
/// it) is plain HTTP; a URL with its scheme is kept.
pub fn url_with_scheme(u: &str) -> String {
    let u = u.trim();
    if u.contains("://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

pub fn blob_id(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?.trim();
    let hex = file
        .strip_prefix("sha256-")
        .or_else(|| file.strip_prefix("sha256:"))?;
    (hex.len() >= 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("sha256-{}", hex.to_ascii_lowercase()))
}

/// The model file named by the `FROM` line of an `/api/show` modelfile.
pub fn modelfile_blob(modelfile: &str) -> Option<String> {
    modelfile.lines().find_map(|l| {
        l.trim()
            .strip_prefix("FROM ")
            .and_then(|p| blob_id(p.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_until_unload_reads_ollamas_expiry() {
        let m = |e: &str| LoadedModel {
            expires_at: Some(e.into()),
            ..Default::default()
        };
        let now = crate::model::units::parse_rfc3339_utc("2026-12-01T20:00:00Z").unwrap();
        assert_eq!(m("2026-12-01T20:04:58Z").until(now), "4m58s");
        assert_eq!(m("2318-09-22T19:16:23Z").until(now), "forever");
        assert_eq!(m("2026-12-01T19:59:00Z").until(now), "unloading");
        assert_eq!(LoadedModel::default().until(now), "-");
    }

    #[test]
    fn vram_disagreement_over_a_tenth_is_flagged_with_both_figures() {
        let mib = 1 << 20;
        let m = |measured: Option<u64>, said: u64| LoadedModel {
            size_vram_bytes: said,
            vram_measured_bytes: measured,
            ..Default::default()
        };
        // (measured, said, flagged)
        for (measured, said, flagged) in [
            (Some(4000 * mib), 4000 * mib, false),
            (Some(4400 * mib), 4000 * mib, false), // exactly 10%: not over
            (Some(4401 * mib), 4000 * mib, true),
            (Some(3500 * mib), 4000 * mib, true),
            (None, 4000 * mib, false),
            (Some(100 * mib), 0, false), // wholly on the CPU: nothing to compare
        ] {
            let got = m(measured, said).vram_disagreement();
            assert_eq!(got.is_some(), flagged, "{measured:?} vs {said}");
            if flagged {
                assert_eq!(got, Some((measured.unwrap(), said)));
            }
        }
    }

    #[test]
    fn model_files_are_found_in_modelfiles_and_digests() {
        let h = "6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa";
        let mf = format!(
            "# Modelfile generated by \"ollama show\"\nFROM /root/.ollama/models/blobs/sha256-{h}\nTEMPLATE x\n"
        );
        assert_eq!(modelfile_blob(&mf), Some(format!("sha256-{h}")));
        assert_eq!(modelfile_blob("FROM llama3.2\n"), None);
        assert_eq!(blob_id(&format!("sha256:{h}")), Some(format!("sha256-{h}")));
        assert_eq!(blob_id("sha256-abc"), None, "too short to name a file");
    }
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn an_address_without_scheme_is_plain_http() {
        for (given, want) in [
            ("127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("http://ollama:11434", "http://ollama:11434"),
            ("https://llm.example/ollama", "https://llm.example/ollama"),
            (" gpu-box:11434 ", "http://gpu-box:11434"),
        ] {
            assert_eq!(super::url_with_scheme(given), want);
        }
    }
}
