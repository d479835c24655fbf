//! `config/osmen.toml` and `config/gateway.toml`: any text parses or fails with a message
//! naming the file (and line); never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = osmen::model::config::Config::parse(text, "osmen.toml") {
        assert!(e.starts_with("osmen.toml"), "{e}");
    }
    if let Ok(g) = osmen::model::gateway::GatewayFile::parse(text, "gateway.toml") {
        let _ = g.shutdown_grace();
    }
});
