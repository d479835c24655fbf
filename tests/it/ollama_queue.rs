//! Queue pressure on Ollama, end to end: calls held by a slow stand-in Ollama through
//! the real gateway rise above the stack's `OLLAMA_NUM_PARALLEL` on `/metrics`; the
//! collector's reading of that gauge and the compose file's variable, folded by the hub,
//! give `ollama.queue` in the snapshot `status --json` prints, its wait started, then
//! back to 0 and cleared once they answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::llm_standin;
use osmen::collect::{ollama, prometheus};
use osmen::hub::{Hub, Update};
use osmen::model::metric::PROVIDER_IN_FLIGHT;

/// Calls sent at once, against the two the stack's Ollama serves.
const CALLS: usize = 5;
const PARALLEL: &str = "2";

/// The stack's Ollama service sets `OLLAMA_NUM_PARALLEL`.
fn project() -> osmen::stack::compose::Project {
    let src = format!(
        "services:\n  ollama:\n    image: ollama/ollama\n    environment:\n      \
         OLLAMA_NUM_PARALLEL: \"{PARALLEL}\"\n"
    );
    let opts = osmen::stack::compose::LoadOptions {
        project_name: Some("q".into()),
        ..Default::default()
    };
    osmen::stack::compose::load_str(&src, std::path::Path::new("/x/compose.yml"), &opts).unwrap()
}

/// What the collector reads from the gateway's /metrics now.
async fn in_flight(gw: &crate::gateway::Gw) -> (Option<u64>, String) {
    let (_, text) = gw.get("/metrics", None).await;
    let fams = prometheus::parse(&text).expect("the gateway's metrics parse");
    (prometheus::ollama_in_flight(&fams), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_held_by_ollama_past_its_parallel_show_as_a_queue_then_clear() {
    let llm = llm_standin::start().await;
    llm.script().latency = Duration::from_millis(1500);
    let cfg = format!(
        "[agents.queued]\ndescription = \"d\"\nprompt = \"content_creator.md\"\nconcurrency = \
         {CALLS}\n"
    );
    let gw = Arc::new(crate::gateway::start(&[("OLLAMA_URL", &llm.url)], Some(&cfg)).await);
    let mut hub = Hub::new("q", None);
    let parallel = osmen::commands::engine_side::ollama_num_parallel(&project());
    assert_eq!(parallel, Some(2));
    hub.apply(Update::OllamaParallel(parallel));
    let client = reqwest::Client::new();
    hub.apply(Update::Ollama(
        ollama::sample(&client, &llm.url).await.unwrap(),
    ));
    let (idle, text) = in_flight(&gw).await;
    assert_eq!(idle, Some(0), "{text}");
    assert!(
        text.contains(&format!("# TYPE {PROVIDER_IN_FLIGHT} gauge")),
        "{text}"
    );

    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.exec_as("queued", "key-one", &format!("q{i}")).await })
        })
        .collect();
    // All of them in flight at once, well within the stand-in's 1.5 s.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = in_flight(&gw).await.0;
        if seen == Some(CALLS as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(CALLS as u64), "calls in flight on /metrics");
    hub.apply(Update::OllamaInFlight(seen));
    let json: serde_json::Value = serde_json::to_value(&hub.snapshot).unwrap();
    let q = &json["ollama"]["queue"];
    assert_eq!(q["in_flight"], CALLS as u64, "{q}");
    assert_eq!(q["parallel"], 2, "{q}");
    assert_eq!(q["parallel_from"], "OLLAMA_NUM_PARALLEL", "{q}");
    assert!(
        q["waiting_since"].as_f64().is_some(),
        "the wait started: {q}"
    );

    for t in tasks {
        let (s, v) = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("answered in time")
            .unwrap();
        assert_eq!(s, 200, "{v}");
    }
    let (after, text) = in_flight(&gw).await;
    assert_eq!(after, Some(0), "{text}");
    hub.apply(Update::OllamaInFlight(after));
    let q = hub.snapshot.ollama.as_ref().unwrap().queue.clone().unwrap();
    assert_eq!((q.in_flight, q.waiting_since), (0, None), "{q:?}");
    // A new sample of Ollama keeps the queue.
    hub.apply(Update::Ollama(
        ollama::sample(&client, &llm.url).await.unwrap(),
    ));
    assert!(hub.snapshot.ollama.as_ref().unwrap().queue.is_some());
}

/// How many requests Ollama serves at once is read from its running container: a
/// container created from an older compose file keeps its own `OLLAMA_NUM_PARALLEL`
/// (what `docker inspect` shows) until it is recreated, whatever the file says now.
#[test]
fn num_parallel_is_the_running_containers_not_the_files() {
    use crate::util::{Stack, docker_ready, inspect};
    if !docker_ready() {
        return;
    }
    let st = Stack::new("models", "oq-parallel");
    let compose = |parallel: Option<&str>| {
        let env = parallel
            .map(|p| format!("      OLLAMA_NUM_PARALLEL: \"{p}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            st.path("docker-compose.yml"),
            format!(
                "services:\n  ollama:\n    image: osmen-standin:test\n    restart: \"no\"\n    \
                 stop_grace_period: 1s\n    environment:\n      PORT: \"11434\"\n{env}"
            ),
        )
        .unwrap();
        let opts = osmen::stack::compose::LoadOptions {
            project_name: Some(st.project.clone()),
            ..Default::default()
        };
        osmen::stack::compose::load(&st.path("docker-compose.yml"), &opts).unwrap()
    };
    compose(Some("3"));
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    let env = inspect(&st.container("ollama"), "{{json .Config.Env}}");
    assert!(env.contains("\"OLLAMA_NUM_PARALLEL=3\""), "{env}");
    // The file now says 7; the container was made with 3 and still runs with it.
    let project = compose(Some("7"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt
        .block_on(osmen::stack::engine::DockerEngine::connect())
        .unwrap();
    let running = rt.block_on(osmen::commands::ollama::running_num_parallel(
        &project, &engine,
    ));
    assert_eq!(
        osmen::commands::engine_side::ollama_num_parallel(&project),
        Some(7)
    );
    assert_eq!(running, Some(Some(3)), "docker inspect: {env}");
    // Recreated without it: Ollama's default applies (`Some(None)`), and with no
    // container running nothing can be told (`None`).
    let project = compose(None);
    let (code, out, err) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{out}{err}");
    let env = inspect(&st.container("ollama"), "{{json .Config.Env}}");
    assert!(!env.contains("OLLAMA_NUM_PARALLEL"), "{env}");
    let running = rt.block_on(osmen::commands::ollama::running_num_parallel(
        &project, &engine,
    ));
    assert_eq!(running, Some(None));
    let (ok, out) = crate::util::docker(&["stop", "-t", "1", &st.container("ollama")]);
    assert!(ok, "{out}");
    let running = rt.block_on(osmen::commands::ollama::running_num_parallel(
        &project, &engine,
    ));
    assert_eq!(running, None);
}
