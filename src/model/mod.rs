//! Plain data shared by every part of osmen: container rows, journal entries, units and
//! secret masking. Nothing here does I/O or knows about tokio, bollard or ratatui; a test
//! (`tests/it/architecture.rs`) keeps it that way.

pub mod advice;
pub mod agent;
pub mod agent_error;
pub mod config;
pub mod console;
pub mod container;
pub mod figures;
pub mod fleet;
pub mod gateway;
pub mod history;
pub mod journal;
pub mod metric;
pub mod ollama;
pub mod probe;
pub mod progress;
pub mod secret;
pub mod snapshot;
pub mod units;
