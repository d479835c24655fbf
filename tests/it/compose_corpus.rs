//! The compose corpus: every valid file loads; every invalid one fails with the message
//! its `# expect:` lines name (file, line, column, key path, value and the fix).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use osmen::stack::compose::{
    Condition, HealthTest, LoadOptions, MountKind, Project, Restart, load,
};

use crate::util::root;

fn opts(env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        project_name: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn corpus(kind: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/compose").join(kind))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_valid_file_loads() {
    let files = corpus("valid");
    assert!(files.len() >= 2);
    for f in files {
        let r = load(
            &f,
            &opts(&[("POSTGRES_PASSWORD", "s3cret"), ("HOME", "/home/op")]),
        );
        assert!(r.is_ok(), "{}: {}", f.display(), r.unwrap_err());
    }
}

#[test]
fn every_invalid_file_fails_with_its_expected_message() {
    let files = corpus("invalid");
    assert!(files.len() >= 15);
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expects.is_empty(),
            "{} has no `# expect:` line",
            f.display()
        );
        let err = match load(&f, &opts(&[])) {
            Ok(_) => panic!("{} loaded but must fail", f.display()),
            Err(e) => e.to_string(),
        };
        for want in expects {
            if !err.contains(want) {
                problems.push(format!(
                    "{}:\n  expected to contain: {want}\n  got: {err}",
                    f.display()
                ));
            }
        }
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(err.contains(&name), "the message must name the file: {err}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn full() -> Project {
    let f = root().join("tests/fixtures/compose/valid/full.yml");
    load(
        &f,
        &opts(&[("POSTGRES_PASSWORD", "s3cret"), ("FROM_HOST", "h")]),
    )
    .unwrap()
}

#[test]
fn full_file_resolves_names_interpolation_and_anchors() {
    let p = full();
    assert_eq!(p.name, "full_stack");
    let pg = &p.services["postgres"];
    assert_eq!(pg.environment["POSTGRES_PASSWORD"], "s3cret");
    assert_eq!(pg.environment["POSTGRES_DB"], "osmen");
    assert_eq!(pg.environment["FROM_HOST"], "h");
    assert_eq!(
        pg.restart,
        Restart::UnlessStopped,
        "from the merged x-common anchor"
    );
    assert_eq!(pg.labels["team"], "ops");
    assert_eq!(pg.logging.as_ref().unwrap().options["max-file"], "3");
    assert_eq!(pg.container_name.as_deref(), Some("osmen-postgres"));
    let redis = &p.services["redis"];
    assert_eq!(
        redis.command.as_ref().unwrap(),
        &[
            "redis-server",
            "--appendonly",
            "yes",
            "--requirepass",
            "dev pass"
        ]
    );
    assert_eq!(redis.environment["REDIS_REPLICATION_MODE"], "master");
    assert_eq!(
        redis.restart,
        Restart::OnFailure(Some(3)),
        "own key beats the anchor"
    );
    assert_eq!(p.services["migrate"].command.as_ref().unwrap()[2], "$5");
}

#[test]
fn full_file_healthchecks_and_dependencies() {
    let p = full();
    let hc = p.services["postgres"].healthcheck.clone().unwrap();
    assert_eq!(
        hc.test,
        Some(HealthTest::Shell("pg_isready -U postgres".into()))
    );
    assert_eq!(hc.interval, Some(Duration::from_secs(90)));
    assert_eq!(hc.start_period, Some(Duration::from_secs(40)));
    assert_eq!(hc.retries, Some(3));
    assert_eq!(
        p.services["redis"].healthcheck.as_ref().unwrap().test,
        Some(HealthTest::Shell("redis-cli ping".into()))
    );
    assert_eq!(
        p.services["ollama"].healthcheck.as_ref().unwrap().test,
        Some(HealthTest::Exec(vec!["ollama".into(), "list".into()]))
    );
    let gw = &p.services["gateway"];
    assert_eq!(
        gw.healthcheck.as_ref().unwrap().test,
        Some(HealthTest::Disabled)
    );
    assert_eq!(
        gw.depends_on["postgres"].condition,
        Condition::ServiceHealthy
    );
    assert!(!gw.depends_on["redis"].required);
    assert_eq!(
        gw.depends_on["migrate"].condition,
        Condition::ServiceCompletedSuccessfully
    );
    assert_eq!(
        p.services["migrate"].depends_on["postgres"].condition,
        Condition::ServiceStarted
    );
}

#[test]
fn full_file_ports_volumes_networks() {
    let p = full();
    let pg = &p.services["postgres"];
    assert_eq!(pg.ports[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        (pg.ports[0].host_port(), pg.ports[0].target),
        (Some(5432), 5432)
    );
    let redis = &p.services["redis"];
    assert_eq!(redis.ports[0].host_port(), Some(6379));
    let ollama = &p.services["ollama"];
    assert_eq!(ollama.ports[1].host_ip.as_deref(), Some("::1"));
    assert_eq!(ollama.ports[1].host_port(), Some(11435));
    let gw = &p.services["gateway"];
    assert_eq!(gw.ports.len(), 3);
    assert_eq!(
        (gw.ports[1].host_port(), gw.ports[1].target),
        (Some(8081), 8081)
    );
    assert_eq!((gw.ports[2].host_port(), gw.ports[2].target), (None, 9000));
    assert_eq!(gw.networks["backend"].aliases, vec!["api".to_string()]);
    assert_eq!(p.networks["backend"].name, "full_stack_backend");
    assert_eq!(p.networks["outside"].name, "outside");
    assert!(p.networks["outside"].external);

    assert_eq!(pg.volumes[0].kind, MountKind::Volume);
    assert_eq!(pg.volumes[0].source.as_deref(), Some("pgdata"));
    assert_eq!(pg.volumes[1].kind, MountKind::Bind);
    assert!(pg.volumes[1].read_only);
    let bind = pg.volumes[1].source.clone().unwrap();
    assert!(
        Path::new(&bind).is_absolute() && bind.ends_with("valid/init"),
        "{bind}"
    );
    assert_eq!(ollama.volumes[1].kind, MountKind::Tmpfs);
    assert_eq!(p.volumes["models"].name, "shared-models");
    assert_eq!(p.volumes["pgdata"].name, "full_stack_pgdata");
}

#[test]
fn full_file_resources_gpus_replicas_profiles() {
    let p = full();
    let pg = &p.services["postgres"].resources;
    assert_eq!(pg.cpus, Some(2.0));
    assert_eq!(pg.memory, Some(4 << 30));
    assert_eq!(pg.cpus_reservation, Some(0.5));
    assert_eq!(pg.memory_reservation, Some(512 << 20));
    let redis = &p.services["redis"].resources;
    assert_eq!((redis.cpus, redis.memory), (Some(1.0), Some(2 << 30)));
    let ollama = &p.services["ollama"];
    assert_eq!(ollama.resources.gpus.len(), 1);
    assert_eq!(ollama.resources.gpus[0].driver, "nvidia");
    assert_eq!(ollama.resources.gpus[0].count, None, "count: all");
    assert_eq!(
        ollama.resources.gpus[0].capabilities,
        vec!["gpu".to_string()]
    );
    let gw = &p.services["gateway"];
    assert_eq!(gw.replicas, 3);
    assert_eq!(gw.resources.gpus[0].count, None);
    assert_eq!(gw.stop_grace_period, Some(Duration::from_secs(30)));
    assert_eq!(gw.labels["traefik.enable"], "true");
    assert_eq!(ollama.profiles, vec!["ollama".to_string()]);
    let none: Vec<String> = vec![];
    let active = p.active_services(&none, &none);
    assert!(
        active.contains("postgres") && !active.contains("ollama") && !active.contains("gateway")
    );
    let active = p.active_services(&["ollama".into()], &none);
    assert!(active.contains("ollama"));
}

#[test]
fn dotenv_beside_the_file_and_process_env_override() {
    let dir = std::env::temp_dir().join(format!("osmen-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), "TAG=from-dotenv\nPORT=8080\n").unwrap();
    std::fs::write(dir.join("app.env"), "# settings\nMODE=prod\nAPI_KEY=k\n").unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        "services:\n  web:\n    image: \"web:${TAG}\"\n    env_file: app.env\n    \
         environment: {MODE: dev}\n    ports: [\"127.0.0.1:${PORT}:80\"]\n",
    )
    .unwrap();
    let f = dir.join("docker-compose.yml");
    let p = load(&f, &opts(&[])).unwrap();
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("web:from-dotenv"));
    assert_eq!(web.ports[0].host_port(), Some(8080));
    assert_eq!(web.environment["MODE"], "dev", "environment beats env_file");
    assert_eq!(web.environment["API_KEY"], "k");
    let p = load(&f, &opts(&[("TAG", "from-env")])).unwrap();
    assert_eq!(p.services["web"].image.as_deref(), Some("web:from-env"));
    assert!(
        p.name.starts_with("osmen-dotenv-"),
        "directory name: {}",
        p.name
    );
    std::fs::write(dir.join(".env"), "TAG=ok\nthis line is wrong\n").unwrap();
    let e = load(&f, &opts(&[])).unwrap_err().to_string();
    assert!(
        e.contains(".env:2:1") && e.contains("contains a space"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
