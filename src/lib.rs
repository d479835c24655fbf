//! osmen as a library: the binary in `main.rs` and the integration tests both use it.

pub mod advisor;
pub mod bench;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod logging;
pub mod model;
pub mod redis_conn;
pub mod stack;
pub mod sys;
pub mod tui;
