//! The advisor on the real engine: a stand-in doing 0.4 CPU of work under a 0.5 CPU limit
//! gets a CPU suggestion; applying it changes NanoCpus without restarting the container;
//! its CPU share of the limit then falls and the suggestion is gone. The idle service never
//! gets one. `plan` answers with the guide's capacity rows.

use crate::util::{Stack, docker_ready, inspect, osmen, text};

/// The suggestions about the stack's services: the machine's own (`host-*`, a busy test
/// host's CPU) are real but not this test's.
fn of_the_stack(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["id"].as_str().unwrap_or("").starts_with("host-"))
        .cloned()
        .collect()
}

#[test]
fn a_burning_service_gets_a_cpu_suggestion_that_applies_in_place() {
    if !docker_ready() {
        return;
    }
    let stack = Stack::new("advisor", "adv");
    stack.set_config("[advisor]\nwindow = \"6s\"\n");
    let (code, _, err) = stack.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    let burner = stack.container("burner");
    let started = inspect(&burner, "{{.State.StartedAt}}");
    assert_eq!(inspect(&burner, "{{.HostConfig.NanoCpus}}"), "500000000");

    let (code, out, err) = stack.run(&["suggest", "--json"]);
    assert_eq!(code, 1, "advice is exit 1: {out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = of_the_stack(&v);
    assert_eq!(list.len(), 1, "only the burner: {out}");
    let s = &list[0];
    assert_eq!(s["id"], "cpu:burner");
    assert_eq!(s["service"], "burner");
    assert_eq!(s["rule"], "cpu");
    assert_eq!(s["action"]["type"], "vertical");
    assert_eq!(s["action"]["cpus"], 1.0, "double the 0.5 limit: {out}");
    assert!(
        s["evidence"]
            .as_str()
            .unwrap()
            .contains("of its 0.5-CPU limit"),
        "{out}"
    );
    assert_eq!(s["command"], format!("docker update --cpus 1 {burner}"));
    assert!(
        s["compose_patch"].as_str().unwrap().contains("cpus: \"1\""),
        "{out}"
    );

    // Read-only refuses; apply changes the limit in place.
    let (code, _, err) = stack.run(&["--read-only", "suggest", "--apply", "cpu:burner"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--read-only"), "{err}");
    let (code, out, err) = stack.run(&["suggest", "--apply", "cpu:burner"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(inspect(&burner, "{{.HostConfig.NanoCpus}}"), "1000000000");
    assert_eq!(
        inspect(&burner, "{{.State.StartedAt}}"),
        started,
        "no restart"
    );
    assert!(stack.journal().contains("\"action\":\"update-limits\""));

    // The same work is now 40% of the limit: no suggestion after a window.
    let (code, out, err) = stack.run(&["suggest", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(of_the_stack(&v).is_empty(), "{out}");
    // Advice about the machine itself (a busy test host) is exit 1 too.
    let host = v["suggestions"].as_array().unwrap().len();
    assert_eq!(code, if host > 0 { 1 } else { 0 }, "{out}{err}");
    let (_, out, _) = stack.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let b = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service"] == "burner")
        .unwrap()
        .clone();
    // The share is now of the new limit (1 CPU). The figure itself is a measurement on a
    // shared machine (40% of the limit when quiet; a loaded CI host has shown 78%), so
    // what is checked is that it is taken against the limit the engine holds now.
    assert_eq!(b["cpu_limit"].as_f64(), Some(1.0), "{b}");
    let (share, of_core) = (
        b["cpu_limit_percent"].as_f64().unwrap(),
        b["cpu_percent"].as_f64().unwrap(),
    );
    assert!(
        (share - of_core / 1.0).abs() < 1e-6,
        "share of the new limit {share} from {of_core}% of a core"
    );
}

#[test]
fn plan_names_the_guides_capacity_rows() {
    for (users, cores) in [
        ("10", "8 CPU cores"),
        ("50", "16 CPU cores"),
        ("500", "64+ CPU cores"),
    ] {
        let o = osmen()
            .args(["-f", "/nonexistent/c.yml", "plan", "--users", users])
            .env("OSMEN_GATEWAY_LISTEN", "127.0.0.1:1")
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(out.contains(cores), "{users} users: {out}");
        assert!(out.contains("no measured projection"), "{out}");
    }
}
