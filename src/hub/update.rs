//! What the sources send the hub: one variant per kind of sample. The only hub types a
//! collector names (`Update`, and `GpuSample`, the payload of `Update::Gpus`).

use std::collections::BTreeMap;

use super::activity::ActivityChange;
use crate::model::console::{EventLine, LogLine};
use crate::model::snapshot::{GpuStats, HostStats, ServiceStats};

#[derive(Debug)]
pub enum Update {
    Host(HostStats),
    Services(Vec<ServiceStats>),
    /// NVML's devices and processes, with each process's `/proc` text.
    Gpus(GpuSample),
    Ollama(crate::model::ollama::Ollama),
    /// The gateways' calls in flight to Ollama (`/metrics`); None when none exposes them.
    OllamaInFlight(Option<u64>),
    /// The Ollama service's `OLLAMA_NUM_PARALLEL`, None when it sets none.
    OllamaParallel(Option<u32>),
    Agents(Vec<crate::model::agent::AgentRow>),
    Scrapes(Vec<crate::model::snapshot::ScrapeTarget>),
    ReplicaAgents(Vec<crate::model::agent::AgentRow>),
    /// A source's health: Ok(()) after a good sample, Err(reason) otherwise.
    Source(&'static str, Result<(), String>),
    Events(Vec<EventLine>),
    Logs(Vec<LogLine>),
    /// One service probe's sample (or why it failed).
    Probe(Box<crate::model::probe::ProbeReport>),
    /// A change to what the stack is doing (up running, blocked services, commands).
    Activity(ActivityChange),
    /// New journal entries: shown as events; the supervisor's restarts count in RST.
    Journal(Vec<crate::model::journal::JournalEntry>),
    /// The services the compose file declares now (active profiles): one without a
    /// container shows as `not created`.
    Declared(Vec<String>),
    /// How the compose file writes each service's limits and command (the advisor's
    /// patches edit those keys).
    ComposeForms(std::collections::BTreeMap<String, crate::model::advice::ComposeForm>),
    /// The `[[fleet]]` hosts' lines, as their engines answered (the hub adds what this
    /// snapshot knows of the host that is this machine).
    Fleet(Vec<crate::model::fleet::FleetRow>),
}

/// One GPU sample: NVML's devices and processes, and for each process the text of its
/// `/proc/PID/cgroup` (its container) and `/proc/PID/cmdline` (an Ollama runner's model
/// file), read by the collector beside NVML's process list: the hub joins them to the
/// containers and models and reads no file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    pub gpus: Vec<GpuStats>,
    /// PID -> `/proc/PID/cgroup`, for the processes whose file could be read.
    pub cgroups: BTreeMap<u32, String>,
    /// PID -> `/proc/PID/cmdline` (NUL-separated), likewise.
    pub cmdlines: BTreeMap<u32, String>,
}
