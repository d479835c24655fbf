//! The repository's own docker-compose.yml must be the stack the performance guide
//! describes: its services, the "Docker Container Allocation" limits, health checks,
//! dependency conditions, loopback-only ports, and the ollama/scale profiles.

use std::collections::BTreeMap;

use osmen::stack::compose::{Condition, HealthTest, LoadOptions, Project, load};

use crate::util::root;

fn shipped() -> Project {
    let env: BTreeMap<String, String> = [("POSTGRES_PASSWORD", "pw")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LoadOptions {
        project_name: None,
        env,
    };
    load(&root().join("docker-compose.yml"), &opts).unwrap()
}

const GIB: u64 = 1 << 30;

#[test]
fn limits_follow_the_guides_allocation_table() {
    let p = shipped();
    let table = [
        ("langflow", 2.0, 4 * GIB),
        ("n8n", 2.0, 2 * GIB),
        ("postgres", 2.0, 4 * GIB),
        ("qdrant", 2.0, 4 * GIB),
        ("redis", 1.0, 2 * GIB),
        ("gateway", 2.0, 2 * GIB),
        ("ollama", 4.0, 8 * GIB),
        // Not in the guide's table: the nginx in front of the gateway replicas.
        ("gateway-lb", 0.5, GIB / 4),
    ];
    assert_eq!(p.services.len(), table.len());
    for (svc, cpus, mem) in table {
        let r = &p.services[svc].resources;
        assert_eq!(r.cpus, Some(cpus), "{svc} cpus");
        assert_eq!(r.memory, Some(mem), "{svc} memory");
    }
}

#[test]
fn every_service_has_an_exec_form_health_check() {
    let p = shipped();
    for (name, svc) in &p.services {
        let hc = svc
            .healthcheck
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no healthcheck"));
        assert!(
            matches!(hc.test, Some(HealthTest::Exec(_))),
            "{name}: use the exec form (images without a shell never turn healthy)"
        );
    }
}

#[test]
fn dependencies_profiles_ports_and_gpu() {
    let p = shipped();
    for svc in ["langflow", "n8n"] {
        assert_eq!(
            p.services[svc].depends_on["postgres"].condition,
            Condition::ServiceHealthy
        );
    }
    assert_eq!(p.services["ollama"].profiles, vec!["ollama".to_string()]);
    let gpu = &p.services["ollama"].resources.gpus;
    assert_eq!(
        (gpu.len(), gpu[0].driver.as_str(), gpu[0].count),
        (1, "nvidia", None)
    );
    assert_eq!(gpu[0].capabilities, vec!["gpu".to_string()]);
    let gw = &p.services["gateway"];
    assert_eq!(gw.profiles, vec!["scale".to_string()]);
    assert_eq!(gw.replicas, 3);
    assert_eq!(gw.command.as_ref().unwrap()[0], "gateway");
    // Regression: the shipped command once said `--bind`, which `osmen gateway` rejects,
    // and set OSMEN_API_KEY, which the gateway does not read.
    let argv = std::iter::once("osmen".to_string()).chain(gw.command.clone().unwrap());
    if let Err(e) = <osmen::cli::Cli as clap::Parser>::try_parse_from(argv) {
        panic!("the gateway service's command does not parse: {e}");
    }
    assert!(gw.environment.contains_key("OSMEN_API_KEYS"));
    for (name, svc) in &p.services {
        for port in &svc.ports {
            assert_eq!(
                port.host_ip.as_deref(),
                Some("127.0.0.1"),
                "{name}: {port:?}"
            );
        }
    }
    for v in [
        "postgres_data",
        "redis_data",
        "qdrant_data",
        "ollama_models",
    ] {
        assert!(p.volumes.contains_key(v), "{v}");
    }
    let none: Vec<String> = Vec::new();
    let core = p.active_services(&none, &none);
    assert_eq!(core.len(), 5, "{core:?}");
}

#[test]
fn refuses_to_load_without_the_database_password() {
    let opts = LoadOptions::default();
    let e = load(&root().join("docker-compose.yml"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("POSTGRES_PASSWORD") && e.contains("docker-compose.yml:"),
        "{e}"
    );
}

#[test]
fn shipped_settings_file_states_the_true_defaults() {
    use osmen::model::config::Config;
    let path = root().join("config/osmen.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = Config::parse(&text, "config/osmen.toml").unwrap();
    assert_eq!(parsed, Config::default());
}
