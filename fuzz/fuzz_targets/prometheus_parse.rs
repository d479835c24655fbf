//! The Prometheus text parser and what is computed from it (quantiles from summaries and
//! histograms, the gateway's per-agent figures): never a panic, whatever is scraped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osmen::collect::prometheus::{agents_from, parse, quantiles};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fams) = parse(text) {
        for f in &fams {
            let _ = quantiles(f, &[0.5, 0.95, 0.99]);
        }
        let _ = agents_from(&fams);
        let _ = osmen::collect::probes::http::qdrant_counters(&fams);
    }
});
