//! Compose `models:` served by the stack's Ollama: a stand-in Ollama that speaks the real
//! `/api/pull` (streamed progress), `/api/create`, `/api/tags` and `/api/generate`. Each
//! model is made present before the service that uses it starts, with the variables the
//! Compose Specification names; a model Ollama cannot pull stops its dependents with
//! Ollama's words; without an Ollama service, and with `runtime_flags`, `models:` is
//! refused by name.

use std::time::Duration;

use crate::util::{Stack, docker, docker_ready, inspect};

fn ollama_tags(st: &Stack) -> String {
    let port = docker(&["port", &st.container("ollama"), "11434"]).1;
    let port = port
        .lines()
        .next()
        .unwrap_or("")
        .rsplit(':')
        .next()
        .unwrap_or("")
        .to_string();
    let o = std::process::Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/api/tags"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn config_shows_the_variables_each_model_sets() {
    let st = Stack::new("models", "models-config");
    let (code, out, err) = st.run(&["config"]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "LLM_MODEL: \"llama3.2-ctx8192:1b\"",
        "LLM_URL: \"http://ollama:11434/v1\"",
        "EMBED_NAME: all-minilm",
        "EMBED_URL: \"http://ollama:11434/v1\"",
        "name: \"llama3.2-ctx8192:1b\"",
    ] {
        assert!(out.contains(want), "{want}:\n{out}");
    }
}

#[test]
fn models_are_pulled_before_their_users_start_and_a_failed_pull_stops_them() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("models", "models");
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("pulling model llama3.2:1b (for app)"), "{err}");
    assert!(err.contains("model llama3.2:1b: pulled"), "{err}");
    let tags = ollama_tags(&st);
    for m in ["llama3.2:1b", "llama3.2-ctx8192:1b", "all-minilm:latest"] {
        assert!(tags.contains(&format!("\"name\":\"{m}\"")), "{m}: {tags}");
    }
    // The pulls happened before the users were created (the journal's order).
    let journal = st.journal();
    let pulled = journal.find("pulled llama3.2:1b").expect("journaled");
    let created = journal
        .find("\"service\":\"app\",\"action\":\"start\"")
        .or_else(|| journal.rfind("app created"))
        .expect("app started");
    assert!(pulled < created, "{journal}");
    let env = inspect(&st.container("app"), "{{json .Config.Env}}");
    assert!(env.contains("LLM_URL=http://ollama:11434/v1"), "{env}");
    assert!(env.contains("LLM_MODEL=llama3.2-ctx8192:1b"), "{env}");
    let env = inspect(&st.container("embedder"), "{{json .Config.Env}}");
    assert!(env.contains("EMBED_NAME=all-minilm"), "{env}");
    // The URL's host and port answer from inside the user's container.
    let (ok, probe) = docker(&[
        "exec",
        &st.container("app"),
        "/standin",
        "probe",
        "http://ollama:11434/api/version",
    ]);
    assert!(ok, "{probe}");
    // A second up pulls nothing again.
    let (code, _, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("pulling model"), "{err}");

    // Warm, pin and unload change what Ollama's /api/ps reports.
    let (code, out, err) = st.run(&["ollama", "warm", "llama3.2-ctx8192:1b"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("llama3.2-ctx8192:1b"))
        .unwrap_or("");
    assert!(row.contains(" 8192 ") && row.contains("100%"), "{out}");
    assert!(row.trim_end().ends_with('s'), "unloads in minutes: {out}");
    let (code, out, _) = st.run(&["ollama", "pin", "llama3.2-ctx8192:1b"]);
    assert_eq!(code, 0);
    assert!(out.contains("forever"), "{out}");
    let (code, out, _) = st.run(&["ollama", "ps", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["loaded"][0]["context_length"], 8192, "{out}");
    assert!(
        v["loaded"][0]["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("23"),
        "{out}"
    );
    let (code, _, err) = st.run(&["--read-only", "ollama", "unload", "llama3.2-ctx8192:1b"]);
    assert_eq!(code, 2);
    assert!(err.contains("--read-only is set: `ollama unload`"), "{err}");
    let (code, out, _) = st.run(&["ollama", "unload", "llama3.2-ctx8192:1b"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unloaded"), "{out}");
    let (_, out, _) = st.run(&["ollama", "ps", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["loaded"], serde_json::json!([]), "{out}");
    assert!(st.journal().contains("\"action\":\"pin\""), "journaled");

    // A model Ollama cannot pull: up fails with Ollama's words, its user is not created.
    let bad = std::fs::read_to_string(st.path("docker-compose.yml"))
        .unwrap()
        .replace("model: all-minilm", "model: no-such-model:7b");
    std::fs::write(st.path("docker-compose.yml"), bad).unwrap();
    let _ = st.run(&["down"]);
    let (code, _, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 1, "up ran and did not complete: {err}");
    assert!(
        err.contains("model \"embed\" (no-such-model:7b) for embedder")
            && err.contains("Ollama says: pull model manifest: file does not exist")
            && err.contains("ollama.com/library"),
        "{err}"
    );
    // Created early (as every container is, while its dependencies come up), never
    // started: the engine has no start time for it.
    let started = inspect(
        &st.container("embedder"),
        "{{.State.Status}} {{.State.StartedAt}}",
    );
    assert!(
        started.starts_with("created 0001-01-01"),
        "embedder was started: {started}"
    );
}

/// H2: the real ollama/ollama image has no healthcheck, so its users wait only for it to
/// start; a first `up` then asks for the models before Ollama listens. The stand-in holds
/// 1.5 GB before it listens (about a second), with no healthcheck and no published port
/// (osmen reaches it on its network address): `up` waits for it to answer, then pulls.
#[test]
fn models_wait_for_an_ollama_without_a_healthcheck_to_answer() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("models", "models-slow-ollama");
    let text = std::fs::read_to_string(st.path("docker-compose.yml")).unwrap();
    let start = text
        .find("    ports:\n      - \"127.0.0.1::11434\"")
        .unwrap();
    let end = text.find("  app:\n").unwrap();
    let slow = format!(
        "{}      STANDIN_HOLD_MB: \"1500\"\n{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(st.path("docker-compose.yml"), &slow).unwrap();
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("waiting for ollama to answer at http://"),
        "{err}"
    );
    assert!(!err.contains("cannot reach Ollama"), "{err}");
    assert!(err.contains("model llama3.2:1b: pulled"), "{err}");
    // L11: the derived model is printed as it is created, not only journaled.
    assert!(
        err.contains("created model llama3.2-ctx8192:1b (num_ctx 8192) for app"),
        "{err}"
    );
    let env = inspect(&st.container("app"), "{{json .Config.Env}}");
    assert!(env.contains("LLM_MODEL=llama3.2-ctx8192:1b"), "{env}");
}

#[test]
fn models_without_an_ollama_service_or_with_runtime_flags_are_refused() {
    let st = Stack::new("models", "models-refused");
    let text = std::fs::read_to_string(st.path("docker-compose.yml")).unwrap();
    let no_ollama = text.replace("  ollama:\n", "  engine:\n");
    std::fs::write(st.path("docker-compose.yml"), &no_ollama).unwrap();
    let (code, _, err) = st.run(&["config"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("docker-compose.yml:")
            && err.contains("models are refused: the stack has no Ollama service"),
        "{err}"
    );
    let flags = text.replace(
        "    context_size: 8192\n",
        "    context_size: 8192\n    runtime_flags: [\"--temp\", \"0.1\"]\n",
    );
    std::fs::write(st.path("docker-compose.yml"), &flags).unwrap();
    let (code, _, err) = st.run(&["config"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("models.llm.runtime_flags") && err.contains("takes no raw engine flags"),
        "{err}"
    );
    let unknown = text.replace("      - llm\n", "      - lmm\n");
    std::fs::write(st.path("docker-compose.yml"), &unknown).unwrap();
    let (code, _, err) = st.run(&["config"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("model \"lmm\" is not under the top-level `models:` (defined: embed, llm)"),
        "{err}"
    );
}

/// The console's GPU view on the models stack: the model actions change what Ollama
/// reports (warm shows the derived model's context and its time to unload, pin shows it
/// pinned, unload takes it off), and `[`/`]` change the sampling period shown on top.
#[test]
fn console_model_actions_and_sampling_period() {
    if !docker_ready() {
        return;
    }
    let st = Stack::new("models", "models-console");
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    let script = format!(
        "cd {dir} && OSMEN_GATEWAY_LISTEN=127.0.0.1:{port} {bin} --no-up -p {project} \
         2>{dir}/console.err; sleep 60",
        dir = st.dir.display(),
        port = crate::util::free_port(),
        bin = env!("CARGO_BIN_EXE_osmen"),
        project = st.project,
    );
    let t = crate::console::Tmux::start(
        format!("osmen-models-{}", std::process::id()),
        150,
        40,
        &script,
    );
    t.wait_for("every 1s", Duration::from_secs(30));
    // The slowest sampling: Ollama's own sample then comes every 100 s, so the figures
    // after each action below are the action's own re-read, not the next sample.
    t.keys(&["]", "]", "]"]);
    t.wait_for("every 10s", Duration::from_secs(10));
    t.keys(&["4"]);
    // Ollama lists its models in the order they were pulled, which the two users' pulls
    // decide: the derived model is found by name.
    t.wait_for(
        "llama3.2-ctx8192:1b  installed, not loaded",
        Duration::from_secs(30),
    );
    for _ in 0..3 {
        if t.screen().contains("> llama3.2-ctx8192:1b") {
            break;
        }
        t.keys(&["j"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    t.wait_for("> llama3.2-ctx8192:1b", Duration::from_secs(10));
    t.keys(&["w"]);
    // The answer, and with it what Ollama holds now (read again at once).
    t.wait_for("loaded with Ollama's keep-alive", Duration::from_secs(30));
    let screen = t.wait_for("ctx 8192", Duration::from_secs(5));
    assert!(screen.contains("unloads in 4m"), "{screen}");
    t.keys(&["P"]);
    let screen = t.wait_for("pinned", Duration::from_secs(10));
    assert!(
        screen.contains("> llama3.2-ctx8192:1b  ctx 8192"),
        "{screen}"
    );
    t.keys(&["u"]);
    t.wait_for(
        "llama3.2-ctx8192:1b  installed, not loaded",
        Duration::from_secs(10),
    );
    t.keys(&["[", "[", "[", "["]);
    t.wait_for("every 0.5s", Duration::from_secs(10));
    t.keys(&["]", "]"]);
    t.wait_for("every 2s", Duration::from_secs(10));
    t.keys(&["q"]);
}
