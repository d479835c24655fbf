//! osmen's integration tests: one binary, shared helpers in `util.rs`.

mod architecture;
mod cli;
mod compose_corpus;
mod docker_stack;
mod images;
mod shipped_stack;
mod util;
