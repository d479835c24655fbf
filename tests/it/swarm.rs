//! `--engine swarm` on a single-node swarm the test initialises (and leaves, if it made
//! it): deploy, scale, update limits, remove, and what the engine reports of each step
//! (`docker service inspect`, the engine's own view, not osmen's). Images are the local
//! test images: nothing is pulled, no digest is resolved.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Stack, docker, docker_ready, free_port, wait_until};

/// One swarm test at a time (one may leave the swarm the other uses); leaves the swarm
/// at the end if this test created it.
struct SwarmGuard {
    created: bool,
    _one: std::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl SwarmGuard {
    fn ensure() -> SwarmGuard {
        let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]).1;
        if state.trim() == "active" {
            return SwarmGuard {
                created: false,
                _one: one,
            };
        }
        let (ok, out) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        assert!(ok, "docker swarm init: {out}");
        SwarmGuard {
            created: true,
            _one: one,
        }
    }
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.created {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

/// Runs `--engine swarm down` when the test ends, before the stack's own cleanup.
struct Down<'a>(&'a Stack, Vec<(&'static str, String)>);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let mut c = self.0.cmd(&["--engine", "swarm", "down"]);
        for (k, v) in &self.1 {
            c.env(k, v);
        }
        let _ = c.output();
        // The tasks' containers leave a moment later; then the volume can go too.
        let filter = format!("label=com.docker.stack.namespace={}", self.0.project);
        wait_until(Duration::from_secs(30), || {
            docker(&["ps", "-aq", "--filter", &filter])
                .1
                .trim()
                .is_empty()
        });
        let _ = docker(&["volume", "rm", &format!("{}_cachedata", self.0.project)]);
    }
}

fn spec(service: &str) -> Value {
    let (ok, out) = docker(&["service", "inspect", service, "--format", "{{json .Spec}}"]);
    assert!(ok, "{out}");
    serde_json::from_str(&out).unwrap()
}

fn running_containers(service: &str) -> Vec<String> {
    let (_, out) = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    let mut v: Vec<String> = out.split_whitespace().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn a_single_node_swarm_deploys_scales_updates_and_removes_the_stack() {
    if !docker_ready() {
        return;
    }
    let _swarm = SwarmGuard::ensure();
    let st = Stack::new("swarm", "swarm");
    let env = vec![("WEB_PORT", free_port().to_string())];
    let _down = Down(&st, env.clone());
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = st.cmd(&[&["--engine", "swarm"], args].concat());
        for (k, v) in env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(extra.iter().copied())
        {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let (so, se) = crate::util::text(&o);
        (o.status.code().unwrap_or(-1), so, se)
    };
    let web = format!("{}_web", st.project);
    let cache = format!("{}_cache", st.project);

    // Deploy.
    let (code, so, se) = run(&["up", "--wait"], &[]);
    assert_eq!(code, 0, "{so}{se}");
    eprintln!("--engine swarm up --wait:\n{se}{so}");
    assert!(se.contains(&format!("{web}: created")), "{se}");
    assert!(se.contains("not published"), "the loopback-only port: {se}");
    let s = spec(&web);
    assert_eq!(s["Mode"]["Replicated"]["Replicas"], 2);
    let tt = &s["TaskTemplate"];
    assert_eq!(tt["Resources"]["Limits"]["NanoCPUs"], 500_000_000i64);
    assert_eq!(tt["Resources"]["Limits"]["MemoryBytes"], 64i64 << 20);
    assert_eq!(tt["Resources"]["Reservations"]["NanoCPUs"], 100_000_000i64);
    assert_eq!(tt["RestartPolicy"]["Condition"], "on-failure");
    assert_eq!(tt["RestartPolicy"]["MaxAttempts"], 5);
    assert_eq!(tt["Placement"]["Constraints"][0], "node.role == manager");
    assert_eq!(tt["ContainerSpec"]["Healthcheck"]["Retries"], 30);
    assert_eq!(
        tt["ContainerSpec"]["Labels"]["com.docker.compose.service"],
        "web"
    );
    let net = docker(&[
        "network",
        "inspect",
        &format!("{}_default", st.project),
        "--format",
        "{{.Driver}} {{.Scope}}",
    ])
    .1;
    assert_eq!(net.trim(), "overlay swarm");
    assert_eq!(
        spec(&cache)["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["Source"],
        format!("{}_cachedata", st.project)
    );

    // Tasks per node, as osmen shows them.
    let (code, so, _) = run(&["ps", "--json"], &[]);
    assert_eq!(code, 0);
    let ps: Value = serde_json::from_str(&so).unwrap();
    let hostname = docker(&["info", "--format", "{{.Name}}"]).1;
    let tasks = ps["tasks"].as_array().unwrap();
    assert_eq!(
        tasks
            .iter()
            .filter(|t| t["service"] == web.as_str())
            .count(),
        2,
        "{so}"
    );
    assert!(tasks.iter().all(|t| t["node"] == hostname.trim()), "{so}");
    // The console's collectors see the tasks as the project's containers.
    let o = st
        .cmd(&["ps", "--json"])
        .env("WEB_PORT", &env[0].1)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<Value> = serde_json::from_str(&so).unwrap();
    assert_eq!(
        rows.iter().filter(|r| r["service"] == "web").count(),
        2,
        "{so}"
    );

    // A GPU reservation no node can meet: said at once, with Swarm's reason.
    let (code, _, se) = run(&["--profile", "gpu", "up", "--wait", "gpu"], &[]);
    assert_eq!(code, 1, "{se}");
    assert!(se.contains("no suitable node"), "{se}");
    let g = spec(&format!("{}_gpu", st.project));
    assert_eq!(
        g["TaskTemplate"]["Resources"]["Reservations"]["GenericResources"][0]["DiscreteResourceSpec"],
        serde_json::json!({"Kind": "NVIDIA-GPU", "Value": 1})
    );

    // Scale: the running replicas stay, one is added.
    let before = running_containers(&web);
    let (code, so, se) = run(&["up", "--wait", "--scale", "web=3", "web"], &[]);
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(spec(&web)["Mode"]["Replicated"]["Replicas"], 3);
    let after = running_containers(&web);
    assert_eq!(after.len(), 3);
    assert!(
        before.iter().all(|c| after.contains(c)),
        "scaling replaced tasks"
    );
    // Unchanged file, unchanged services.
    let (code, _, se) = run(&["up"], &[]);
    assert_eq!(code, 0);
    assert!(se.contains(&format!("{cache}: unchanged")), "{se}");

    // New limits in the file: the service is updated, Swarm rolls the tasks.
    let (code, so, se) = run(&["up", "--wait"], &[("WEB_CPUS", "0.75")]);
    assert_eq!(code, 0, "{so}{se}");
    assert!(se.contains(&format!("{web}: updated")), "{se}");
    assert_eq!(
        spec(&web)["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"],
        750_000_000i64
    );

    // Remove: services and network go, the volume stays.
    let (code, _, se) = run(&["down"], &[]);
    assert_eq!(code, 0, "{se}");
    assert!(!docker(&["service", "inspect", &web]).0);
    assert!(docker(&["volume", "inspect", &format!("{}_cachedata", st.project)]).0);
    assert!(wait_until(Duration::from_secs(20), || !docker(&[
        "network",
        "inspect",
        &format!("{}_default", st.project)
    ])
    .0));
}

/// A suggestion applied on a Swarm is a service update. bollard reads a service back
/// without its health check (the engine writes `Healthcheck`, bollard's model expects
/// `HealthCheck`), so an update built from what bollard read would remove the check:
/// shown here, and osmen's update puts the file's check back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_updates_keep_the_health_check_bollard_drops() {
    if !docker_ready() {
        return;
    }
    let _swarm = tokio::task::block_in_place(SwarmGuard::ensure);
    let st = Stack::new("swarm", "swarmupd");
    let env = vec![("WEB_PORT", free_port().to_string())];
    let _down = Down(&st, env.clone());
    let o = tokio::task::block_in_place(|| {
        let mut c = st.cmd(&["--engine", "swarm", "up", "web"]);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.output().unwrap()
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let engine = osmen::stack::engine::DockerEngine::connect().await.unwrap();
    let opts = osmen::stack::compose::LoadOptions {
        project_name: Some(st.project.clone()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let project = osmen::stack::compose::load(&st.path("docker-compose.yml"), &opts).unwrap();
    let web = format!("{}_web", st.project);
    let read = engine
        .api()
        .inspect_service(
            &web,
            None::<bollard::query_parameters::InspectServiceOptions>,
        )
        .await
        .unwrap();
    let cs = read
        .spec
        .unwrap()
        .task_template
        .unwrap()
        .container_spec
        .unwrap();
    assert!(
        cs.health_check.is_none(),
        "bollard now reads the health check back: the workaround in swarm::update can go"
    );
    assert_eq!(
        spec(&web)["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Retries"],
        30
    );
    osmen::stack::swarm::update(
        &engine,
        &project,
        "web",
        Some(1),
        Some(0.25),
        Some(32 << 20),
    )
    .await
    .unwrap();
    let s = spec(&web);
    assert_eq!(s["Mode"]["Replicated"]["Replicas"], 1);
    assert_eq!(
        s["TaskTemplate"]["Resources"]["Limits"]["NanoCPUs"],
        250_000_000i64
    );
    assert_eq!(
        s["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"],
        32i64 << 20
    );
    assert_eq!(
        s["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Retries"], 30,
        "the update removed the health check"
    );
}

/// The container settings and Swarm's own deploy keys reach the ServiceSpec as the
/// engine stores it; what a service has no field for is named on stderr, one line per
/// service and key.
#[test]
fn swarm_carries_container_settings_and_deploy_keys() {
    if !docker_ready() {
        return;
    }
    let _swarm = SwarmGuard::ensure();
    let st = Stack::new("swarm-settings", "swarmset");
    let _down = Down(&st, Vec::new());
    // --wait: a global service's task (one per node) runs before up returns.
    let o = st
        .cmd(&["--engine", "swarm", "up", "--wait"])
        .output()
        .unwrap();
    let (so, se) = crate::util::text(&o);
    assert!(o.status.success(), "{so}{se}");
    for key in ["privileged", "devices"] {
        let line = format!("hard: {key}: a Swarm service has no form for it");
        assert!(se.contains(&line), "stderr lacks {line:?}:\n{se}");
    }
    for carried in [
        "cap_drop",
        "sysctls",
        "ulimits",
        "extra_hosts",
        "dns",
        "hostname",
    ] {
        assert!(
            !se.contains(&format!("hard: {carried}:")),
            "{carried} named:\n{se}"
        );
    }
    let s = spec(&format!("{}_hard", st.project));
    let c = &s["TaskTemplate"]["ContainerSpec"];
    assert_eq!(c["CapabilityAdd"], serde_json::json!(["NET_ADMIN"]));
    assert_eq!(c["CapabilityDrop"], serde_json::json!(["ALL"]));
    assert_eq!(c["ReadOnly"], true);
    assert_eq!(c["Sysctls"]["net.core.somaxconn"], "1024");
    assert_eq!(
        c["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(c["Hosts"], serde_json::json!(["10.0.0.1 one.test"]));
    assert_eq!(
        c["DNSConfig"],
        serde_json::json!({
            "Nameservers": ["10.0.0.53"],
            "Search": ["example.test"],
            "Options": ["ndots:2"]
        })
    );
    assert_eq!(c["Hostname"], "hard-host");
    assert_eq!(c["Init"], true);
    // Engines before API 1.46 drop NoNewPrivileges unread: then osmen says so.
    assert!(
        c["Privileges"]["NoNewPrivileges"] == true
            || se.contains("hard: security_opt no-new-privileges: this engine dropped"),
        "{c}\n{se}"
    );
    assert_eq!(s["Mode"], serde_json::json!({"Global": {}}));
    assert_eq!(s["EndpointSpec"]["Mode"], "dnsrr");
    assert_eq!(s["Labels"]["tier"], "hard");
    let u = &s["UpdateConfig"];
    assert_eq!(
        (
            &u["Parallelism"],
            &u["Delay"],
            &u["Order"],
            &u["FailureAction"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(1_000_000_000i64),
            &serde_json::json!("stop-first"),
            &serde_json::json!("continue")
        )
    );
    assert_eq!(s["RollbackConfig"]["Parallelism"], 1);
    assert_eq!(s["RollbackConfig"]["FailureAction"], "pause");
    let tasks = running_containers(&format!("{}_hard", st.project));
    assert_eq!(tasks.len(), 1, "one task on the one node:\n{se}");
    // A global service has no replica count to scale.
    let o = st
        .cmd(&["--engine", "swarm", "up", "--scale", "hard=2", "hard"])
        .output()
        .unwrap();
    let (so, se) = crate::util::text(&o);
    assert!(!o.status.success(), "{so}{se}");
    assert!(se.contains("is a global service"), "{se}");
}
