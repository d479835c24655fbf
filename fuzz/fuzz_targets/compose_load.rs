//! The compose loader: any text, with `${VAR}` interpolation from a small environment,
//! loads or fails with errors; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osmen::stack::compose::{LoadOptions, load_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = LoadOptions {
        project_name: None,
        env: [("POSTGRES_PASSWORD", "pw"), ("TAG", "15"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    match load_str(text, std::path::Path::new("/tmp/osmen-fuzz/docker-compose.yml"), &opts) {
        Ok(p) => {
            let _ = serde_json::to_string(&p);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
