use super::execute::{exec_error_kind, exec_error_status};
use crate::gateway::agents::ExecError;
use crate::gateway::llm::LlmError;
use crate::model::agent_error::ErrorKind;
use std::time::Duration;

#[test]
fn failed_executions_are_classified_by_what_went_wrong() {
    let p = || "ollama".to_string();
    let m = || "x".to_string();
    let cases: Vec<(ExecError, ErrorKind, u16)> = vec![
        (ExecError::NoProvider, ErrorKind::NoProvider, 503),
        (
            ExecError::Provider(LlmError::Unavailable {
                provider: p(),
                message: "cannot reach http://127.0.0.1:1: refused".into(),
            }),
            ErrorKind::Unreachable,
            502,
        ),
        (
            ExecError::Provider(LlmError::CircuitOpen {
                provider: p(),
                message: m(),
            }),
            ErrorKind::CircuitOpen,
            502,
        ),
        (
            ExecError::Provider(LlmError::Timeout {
                provider: p(),
                after: Duration::from_secs(1),
            }),
            ErrorKind::Timeout,
            504,
        ),
        (
            ExecError::Provider(LlmError::Status {
                provider: p(),
                status: 404,
                message: "model not found".into(),
            }),
            ErrorKind::Http4xx,
            502,
        ),
        (
            ExecError::Provider(LlmError::Status {
                provider: p(),
                status: 500,
                message: m(),
            }),
            ErrorKind::Http5xx,
            502,
        ),
        (
            ExecError::Provider(LlmError::BadAnswer {
                provider: p(),
                message: "unreadable answer".into(),
            }),
            ErrorKind::BadAnswer,
            502,
        ),
    ];
    for (e, kind, status) in cases {
        assert_eq!(exec_error_kind(&e), kind, "{e:?}");
        let (code, msg) = exec_error_status(&e);
        assert_eq!(code.as_u16(), status, "{e:?}");
        assert!(!msg.is_empty());
    }
    let (_, msg) = exec_error_status(&ExecError::NoProvider);
    assert!(
        msg.contains("OLLAMA_URL") && msg.contains("config/gateway.toml"),
        "{msg}"
    );
}

#[test]
fn outages_move_on_and_4xx_does_not() {
    let status = |s: u16| LlmError::Status {
        provider: "openai".into(),
        status: s,
        message: String::new(),
    };
    assert!(status(429).is_outage() && status(500).is_outage());
    assert!(!status(400).is_outage() && !status(401).is_outage());
    let open = LlmError::CircuitOpen {
        provider: "ollama".into(),
        message: String::new(),
    };
    assert!(open.is_outage());
}
