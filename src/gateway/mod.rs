//! The embedded gateway: the HTTP API that executes OsMEN's agents against LLM providers,
//! protected by `X-API-Key`, with its own Prometheus metrics. `osmen gateway` runs it
//! headless; the console embeds the same server.

pub mod accounting;
pub mod addrfile;
pub mod agents;
pub mod connections;
pub mod keyfile;
pub mod llm;
pub mod memory;
pub mod metrics;
pub mod otel;
pub mod redis;
mod routes;
pub mod tools;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::gateway::{GatewayFile, Price};
use crate::model::units::parse_duration;
use agents::Agent;
use llm::{Cache, Kind, Provider, ProviderConfig};
use memory::Memory;
use metrics::Metrics;
use tools::Focus;

/// Reports the container stack's state for daily_brief (wired in by the command layer,
/// which may talk to the engine; the gateway itself does not).
pub type StackProbe = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>>
        + Send
        + Sync,
>;

/// Where the gateway finds its files and what overrides them.
#[derive(Clone, Default)]
pub struct Options {
    /// `config/gateway.toml`, or None for the built-in defaults.
    pub config_file: Option<PathBuf>,
    pub assets_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// `--listen` (beats OSMEN_GATEWAY_LISTEN and the file).
    pub listen: Option<String>,
    pub env: BTreeMap<String, String>,
    pub stack: Option<StackProbe>,
}

pub struct Gateway {
    pub agents: BTreeMap<String, Agent>,
    keys: Vec<Vec<u8>>,
    pub metrics: Metrics,
    pub memory: Memory,
    pub focus: Focus,
    /// The system-status and boot-hardening facts, shared for up to a second.
    pub system_facts: tools::Shared,
    pub hardening_facts: tools::Shared,
    pub cache: Cache,
    /// The shared second-level cache (`REDIS_URL`), for gateway replicas.
    pub redis: Option<redis::Redis>,
    pub prices: BTreeMap<String, Price>,
    pub n8n_url: Option<String>,
    pub http: reqwest::Client,
    pub providers: Vec<Arc<Provider>>,
    pub started: Instant,
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub shutdown_grace: Duration,
    /// Client connections: their timeouts and cap, and what those did.
    pub connections: connections::Connections,
    /// Where a generated key was written, if the gateway made its own.
    pub generated_key_file: Option<PathBuf>,
    pub stack: Option<StackProbe>,
    /// Per-key rate limit (None: off).
    pub limiter: Option<KeyLimiter>,
    /// When an API client last made an authorised request (seconds since the epoch; 0:
    /// never): the console asks before quitting takes the API away from recent clients.
    pub last_client: std::sync::atomic::AtomicU64,
    /// OpenTelemetry export, installed only when an OTLP endpoint is configured.
    pub otel: Option<Arc<otel::Otel>>,
}

fn provider_config(
    name: &str,
    file: Option<&crate::model::gateway::ProviderFile>,
    env: &BTreeMap<String, String>,
) -> Option<ProviderConfig> {
    let e = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
    let (kind, url_env, key_env, model_env, default_url, default_model) = match name {
        "ollama" => (
            Kind::Ollama,
            "OLLAMA_URL",
            "",
            "OLLAMA_MODEL",
            "",
            "llama3.2",
        ),
        "openai" => (
            Kind::OpenAi,
            "OPENAI_BASE_URL",
            "OPENAI_API_KEY",
            "OPENAI_MODEL",
            "https://api.openai.com/v1",
            "gpt-4o-mini",
        ),
        _ => (
            Kind::Anthropic,
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_MODEL",
            "https://api.anthropic.com",
            "claude-3-5-haiku-latest",
        ),
    };
    let base_url = e(url_env)
        .or_else(|| file.and_then(|f| f.base_url.clone()))
        .or_else(|| (!default_url.is_empty()).then(|| default_url.to_string()))?;
    let base_url = match kind {
        Kind::Ollama => crate::model::ollama::url_with_scheme(&base_url),
        _ => base_url,
    };
    let api_key = if key_env.is_empty() { None } else { e(key_env) };
    // Cloud providers without a key are not usable; Ollama needs only its URL.
    if kind != Kind::Ollama && api_key.is_none() {
        return None;
    }
    Some(ProviderConfig {
        kind,
        base_url,
        api_key,
        model: e(model_env)
            .or_else(|| file.and_then(|f| f.model.clone()))
            .unwrap_or_else(|| default_model.to_string()),
        timeout: file
            .and_then(|f| f.timeout.as_deref())
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(Duration::from_secs(60)),
        retries: file.and_then(|f| f.retries).unwrap_or(2),
        concurrency: file.and_then(|f| f.concurrency).unwrap_or(8),
        breaker_failures: file
            .and_then(|f| f.breaker_failures)
            .unwrap_or(llm::BREAKER_FAILURES)
            .max(1),
        breaker_cooldown: file
            .and_then(|f| f.breaker_cooldown.as_deref())
            .and_then(|t| parse_duration(t).ok())
            .unwrap_or(llm::BREAKER_COOLDOWN),
    })
}

/// The shipped prompts, for a binary running without its assets folder (a container).
fn builtin_prompt(file: &str) -> Option<&'static str> {
    Some(match file {
        "daily_brief.md" => include_str!("../../assets/prompts/daily_brief.md"),
        "focus_guardrails.md" => include_str!("../../assets/prompts/focus_guardrails.md"),
        "boot_hardening.md" => include_str!("../../assets/prompts/boot_hardening.md"),
        "content_creator.md" => include_str!("../../assets/prompts/content_creator.md"),
        "knowledge_management.md" => include_str!("../../assets/prompts/knowledge_management.md"),
        _ => return None,
    })
}

impl Gateway {
    /// Notes that an API client was served now.
    pub fn saw_client(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.last_client
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// When an API client was last served (seconds since the epoch), if ever.
    pub fn last_client_at(&self) -> Option<f64> {
        match self.last_client.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => Some(t as f64),
        }
    }
}

pub(crate) fn random_key() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!(
        "osm_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    ))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// A token bucket per API key: `rate` requests per second, `burst` at once. Only keys
/// that passed authorisation get a bucket, so the map is as small as the key list.
pub struct KeyLimiter {
    rate: f64,
    burst: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, Instant)>>,
}

impl KeyLimiter {
    pub fn new(rate: f64, burst: f64) -> KeyLimiter {
        KeyLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Default::default(),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes one request from the key's bucket, or says how long until one is there.
    pub fn take(&self, key_id: &str, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = b.entry(key_id.to_string()).or_insert((self.burst, now));
        let refilled = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.rate)
            .min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
        }
    }
}

/// Why the gateway cannot be built from its settings; each names the file, variable or
/// key, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The settings file's own error (file, line, key), as the model's parser words it.
    #[error("{0}")]
    Settings(String),
    #[error("gateway listen address {0:?} is not IP:PORT (e.g. 127.0.0.1:8080)")]
    Listen(String),
    #[error(
        "refusing to serve on {0} without API keys: set OSMEN_API_KEYS (or gateway.api_keys), \
         or listen on 127.0.0.1"
    )]
    NoKeys(SocketAddr),
    #[error(transparent)]
    KeyFile(#[from] keyfile::KeyFileError),
    #[error("agent {agent}: cannot read its prompt {}: {source}", path.display())]
    Prompt {
        agent: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "OSMEN_RATE_LIMIT_PER_KEY={0:?}: give requests per second per key as a number (0 turns \
         the limit off)"
    )]
    RateEnv(String),
    #[error(
        "gateway.rate_limit_per_key = {0}: give requests per second per key (0 turns the \
         limit off)"
    )]
    RateFile(f64),
    #[error(transparent)]
    Otel(#[from] otel::OtelError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// The API keys from the file and `OSMEN_API_KEYS`; with none on a loopback address, a key
/// generated once under `runtime/` (and its file). None on another address is refused.
fn api_keys(
    file: &GatewayFile,
    env: &BTreeMap<String, String>,
    listen: SocketAddr,
    runtime_dir: &Path,
) -> Result<(Vec<String>, Option<PathBuf>), BuildError> {
    let mut keys: Vec<String> = file.gateway.api_keys.clone();
    if let Some(k) = env.get("OSMEN_API_KEYS") {
        keys.extend(
            k.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from),
        );
    }
    let mut generated_key_file = None;
    if keys.is_empty() {
        if !listen.ip().is_loopback() {
            return Err(BuildError::NoKeys(listen));
        }
        let path = runtime_dir.join("gateway.key");
        let (key, _) = keyfile::load_or_create(&path)?;
        keys.push(key);
        generated_key_file = Some(path);
    }
    Ok((keys, generated_key_file))
}

/// The agents of the file (the shipped ones when it names none), each with its prompt
/// (the assets' file, else the built-in copy) and its chain of providers.
fn agents_of(
    file: &GatewayFile,
    assets_dir: &Path,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Result<BTreeMap<String, Agent>, BuildError> {
    let mut agents = BTreeMap::new();
    let agent_files = if file.agents.is_empty() {
        GatewayFile::parse(include_str!("../../config/gateway.toml"), "built-in")
            .map_err(BuildError::Settings)?
            .agents
    } else {
        file.agents.clone()
    };
    for (name, a) in &agent_files {
        let path = assets_dir.join("prompts").join(&a.prompt);
        let template = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => builtin_prompt(&a.prompt)
                .map(str::to_string)
                .ok_or_else(|| BuildError::Prompt {
                    agent: name.clone(),
                    path: path.clone(),
                    source: e,
                })?,
        };
        let chain: Vec<Arc<Provider>> = if a.provider == "auto" {
            ["ollama", "openai", "anthropic"]
                .iter()
                .filter_map(|p| providers.get(*p).cloned())
                .collect()
        } else {
            providers.get(&a.provider).cloned().into_iter().collect()
        };
        agents.insert(name.clone(), Agent::new(name, a, template, chain));
    }
    Ok(agents)
}

/// The embedding model for the memory: local first, like the agents.
fn embedder(
    file: &GatewayFile,
    env: &BTreeMap<String, String>,
    providers: &BTreeMap<String, Arc<Provider>>,
) -> Option<memory::Embedder> {
    let embed_model = |name: &str, env_key: &str, default: &str| {
        env.get(env_key)
            .cloned()
            .or_else(|| file.providers.get(name).and_then(|p| p.embed_model.clone()))
            .unwrap_or_else(|| default.to_string())
    };
    if let Some(p) = providers.get("ollama") {
        Some(memory::Embedder::new(
            Kind::Ollama,
            p.cfg.base_url.clone(),
            None,
            embed_model("ollama", "OLLAMA_EMBED_MODEL", "nomic-embed-text"),
        ))
    } else {
        providers.get("openai").map(|p| {
            memory::Embedder::new(
                Kind::OpenAi,
                p.cfg.base_url.clone(),
                p.cfg.api_key.clone(),
                embed_model("openai", "OPENAI_EMBED_MODEL", "text-embedding-3-small"),
            )
        })
    }
}

/// The per-key rate limit (`OSMEN_RATE_LIMIT_PER_KEY` beats the file), None when off.
fn limiter(
    file: &GatewayFile,
    env: &BTreeMap<String, String>,
) -> Result<Option<KeyLimiter>, BuildError> {
    let rate = match env
        .get("OSMEN_RATE_LIMIT_PER_KEY")
        .filter(|v| !v.is_empty())
    {
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| *r >= 0.0)
            .ok_or_else(|| BuildError::RateEnv(v.clone()))?,
        None => file.gateway.rate_limit_per_key,
    };
    if !rate.is_finite() || rate < 0.0 {
        return Err(BuildError::RateFile(rate));
    }
    Ok((rate > 0.0)
        .then(|| KeyLimiter::new(rate, file.gateway.rate_limit_burst.unwrap_or(rate * 2.0))))
}

/// A short, stable fingerprint of a key (for counting users); never the key itself.
pub fn key_id(key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Gateway {
    pub fn build(opts: &Options) -> Result<Gateway, BuildError> {
        let file = match &opts.config_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| BuildError::Read {
                    path: p.clone(),
                    source,
                })?;
                GatewayFile::parse(&text, &p.display().to_string())
            }
            None => GatewayFile::parse("", "defaults"),
        }
        .map_err(BuildError::Settings)?;
        let env = &opts.env;
        let listen_s = opts
            .listen
            .clone()
            .or_else(|| env.get("OSMEN_GATEWAY_LISTEN").cloned())
            .unwrap_or_else(|| file.gateway.listen.clone());
        let listen: SocketAddr = listen_s
            .parse()
            .map_err(|_| BuildError::Listen(listen_s.clone()))?;
        let (keys, generated_key_file) = api_keys(&file, env, listen, &opts.runtime_dir)?;
        let mut providers: BTreeMap<String, Arc<Provider>> = BTreeMap::new();
        for name in ["ollama", "openai", "anthropic"] {
            if let Some(cfg) = provider_config(name, file.providers.get(name), env) {
                providers.insert(name.to_string(), Arc::new(Provider::new(cfg)));
            }
        }
        let agents = agents_of(&file, &opts.assets_dir, &providers)?;
        let names: Vec<String> = agents.keys().cloned().collect();
        let n8n_url = env
            .get("N8N_URL")
            .cloned()
            .or_else(|| file.gateway.n8n_url.clone());
        let embedder = embedder(&file, env, &providers);
        let qdrant = env
            .get("QDRANT_URL")
            .cloned()
            .or_else(|| file.gateway.qdrant_url.clone())
            .filter(|u| !u.is_empty())
            .map(memory::Qdrant::new);
        let metrics = Metrics::with_agents(&names);
        for (name, a) in &agents {
            metrics.set_chain(
                name,
                a.chain
                    .iter()
                    .map(|p| {
                        let model = a.model.clone().unwrap_or_else(|| p.cfg.model.clone());
                        (p.name().to_string(), model)
                    })
                    .collect(),
            );
        }
        let providers: Vec<Arc<Provider>> = providers.into_values().collect();
        let otel = otel::Otel::from_env(env, &providers)?.map(Arc::new);
        Ok(Gateway {
            otel,
            metrics,
            agents,
            keys: keys.into_iter().map(String::into_bytes).collect(),
            memory: Memory::open(
                Some(opts.runtime_dir.join("memory.jsonl")),
                file.memory,
                embedder,
                qdrant,
            ),
            focus: Focus::default(),
            system_facts: tools::Shared::new(tools::FACTS_MAX_AGE),
            hardening_facts: tools::Shared::new(tools::FACTS_MAX_AGE),
            cache: Cache::new(file.gateway.cache_entries),
            redis: match env.get("REDIS_URL").filter(|u| !u.is_empty()) {
                Some(u) => Some(redis::Redis::new(u)?),
                None => None,
            },
            prices: file.prices.clone(),
            n8n_url,
            http: crate::http::client(|b| b.timeout(Duration::from_secs(30))),
            providers,
            started: Instant::now(),
            listen,
            body_limit: file.gateway.body_limit_kib * 1024,
            shutdown_grace: file.shutdown_grace(),
            connections: connections::Connections::new(connections::Settings::from_file(&file)),
            generated_key_file,
            stack: opts.stack.clone(),
            last_client: std::sync::atomic::AtomicU64::new(0),
            limiter: limiter(&file, env)?,
        })
    }

    /// The key id of a presented key when it matches one of ours. Every configured key is
    /// compared in full, so the time taken does not reveal which one matched.
    pub fn authorize(&self, presented: &[u8]) -> Option<String> {
        let mut ok = false;
        for k in &self.keys {
            ok |= constant_time_eq(k, presented);
        }
        ok.then(|| key_id(presented))
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.prices.get(model).copied()
    }

    /// An error message fit for a client, `/metrics` and the console: URL passwords,
    /// the providers' API keys and the gateway's own keys masked, one line, bounded.
    pub fn clean_error(&self, msg: &str) -> String {
        let mut secrets: Vec<&str> = self
            .providers
            .iter()
            .filter_map(|p| p.cfg.api_key.as_deref())
            .collect();
        secrets.extend(self.keys.iter().filter_map(|k| std::str::from_utf8(k).ok()));
        crate::model::agent_error::clean_message(msg, &secrets)
    }
}

/// How many connections may wait to be accepted: more than tokio's default (1,024), so
/// that a burst of connects larger than that (the overload bench opens 2,000 at once) is
/// queued rather than refused; the kernel caps it at `net.core.somaxconn`. The bench
/// measured the burst's P99 at about 440 ms with either value on this 2-core machine.
pub const LISTEN_BACKLOG: u32 = 8192;

/// A listening socket for the gateway with [`LISTEN_BACKLOG`].
pub async fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish within the
/// grace period. Raises the descriptor soft limit first; the connections' timeouts and
/// cap are in [`connections`].
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let otel = gw.otel.clone();
    tracing::info!(addr = ?listener.local_addr().ok(), agents = gw.agents.len(), "gateway listening");
    let app = routes::router(gw.clone());
    // A gateway runs for weeks: freed memory goes back to the system once a minute.
    let trim = tokio::spawn(async {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        every.tick().await;
        loop {
            every.tick().await;
            crate::sys::trim_heap();
        }
    });
    let _trim = AbortOnDrop(trim);
    let served = connections::serve(gw, app, listener, shutdown).await;
    tracing::info!(result = ?served.as_ref().map(|_| "ok"), "gateway stopped");
    // What the exporters still hold goes out before the gateway stops. Their shutdown
    // blocks on the export, so off the runtime, and no longer than the export timeout.
    if let Some(o) = otel {
        let limit = o.shutdown_limit();
        let _ =
            tokio::time::timeout(limit, tokio::task::spawn_blocking(move || o.shutdown())).await;
    }
    served
}

/// The router alone, for tests and embedding.
pub fn router(gw: Arc<Gateway>) -> axum::Router {
    routes::router(gw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_in_full() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(key_id(b"k").len(), 12);
    }
}
