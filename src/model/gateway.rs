//! The gateway's settings (`config/gateway.toml`): where it listens, its keys, its LLM
//! providers and prices, and the agents as data. Environment variables named in the
//! file's comments override it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::units::parse_duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub gateway: Server,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderFile>,
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentFile>,
    #[serde(default)]
    pub memory: MemoryLimits,
}

/// The bounds of the gateway's note memory (`[memory]`): the notes are held in memory with
/// their word index and kept in `runtime/memory.jsonl`, so these bound the gateway's RSS
/// and the file. A note's size is the UTF-8 bytes of its text and tags.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimits {
    /// Notes the store keeps; beyond it a new note gets 507.
    pub max_notes: usize,
    /// Bytes of one note; a larger note gets 413.
    pub max_note_bytes: usize,
    /// Bytes of all notes together; a note that would pass it gets 507.
    pub max_total_bytes: usize,
}

/// 10,000 notes: a large personal or team knowledge base; more belongs in Qdrant.
pub const MEMORY_MAX_NOTES: usize = 10_000;
/// 64 KiB: about 10,000 words, a long document; below `body_limit_kib` (256 KiB), so an
/// oversized note is refused by this bound, whose 413 names the key to raise.
pub const MEMORY_MAX_NOTE_BYTES: usize = 64 * 1024;
/// 32 MiB of notes: with the word index the store then holds about 1.5x that in memory
/// (a full store raised the gateway's RSS by 49 MiB), and a start re-reads and indexes
/// it in 3-7 s in a debug build on a shared 2-core machine.
pub const MEMORY_MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_notes: MEMORY_MAX_NOTES,
            max_note_bytes: MEMORY_MAX_NOTE_BYTES,
            max_total_bytes: MEMORY_MAX_TOTAL_BYTES,
        }
    }
}

impl MemoryLimits {
    fn check(&self, file: &str) -> Result<(), String> {
        for (key, v) in [
            ("max_notes", self.max_notes),
            ("max_note_bytes", self.max_note_bytes),
            ("max_total_bytes", self.max_total_bytes),
        ] {
            if v == 0 {
                return Err(format!(
                    "{file}: memory.{key} = 0: give a positive bound (the default is {})",
                    match key {
                        "max_notes" => MEMORY_MAX_NOTES,
                        "max_note_bytes" => MEMORY_MAX_NOTE_BYTES,
                        _ => MEMORY_MAX_TOTAL_BYTES,
                    }
                ));
            }
        }
        if self.max_total_bytes < self.max_note_bytes {
            return Err(format!(
                "{file}: memory.max_total_bytes = {} is below memory.max_note_bytes = {}: no \
                 note that size could be stored; raise memory.max_total_bytes or lower \
                 memory.max_note_bytes",
                self.max_total_bytes, self.max_note_bytes
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: String,
    pub api_keys: Vec<String>,
    pub body_limit_kib: usize,
    pub shutdown_grace: String,
    pub cache_entries: usize,
    pub n8n_url: Option<String>,
    pub qdrant_url: Option<String>,
    /// Requests per second one API key may make (a token bucket; 0 turns it off).
    pub rate_limit_per_key: f64,
    /// Requests one key may make at once above that rate (default: twice the rate).
    pub rate_limit_burst: Option<f64>,
    /// How long a client may take to send a request's head (request line and headers),
    /// from its first byte, or from the accept for a connection's first request.
    pub header_read_timeout: String,
    /// How long a client may take to send a request's whole body, from its head.
    pub body_read_timeout: String,
    /// How long a kept-alive connection may wait, idle, for its next request.
    pub idle_timeout: String,
    /// Client connections held at once (lowered to fit the descriptor limit); a new one
    /// beyond it sheds the connection idle the longest.
    pub max_connections: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".into(),
            api_keys: Vec::new(),
            body_limit_kib: 256,
            shutdown_grace: "10s".into(),
            cache_entries: 256,
            n8n_url: None,
            qdrant_url: None,
            rate_limit_per_key: 0.0,
            rate_limit_burst: None,
            header_read_timeout: "10s".into(),
            body_read_timeout: "30s".into(),
            idle_timeout: "60s".into(),
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// Base URL (`url` for Ollama, `base_url` for the others).
    #[serde(alias = "url")]
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// Embedding model for memory (Ollama `/api/embed`, OpenAI `/v1/embeddings`).
    pub embed_model: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub concurrency: Option<usize>,
    /// Failed calls in a row that open the provider's circuit breaker (default 5).
    pub breaker_failures: Option<u32>,
    /// How long an open circuit refuses calls before a trial call (default "30s").
    pub breaker_cooldown: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Dollars per 1,000 prompt tokens.
    pub input: f64,
    /// Dollars per 1,000 completion tokens.
    pub output: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub description: String,
    /// Prompt template file under `assets/prompts/`.
    pub prompt: String,
    /// Context tool: system_status, boot_hardening, focus_session, memory_search or none.
    #[serde(default = "none")]
    pub tool: String,
    /// `auto` (local first) or a provider name.
    #[serde(default = "auto")]
    pub provider: String,
    pub model: Option<String>,
    #[serde(default = "four")]
    pub concurrency: usize,
    /// Requests that may wait for a slot at once: a memory bound only. Whether a request
    /// waits is decided by its deadline (the provider's timeout): it waits while it can
    /// still be served in time, else it gets 429 with the expected wait as Retry-After.
    #[serde(default = "queue_bound")]
    pub queue: usize,
    /// How long an identical request is answered from the response cache (`10m`, `1h`);
    /// unset: never (the default: an answer built from live facts must be asked again).
    pub cache_ttl: Option<String>,
}

/// The shortest connection timeout the settings accept.
pub const MIN_CONNECTION_TIMEOUT: Duration = Duration::from_millis(100);

/// The default memory bound of an agent's queue.
pub const QUEUE_BOUND: usize = 4096;

fn none() -> String {
    "none".into()
}
fn auto() -> String {
    "auto".into()
}
fn four() -> usize {
    4
}
fn queue_bound() -> usize {
    QUEUE_BOUND
}

/// The dotted key (`gateway.max_connections`) of the `key = value` line holding byte
/// `offset` of a TOML text, for errors about a value; None elsewhere.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = text[..start].lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')?
            .strip_suffix(']')
            .map(|t| t.trim().to_string())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

impl GatewayFile {
    pub fn parse(text: &str, file: &str) -> Result<GatewayFile, String> {
        let g: GatewayFile = toml::from_str(text).map_err(|e| {
            let Some(s) = e.span() else {
                return format!("{file}: {}", e.message());
            };
            // toml names the expected type, not the key: name it, and quote the line.
            let line = text[..s.start].matches('\n').count() + 1;
            let quoted = text.lines().nth(line - 1).unwrap_or("").trim();
            let key = key_at(text, s.start)
                .map(|k| format!("{k}: "))
                .unwrap_or_default();
            format!("{file}:{line}: {key}{} (in `{quoted}`)", e.message())
        })?;
        parse_duration(&g.gateway.shutdown_grace)
            .map_err(|m| format!("{file}: gateway.shutdown_grace: {m}"))?;
        for (key, value) in [
            ("header_read_timeout", &g.gateway.header_read_timeout),
            ("body_read_timeout", &g.gateway.body_read_timeout),
            ("idle_timeout", &g.gateway.idle_timeout),
        ] {
            let d = parse_duration(value).map_err(|m| format!("{file}: gateway.{key}: {m}"))?;
            if d < MIN_CONNECTION_TIMEOUT {
                return Err(format!(
                    "{file}: gateway.{key} = {value:?}: give at least 100ms (a timeout cannot \
                     be turned off: it is what keeps slow clients from holding connections)"
                ));
            }
        }
        if g.gateway.max_connections == 0 {
            return Err(format!(
                "{file}: gateway.max_connections = 0: give the most client connections to \
                 hold at once (the default is 4096)"
            ));
        }
        g.memory.check(file)?;
        for (name, p) in &g.providers {
            if !["ollama", "openai", "anthropic"].contains(&name.as_str()) {
                return Err(format!(
                    "{file}: providers.{name}: unknown provider; use ollama, openai or anthropic"
                ));
            }
            if let Some(t) = &p.timeout {
                parse_duration(t).map_err(|m| format!("{file}: providers.{name}.timeout: {m}"))?;
            }
        }
        for (name, a) in &g.agents {
            let tools = [
                "system_status",
                "boot_hardening",
                "focus_session",
                "memory_search",
                "none",
            ];
            if !tools.contains(&a.tool.as_str()) {
                return Err(format!(
                    "{file}: agents.{name}.tool: unknown tool {:?}; use {}",
                    a.tool,
                    tools.join(", ")
                ));
            }
            if let Some(t) = &a.cache_ttl {
                parse_duration(t).map_err(|m| format!("{file}: agents.{name}.cache_ttl: {m}"))?;
            }
            if !["auto", "ollama", "openai", "anthropic"].contains(&a.provider.as_str()) {
                return Err(format!(
                    "{file}: agents.{name}.provider: unknown provider {:?}; use auto, ollama, \
                     openai or anthropic",
                    a.provider
                ));
            }
        }
        Ok(g)
    }

    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.gateway.shutdown_grace).unwrap_or(Duration::from_secs(10))
    }

    /// `gateway.header_read_timeout` (validated by [`GatewayFile::parse`]).
    pub fn header_read_timeout(&self) -> Duration {
        parse_duration(&self.gateway.header_read_timeout).unwrap_or(Duration::from_secs(10))
    }

    /// `gateway.body_read_timeout` (validated by [`GatewayFile::parse`]).
    pub fn body_read_timeout(&self) -> Duration {
        parse_duration(&self.gateway.body_read_timeout).unwrap_or(Duration::from_secs(30))
    }

    /// `gateway.idle_timeout` (validated by [`GatewayFile::parse`]).
    pub fn idle_timeout(&self) -> Duration {
        parse_duration(&self.gateway.idle_timeout).unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let e = GatewayFile::parse(
            "[agents.x]\ndescription='d'\nprompt='p'\ntool='magic'\n",
            "g.toml",
        )
        .unwrap_err();
        assert!(e.contains("agents.x.tool") && e.contains("magic"), "{e}");
        let e = GatewayFile::parse("[gateway]\nlisten_on = 'x'\n", "g.toml").unwrap_err();
        assert!(e.starts_with("g.toml:2") && e.contains("listen_on"), "{e}");
        let e = GatewayFile::parse("[providers.gemini]\n", "g.toml").unwrap_err();
        assert!(e.contains("providers.gemini"), "{e}");
    }

    #[test]
    fn connection_limits_have_defaults_and_bad_values_name_their_key() {
        let g = GatewayFile::parse("", "g.toml").unwrap();
        assert_eq!(g.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(g.body_read_timeout(), Duration::from_secs(30));
        assert_eq!(g.idle_timeout(), Duration::from_secs(60));
        assert_eq!(g.gateway.max_connections, 4096);
        let g = GatewayFile::parse("[gateway]\nidle_timeout = '1m30s'\n", "g.toml").unwrap();
        assert_eq!(g.idle_timeout(), Duration::from_secs(90));
        for (text, key) in [
            (
                "header_read_timeout = 'soon'",
                "gateway.header_read_timeout",
            ),
            ("body_read_timeout = '0'", "gateway.body_read_timeout"),
            ("idle_timeout = '10ms'", "gateway.idle_timeout"),
            ("max_connections = 0", "gateway.max_connections"),
        ] {
            let e = GatewayFile::parse(&format!("[gateway]\n{text}\n"), "g.toml").unwrap_err();
            assert!(e.starts_with("g.toml") && e.contains(key), "{text}: {e}");
        }
        let e = GatewayFile::parse("[gateway]\nmax_connections = -1\n", "g.toml").unwrap_err();
        assert!(e.starts_with("g.toml:2: gateway.max_connections: "), "{e}");
    }

    #[test]
    fn memory_limits_default_and_are_checked() {
        let g = GatewayFile::parse("", "g.toml").unwrap();
        assert_eq!(g.memory, MemoryLimits::default());
        let g = GatewayFile::parse("[memory]\nmax_notes = 3\n", "g.toml").unwrap();
        assert_eq!((g.memory.max_notes, g.memory.max_note_bytes), (3, 65536));
        let e = GatewayFile::parse("[memory]\nmax_notes = 0\n", "g.toml").unwrap_err();
        assert!(e.contains("memory.max_notes = 0"), "{e}");
        let e = GatewayFile::parse(
            "[memory]\nmax_note_bytes = 2048\nmax_total_bytes = 1024\n",
            "g.toml",
        )
        .unwrap_err();
        assert!(
            e.contains("memory.max_total_bytes = 1024") && e.contains("memory.max_note_bytes"),
            "{e}"
        );
        let e = GatewayFile::parse("[memory]\nmax_notes = -1\n", "g.toml").unwrap_err();
        assert!(e.starts_with("g.toml:2") && e.contains("max_notes"), "{e}");
        let e = GatewayFile::parse("[memory]\nmax_bytes = 1\n", "g.toml").unwrap_err();
        assert!(e.contains("max_bytes"), "{e}");
    }
}
