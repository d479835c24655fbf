//! Why an agent's request failed, as one small closed set shared by the gateway (which
//! classifies and exports it), the collector (which reads it back from `/metrics`), the
//! console (which shows it) and the advisor (which names the fix). The metric names and
//! label values live here so that writer and reader cannot drift apart.

use crate::model::secret::{MASK, mask_url_credentials};

/// `osmen_errors_total{agent,kind}`: failed requests by kind (counter).
pub const ERRORS_METRIC: &str = super::metric::ERRORS_TOTAL;
/// When the agent's last failed request failed (unix seconds), labelled with its kind.
pub const LAST_ERROR_TIMESTAMP_METRIC: &str = super::metric::AGENT_LAST_ERROR_TIMESTAMP_SECONDS;
/// The last error's message as a label (value 1), with its kind.
pub const LAST_ERROR_INFO_METRIC: &str = super::metric::AGENT_LAST_ERROR_INFO;
/// Requests and failed requests over the gateway's last minute (gauges).
pub const WINDOW_REQUESTS_METRIC: &str = super::metric::AGENT_WINDOW_REQUESTS;
pub const WINDOW_ERRORS_METRIC: &str = super::metric::AGENT_WINDOW_ERRORS;

/// The longest message kept (in characters): a label value must stay small.
pub const MESSAGE_MAX_CHARS: usize = 200;
/// An agent is FAILING when more than this share of the window's requests failed...
pub const FAILING_SHARE: f64 = 0.5;
/// ...and the window holds at least this many requests (one failure in two is noise).
pub const FAILING_MIN_REQUESTS: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The agent has no provider configured at all.
    NoProvider,
    /// The provider could not be reached (connection refused, DNS, reset).
    Unreachable,
    /// The provider's circuit breaker is open: calls fail at once.
    CircuitOpen,
    /// The provider did not answer within its timeout.
    Timeout,
    /// The provider answered an HTTP 4xx (bad key, unknown model, 429).
    Http4xx,
    /// The provider answered an HTTP 5xx.
    Http5xx,
    /// The provider answered something unreadable (not JSON, no completion).
    BadAnswer,
    /// The agent's own slots and queue were full (the gateway answered 429).
    Overload,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::NoProvider,
        ErrorKind::Unreachable,
        ErrorKind::CircuitOpen,
        ErrorKind::Timeout,
        ErrorKind::Http4xx,
        ErrorKind::Http5xx,
        ErrorKind::BadAnswer,
        ErrorKind::Overload,
    ];

    /// The `kind` label value in `/metrics` and the JSON field value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NoProvider => "no_provider",
            ErrorKind::Unreachable => "provider_unreachable",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Timeout => "provider_timeout",
            ErrorKind::Http4xx => "provider_4xx",
            ErrorKind::Http5xx => "provider_5xx",
            ErrorKind::BadAnswer => "provider_bad_answer",
            ErrorKind::Overload => "overload",
        }
    }

    pub fn from_label(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.label() == s)
    }

    /// What the operator reads on the screen.
    pub fn describe(self) -> &'static str {
        match self {
            ErrorKind::NoProvider => "no provider",
            ErrorKind::Unreachable => "provider unreachable",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Http4xx => "4xx",
            ErrorKind::Http5xx => "5xx",
            ErrorKind::BadAnswer => "bad answer",
            ErrorKind::Overload => "overload",
        }
    }

    /// The provider answered an HTTP error status: 4xx or 5xx.
    pub fn from_status(status: u16) -> ErrorKind {
        if status >= 500 {
            ErrorKind::Http5xx
        } else {
            ErrorKind::Http4xx
        }
    }

    /// How to make the error go away, for the advisor's suggestion.
    pub fn fix(self) -> &'static str {
        match self {
            ErrorKind::NoProvider => {
                "configure a provider: set OLLAMA_URL (e.g. http://ollama:11434) in the \
                 gateway's environment, or [providers.ollama] url in config/gateway.toml, or \
                 OPENAI_API_KEY / ANTHROPIC_API_KEY"
            }
            ErrorKind::Unreachable => {
                "check that the provider runs and answers at its URL (OLLAMA_URL or \
                 [providers.*] url in config/gateway.toml): docker compose ps, then curl the \
                 URL from the gateway's host"
            }
            ErrorKind::CircuitOpen => {
                "the provider keeps failing and its circuit is open: fix the provider (see \
                 its logs and /health); calls resume after breaker_cooldown once a trial \
                 call succeeds"
            }
            ErrorKind::Timeout => {
                "raise the provider's timeout ([providers.*] timeout in config/gateway.toml) \
                 or give the provider more capacity (a GPU, a smaller model, more replicas)"
            }
            ErrorKind::Http4xx => {
                "the provider refuses the requests: check the API key, the model name \
                 (OLLAMA_MODEL / [providers.*] model; `ollama pull` it) and the provider's \
                 rate limits"
            }
            ErrorKind::Http5xx => {
                "the provider fails internally: read its logs (docker compose logs ollama), \
                 check its memory and VRAM, restart it"
            }
            ErrorKind::BadAnswer => {
                "the provider answers something that is not a completion: check that the \
                 URL points at the provider's API (not a proxy's page) and its version"
            }
            ErrorKind::Overload => {
                "the agent's slots and queue are full: raise its concurrency/queue in \
                 config/gateway.toml or run more gateway replicas"
            }
        }
    }
}

/// A message fit for a label value, a JSON field and the screen: URL passwords and the
/// given secrets masked, control characters turned into spaces, at most
/// MESSAGE_MAX_CHARS characters.
pub fn clean_message(msg: &str, secrets: &[&str]) -> String {
    let mut m = mask_url_credentials(msg);
    // Short values would mask ordinary words; a key is longer than this.
    for s in secrets.iter().filter(|s| s.len() >= 6) {
        m = m.replace(s, MASK);
    }
    let mut out: String = m
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MESSAGE_MAX_CHARS)
        .collect();
    if m.chars().count() > MESSAGE_MAX_CHARS {
        out.pop();
        out.push('…');
    }
    out
}

/// The share of failed requests in percent (None without requests).
pub fn error_percent(requests: f64, errors: f64) -> Option<f64> {
    (requests > 0.0).then(|| (errors / requests * 100.0).clamp(0.0, 100.0))
}

/// Whether most of the window's requests failed (with enough requests to tell).
pub fn failing(requests: f64, errors: f64) -> bool {
    requests >= FAILING_MIN_REQUESTS && errors > requests * FAILING_SHARE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_label(k.label()), Some(k));
            assert!(seen.insert(k.label()), "{k:?}");
            assert!(
                k.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        assert_eq!(ErrorKind::from_label("provider"), None);
    }

    #[test]
    fn status_classes() {
        for (status, want) in [
            (400, ErrorKind::Http4xx),
            (401, ErrorKind::Http4xx),
            (429, ErrorKind::Http4xx),
            (500, ErrorKind::Http5xx),
            (503, ErrorKind::Http5xx),
        ] {
            assert_eq!(ErrorKind::from_status(status), want, "{status}");
        }
    }

    #[test]
    fn messages_are_masked_flattened_and_bounded() {
        let m = clean_message(
            "ollama: cannot reach http://u:hunter2@h:11434: refused\nsk-live-123456 bad",
            &["sk-live-123456", "abc"],
        );
        assert!(
            !m.contains("hunter2") && !m.contains("sk-live-123456"),
            "{m}"
        );
        assert!(
            m.contains("http://u:********@h:11434") && !m.contains('\n'),
            "{m}"
        );
        let long = "x".repeat(500);
        let m = clean_message(&long, &[]);
        assert_eq!(m.chars().count(), MESSAGE_MAX_CHARS);
        assert!(m.ends_with('…'));
        assert_eq!(clean_message("short", &[]), "short");
    }

    #[test]
    fn failing_needs_a_majority_of_enough_requests() {
        for (req, err, want) in [
            (0.0, 0.0, false),
            (4.0, 4.0, false),
            (5.0, 3.0, true),
            (10.0, 5.0, false),
            (10.0, 6.0, true),
            (743.0, 743.0, true),
            (100.0, 10.0, false),
        ] {
            assert_eq!(failing(req, err), want, "{req} {err}");
        }
        assert_eq!(error_percent(0.0, 0.0), None);
        assert_eq!(error_percent(10.0, 8.0), Some(80.0));
    }
}
