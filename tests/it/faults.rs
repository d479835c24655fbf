//! Faults the console and the supervisor must survive, on the real engine.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Stack, docker_ready, inspect, wait_until};

/// `runtime/` cannot be written (here: a file stands where the directory should be).
/// Every action is journaled before it is taken, so none is taken: `restart` fails naming
/// the journal and the container keeps running untouched; `status` reports the journal
/// as failing, and as ok again once `runtime/` is back.
#[test]
fn an_unwritable_runtime_refuses_actions_and_says_so() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("secrets", "unwritable");
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=x\n").unwrap();
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let c = st.container("cache");
    let started = inspect(&c, "{{.State.StartedAt}}");
    std::fs::rename(st.path("runtime"), st.path("runtime.away")).unwrap();
    std::fs::write(st.path("runtime"), "not a directory").unwrap();

    let (code, _, err) = st.run(&["restart", "cache"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("journal"), "{err}");
    assert_eq!(
        inspect(&c, "{{.State.StartedAt}}"),
        started,
        "acted unjournaled"
    );
    let (code, _, err) = st.run(&["down"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(inspect(&c, "{{.State.Status}}"), "running");

    let (_, out, _) = st.run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let j = &v["sources"]["journal"];
    assert!(
        j["status"].as_str().unwrap().starts_with("error:")
            && j["status"]
                .as_str()
                .unwrap()
                .contains("actions are refused"),
        "{j}"
    );
    let (_, text, _) = st.run(&["status"]);
    assert!(text.contains("journal error:"), "{text}");

    std::fs::remove_file(st.path("runtime")).unwrap();
    std::fs::rename(st.path("runtime.away"), st.path("runtime")).unwrap();
    let (_, out, _) = st.run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sources"]["journal"]["status"], "ok");
    let (code, _, err) = st.run(&["restart", "cache"]);
    assert_eq!(code, 0, "{err}");
    assert!(wait_until(Duration::from_secs(20), || {
        inspect(&c, "{{.State.StartedAt}}") != started
    }));
}
