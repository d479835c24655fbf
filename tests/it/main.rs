//! osmen's integration tests: one binary, shared helpers in `util.rs`.

// The same accounting allocator as the osmen binary, so per-agent memory is measured here.
#[global_allocator]
static ALLOC: osmen::gateway::accounting::CountingAlloc = osmen::gateway::accounting::CountingAlloc;

mod advisor;
mod advisor_patches;
mod agent_errors;
mod architecture;
mod bench;
mod cli;
mod collect;
mod compose_corpus;
mod compose_env;
mod compose_merge;
mod console;
mod console_truth;
mod contexts;
mod deps;
mod docker_stack;
mod economics;
mod export;
mod faults;
mod first_run;
mod fleet;
mod gateway;
mod gateway_conns;
mod gateway_memory;
mod gateway_otel;
mod gpu_check;
mod guide_load;
mod hooks;
mod images;
mod llm_standin;
mod logging;
mod models;
mod module_graph;
mod ollama_queue;
mod parity;
mod parity_objects;
mod probes;
mod prometheus;
mod remote;
mod replicas;
mod security;
mod shipped_stack;
mod snapshot_json;
mod swarm;
mod util;
mod volumes;
