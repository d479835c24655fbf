//! The advisor's rules, one threshold family a file, in the order `evaluate` runs them.
//! Each rule reads the same context (history, snapshot, settings, the host and the
//! stack's services) and adds its suggestions; the order matters where a rule reads
//! another's state (the offload rule asks whether the latency rule holds).

pub mod agent_errors;
mod cpu;
mod gpu_vram;
mod host;
mod latency;
mod memory;
mod ollama_offload;
mod ollama_queue;
mod probes;
mod queue;

use std::collections::{BTreeMap, BTreeSet};

use super::{AdvisorState, Host};
use crate::model::advice::Suggestion;
use crate::model::config::AdvisorConfig;
use crate::model::history::History;
use crate::model::snapshot::{ServiceStats, Snapshot};

/// What every rule reads.
pub(super) struct Ctx<'a> {
    pub h: &'a History,
    pub s: &'a Snapshot,
    pub cfg: &'a AdvisorConfig,
    pub now: f64,
    /// The window in seconds, and as the evidence writes it.
    pub win: f64,
    pub win_label: String,
    pub host: Host,
    /// The running containers of each service.
    pub services: BTreeMap<&'a str, Vec<&'a ServiceStats>>,
}

/// A rule: adds its suggestions to `out` and the ids it judged to `seen`.
pub(super) type Rule = fn(&Ctx, &mut AdvisorState, &mut BTreeSet<String>, &mut Vec<Suggestion>);

fn agent_errors(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    agent_errors::evaluate(cx.h, cx.s, cx.cfg, state, cx.now, seen, out);
}

fn probes(
    cx: &Ctx,
    state: &mut AdvisorState,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<Suggestion>,
) {
    probes::evaluate(cx.h, cx.s, cx.cfg, state, cx.now, &cx.host, seen, out);
}

/// Every rule, in the order they run.
pub(super) const RULES: &[(&str, Rule)] = &[
    ("cpu", cpu::evaluate),
    ("memory", memory::evaluate),
    ("latency", latency::evaluate),
    ("queue", queue::evaluate),
    ("gpu-vram", gpu_vram::evaluate),
    ("ollama-offload", ollama_offload::evaluate),
    ("ollama-queue", ollama_queue::evaluate),
    ("agent-errors", agent_errors),
    ("probes", probes),
    ("host", host::evaluate),
];

#[cfg(test)]
mod tests;
