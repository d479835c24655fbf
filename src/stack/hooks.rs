//! Running a service's lifecycle hooks in its container, as the Compose Specification
//! says: `post_start` after the container starts (a failing one stops the container),
//! `pre_stop` before it stops (a failing one aborts the stop). Each runs as an exec with
//! its user, privileges, working directory and environment; its output, masked and
//! bounded, goes into the error and the journal.

use super::compose::Service;
use super::compose::hooks::Hook;
use super::engine::{Engine, EngineError};
use crate::model::secret::mask_text;

/// How much of a failing hook's output the error quotes.
const OUTPUT_TAIL: usize = 400;

/// Why a hook stopped its container's start or stop.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The engine could not run the hook's exec.
    #[error("{when}[{index}] could not run: {source}")]
    CouldNotRun {
        when: &'static str,
        index: usize,
        source: EngineError,
    },
    /// The hook ran and failed: its command (secrets masked), its exit status and the
    /// tail of its output (masked, bounded).
    #[error("{when}[{index}] `{command}` failed ({}): {output}", status_word(*code))]
    Failed {
        when: &'static str,
        index: usize,
        command: String,
        code: Option<i64>,
        output: String,
    },
}

fn status_word(code: Option<i64>) -> String {
    code.map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}"))
}

fn failure(when: &'static str, i: usize, hook: &Hook, code: Option<i64>, out: &str) -> HookError {
    let out = mask_text(out.trim());
    let mut start = out.len().saturating_sub(OUTPUT_TAIL);
    while !out.is_char_boundary(start) {
        start += 1;
    }
    let command = crate::model::secret::mask_command(&hook.command).join(" ");
    HookError::Failed {
        when,
        index: i,
        command,
        code,
        output: out[start..].to_string(),
    }
}

async fn run<E: Engine>(
    engine: &E,
    when: &'static str,
    hooks: &[Hook],
    id: &str,
) -> Result<usize, HookError> {
    for (i, hook) in hooks.iter().enumerate() {
        let (code, out) =
            engine
                .exec_hook(id, hook)
                .await
                .map_err(|source| HookError::CouldNotRun {
                    when,
                    index: i,
                    source,
                })?;
        if code != Some(0) {
            return Err(failure(when, i, hook, code, &out));
        }
    }
    Ok(hooks.len())
}

/// Runs the `post_start` hooks in a started container: how many ran, or what failed.
pub async fn post_start<E: Engine>(
    engine: &E,
    svc: &Service,
    id: &str,
) -> Result<usize, HookError> {
    run(engine, "post_start", &svc.post_start, id).await
}

/// Runs the `pre_stop` hooks in a running container (one that is not running has nothing
/// to stop and runs none): how many ran, or what failed.
pub async fn pre_stop<E: Engine>(engine: &E, svc: &Service, id: &str) -> Result<usize, HookError> {
    if svc.pre_stop.is_empty() {
        return Ok(0);
    }
    match engine.inspect(id).await {
        Ok(row) if row.state == "running" => run(engine, "pre_stop", &svc.pre_stop, id).await,
        _ => Ok(0),
    }
}
