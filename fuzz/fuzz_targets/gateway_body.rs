//! The gateway's request bodies through its real router, with a key: the first byte picks
//! the route (execute, memory search, workflow trigger), the rest is the body. (Memory
//! store is left out: every accepted note would grow the index for the rest of the run.) Every answer is a status code with a JSON body; nothing panics. The LLM provider
//! and n8n point at a closed loopback port, so a valid request fails fast with 502.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("osmen-fuzz-gw-{}", std::process::id()));
        let cfg = dir.join("gateway.toml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &cfg,
            "[gateway]\nrate_limit_per_key = 0\n[providers.ollama]\nurl = \
             \"http://127.0.0.1:9\"\ntimeout = \"1s\"\nretries = 0\n",
        )
        .unwrap();
        let env = [
            ("OSMEN_API_KEYS", "fuzz-key"),
            ("N8N_URL", "http://127.0.0.1:9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let opts = osmen::gateway::Options {
            config_file: Some(cfg),
            assets_dir: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets"),
            runtime_dir: dir.join("runtime"),
            listen: Some("127.0.0.1:0".into()),
            env,
            stack: None,
        };
        let gw = osmen::gateway::Gateway::build(&opts).expect("gateway builds");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            rt,
            app: osmen::gateway::router(Arc::new(gw)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    let path = match route % 3 {
        0 => "/api/v1/agents/daily_brief/execute",
        1 => "/api/v1/memory/search",
        _ => "/api/v1/workflows/nightly-report/trigger",
    };
    let f = fixture();
    let req = Request::post(path)
        .header("x-api-key", "fuzz-key")
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let resp = f.rt.block_on(f.app.clone().oneshot(req)).unwrap();
    let status = resp.status().as_u16();
    assert!((200..600).contains(&status));
    let bytes = f
        .rt
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
        .unwrap();
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("errors are JSON");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
});
