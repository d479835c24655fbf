//! The stack: the compose file, the Docker engine adapter, and the supervisor that plans
//! and carries out `up`, `down`, restarts and crash-loop holds.

pub mod balance;
pub mod compose;
pub mod context;
pub mod engine;
pub mod hooks;
pub mod image;
pub mod journal;
pub mod k8s;
pub mod ollama;
pub mod plan;
pub mod provision;
pub mod redis_admin;
pub mod remote;
pub mod supervise;
pub mod swarm;
