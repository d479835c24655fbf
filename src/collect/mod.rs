//! Sources of live measurements. Each one reports its own health and keeps going when
//! what it measures is missing (no GPU, no driver).

pub mod containers;
pub mod disk;
pub mod feed;
pub mod fleet;
pub mod gpu;
pub mod host;
pub mod ollama;
pub mod probes;
pub mod prometheus;
pub mod ticker;
