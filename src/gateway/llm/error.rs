//! Why a provider call failed, with the provider named, as the agents and metrics see it.

use std::time::Duration;

use crate::model::agent_error::ErrorKind;

#[derive(Debug, Clone, PartialEq)]
pub enum LlmError {
    Timeout {
        provider: String,
        after: Duration,
    },
    /// The provider answered with an error status (after retries).
    Status {
        provider: String,
        status: u16,
        message: String,
    },
    /// The provider could not be reached.
    Unavailable {
        provider: String,
        message: String,
    },
    /// The provider answered something that is not a completion (unreadable JSON or
    /// stream, no completion text).
    BadAnswer {
        provider: String,
        message: String,
    },
    /// The provider's circuit breaker is open: refused without a call.
    CircuitOpen {
        provider: String,
        message: String,
    },
}

impl LlmError {
    /// The provider that failed.
    pub fn provider(&self) -> &str {
        match self {
            LlmError::Timeout { provider, .. }
            | LlmError::Status { provider, .. }
            | LlmError::Unavailable { provider, .. }
            | LlmError::BadAnswer { provider, .. }
            | LlmError::CircuitOpen { provider, .. } => provider,
        }
    }

    /// The kind the gateway counts and reports the error as.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LlmError::Timeout { .. } => ErrorKind::Timeout,
            LlmError::Status { status, .. } => ErrorKind::from_status(*status),
            LlmError::Unavailable { .. } => ErrorKind::Unreachable,
            LlmError::BadAnswer { .. } => ErrorKind::BadAnswer,
            LlmError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
        }
    }

    /// An outage moves an agent on to its next provider and counts against the
    /// provider's circuit: unreachable, timeout, 429, 5xx, an unreadable answer, an open
    /// circuit. Any other 4xx is the request's fault.
    pub fn is_circuit_open(&self) -> bool {
        matches!(self, LlmError::CircuitOpen { .. })
    }

    pub fn is_outage(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => true,
        }
    }
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmError::Timeout { provider, after } => {
                write!(
                    f,
                    "{provider} did not answer within {}s",
                    after.as_secs_f64()
                )
            }
            LlmError::Status {
                provider,
                status,
                message,
            } => write!(f, "{provider} answered {status}: {message}"),
            LlmError::Unavailable { provider, message }
            | LlmError::BadAnswer { provider, message }
            | LlmError::CircuitOpen { provider, message } => write!(f, "{provider}: {message}"),
        }
    }
}
