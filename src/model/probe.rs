//! Service probes: which kind of service a compose service is (from its image name or an
//! `x-osmen-probe` key), how often and on which container port it is asked, and what it
//! measured (`Figures`, one typed struct per kind).

pub mod show;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::figures;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Postgres,
    Redis,
    Qdrant,
    N8n,
    Langflow,
    Ollama,
}

pub const KINDS: [ProbeKind; 6] = [
    ProbeKind::Postgres,
    ProbeKind::Redis,
    ProbeKind::Qdrant,
    ProbeKind::N8n,
    ProbeKind::Langflow,
    ProbeKind::Ollama,
];

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
            ProbeKind::Qdrant => "qdrant",
            ProbeKind::N8n => "n8n",
            ProbeKind::Langflow => "langflow",
            ProbeKind::Ollama => "ollama",
        }
    }

    pub fn parse(s: &str) -> Option<ProbeKind> {
        let s = s.trim().to_ascii_lowercase();
        let s = if s == "postgresql" { "postgres" } else { &s };
        KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind an image is, by its repository name without registry or tag:
    /// `postgres:15-alpine`, `docker.io/library/redis:7`, `qdrant/qdrant`,
    /// `n8nio/n8n`, `langflowai/langflow`, `ollama/ollama`, `bitnami/postgresql`.
    pub fn from_image(image: &str) -> Option<ProbeKind> {
        let no_digest = image.split('@').next().unwrap_or(image);
        let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
        let repo = last.split(':').next().unwrap_or(last).to_ascii_lowercase();
        // `osmen-redis`, `redis-stack`, `pgvector`-style names: the kind as a word of it.
        let words: Vec<&str> = repo.split(['-', '_', '.']).collect();
        KINDS.into_iter().find(|k| {
            let name = k.as_str();
            repo == name
                || words.contains(&name)
                || (*k == ProbeKind::Postgres && words.contains(&"postgresql"))
        })
    }

    /// The port the service listens on inside its container.
    pub fn default_port(self) -> u16 {
        match self {
            ProbeKind::Postgres => 5432,
            ProbeKind::Redis => 6379,
            ProbeKind::Qdrant => 6333,
            ProbeKind::N8n => 5678,
            ProbeKind::Langflow => 7860,
            ProbeKind::Ollama => 11434,
        }
    }

    /// How often it is asked: databases often (their rates move), UIs rarely.
    pub fn default_period(self) -> Duration {
        Duration::from_secs(match self {
            ProbeKind::Redis => 2,
            ProbeKind::Postgres | ProbeKind::Qdrant => 5,
            ProbeKind::Ollama => 10,
            ProbeKind::N8n | ProbeKind::Langflow => 15,
        })
    }
}

/// `x-osmen-probe` of a service: a kind (`x-osmen-probe: redis`), `none` (never probe), or
/// a mapping `{kind, port, every}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSpec {
    /// None: probing is turned off for this service.
    pub kind: Option<ProbeKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_secs")]
    pub every: Option<Duration>,
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

/// One sample of one probed service, as the probe sends it to the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub service: String,
    pub kind: ProbeKind,
    /// `host:port` it was asked at (None: it could not be reached at all).
    pub address: Option<String>,
    pub every_s: f64,
    /// The figures it measured, or why it could not (credentials already scrubbed).
    pub result: Result<Figures, String>,
}

/// What a probe measured, by kind. Untagged: the JSON is the kind's own figures (the kind
/// is written beside them, in `ProbeState::kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figures {
    Postgres(figures::Postgres),
    Redis(figures::Redis),
    Qdrant(figures::Qdrant),
    N8n(figures::N8n),
    Langflow(figures::Langflow),
    Ollama(crate::model::ollama::Ollama),
}

impl Figures {
    pub fn kind(&self) -> ProbeKind {
        match self {
            Figures::Postgres(_) => ProbeKind::Postgres,
            Figures::Redis(_) => ProbeKind::Redis,
            Figures::Qdrant(_) => ProbeKind::Qdrant,
            Figures::N8n(_) => ProbeKind::N8n,
            Figures::Langflow(_) => ProbeKind::Langflow,
            Figures::Ollama(_) => ProbeKind::Ollama,
        }
    }

    pub fn postgres(&self) -> Option<&figures::Postgres> {
        match self {
            Figures::Postgres(f) => Some(f),
            _ => None,
        }
    }

    pub fn redis(&self) -> Option<&figures::Redis> {
        match self {
            Figures::Redis(f) => Some(f),
            _ => None,
        }
    }

    pub fn qdrant(&self) -> Option<&figures::Qdrant> {
        match self {
            Figures::Qdrant(f) => Some(f),
            _ => None,
        }
    }
}

/// A service probe's last report as a service row carries it (`ServiceStats::probe`):
/// what was asked where, how it went, and the figures of the last good sample (kept
/// while the probe fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ProbeStateFields")]
pub struct ProbeState {
    pub kind: ProbeKind,
    /// `host:port` it was asked at (None: it could not be reached at all).
    pub address: Option<String>,
    pub every_s: f64,
    /// `ok`, or `error: <why>`.
    pub status: String,
    pub last_error: Option<String>,
    /// When the last good sample was taken (seconds since the Unix epoch).
    pub last_sample: Option<f64>,
    /// The figures of the last good sample, by kind (None before the first).
    pub figures: Option<Figures>,
}

/// `ProbeState` as JSON gives it, before its figures are checked against its kind.
#[derive(Deserialize)]
struct ProbeStateFields {
    kind: ProbeKind,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    every_s: f64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    last_error: Option<String>,
    #[serde(default)]
    last_sample: Option<f64>,
    #[serde(default)]
    figures: Option<Figures>,
}

impl TryFrom<ProbeStateFields> for ProbeState {
    type Error = String;

    fn try_from(p: ProbeStateFields) -> Result<ProbeState, String> {
        if let Some(f) = p.figures.as_ref().filter(|f| f.kind() != p.kind) {
            return Err(format!(
                "a {} probe with {} figures",
                p.kind.as_str(),
                f.kind().as_str()
            ));
        }
        Ok(ProbeState {
            kind: p.kind,
            address: p.address,
            every_s: p.every_s,
            status: p.status,
            last_error: p.last_error,
            last_sample: p.last_sample,
            figures: p.figures,
        })
    }
}

impl ProbeState {
    /// The last good PostgreSQL figures (None: not a PostgreSQL probe, or no sample yet).
    pub fn postgres(&self) -> Option<&figures::Postgres> {
        self.figures.as_ref()?.postgres()
    }

    /// The last good Redis figures (None: not a Redis probe, or no sample yet).
    pub fn redis(&self) -> Option<&figures::Redis> {
        self.figures.as_ref()?.redis()
    }
}

/// One probed service: what it is, where inside its container it listens, how often it is
/// asked and what the probe logs in with. Built from the compose file by the command side.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub service: String,
    pub kind: ProbeKind,
    /// The port inside the container.
    pub port: u16,
    pub every: Duration,
    pub creds: Creds,
}

/// What a probe logs in with. Debug never prints the password.
#[derive(Clone, Default)]
pub struct Creds {
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("user", &self.user)
            .field(
                "password",
                &self.password.as_ref().map(|_| crate::model::secret::MASK),
            )
            .field("database", &self.database)
            .finish()
    }
}

impl Creds {
    /// Removes the password from a message (a driver's error may echo what it was given).
    pub fn scrub(&self, msg: &str) -> String {
        let mut m = crate::model::secret::mask_url_credentials(msg);
        if let Some(p) = self.password.as_deref().filter(|p| p.len() >= 3) {
            m = m.replace(p, crate::model::secret::MASK);
        }
        m
    }
}

/// The kinds as a list for error messages.
pub fn kinds_list() -> String {
    KINDS
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_images() {
        for (image, kind) in [
            ("postgres:15-alpine", Some(ProbeKind::Postgres)),
            (
                "docker.io/library/postgres@sha256:abc",
                Some(ProbeKind::Postgres),
            ),
            ("bitnami/postgresql:16", Some(ProbeKind::Postgres)),
            ("redis:7-alpine", Some(ProbeKind::Redis)),
            ("osmen-redis:test", Some(ProbeKind::Redis)),
            ("qdrant/qdrant:v1.12.4", Some(ProbeKind::Qdrant)),
            ("n8nio/n8n:latest", Some(ProbeKind::N8n)),
            ("langflowai/langflow:1.0.19", Some(ProbeKind::Langflow)),
            ("ollama/ollama", Some(ProbeKind::Ollama)),
            ("localhost:5000/redis", Some(ProbeKind::Redis)),
            ("nginx:1.27", None),
            ("osmen-standin:test", None),
            ("redisinsight/redisinsight", None),
        ] {
            assert_eq!(ProbeKind::from_image(image), kind, "{image}");
        }
        assert_eq!(ProbeKind::parse("PostgreSQL"), Some(ProbeKind::Postgres));
        assert_eq!(ProbeKind::parse("mysql"), None);
    }
}
