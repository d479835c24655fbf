use std::path::{Path, PathBuf};

use super::super::{LoadOptions, Project, load_str};

/// A project directory of its own with a secret file and a config file in it.
fn dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("osmen-objects-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("db_password.txt"), "s3cret-value").unwrap();
    std::fs::write(d.join("app.conf"), "listen 80;").unwrap();
    d
}

fn load_in(d: &Path, src: &str, env: &[(&str, &str)]) -> Result<Project, String> {
    let opts = LoadOptions {
        project_name: Some("t".into()),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    load_str(src, &d.join("compose.yml"), &opts).map_err(|e| e.to_string())
}

fn load(src: &str) -> Result<Project, String> {
    load_in(&dir(), src, &[("TOKEN", "tok-123")])
}

const SECRETS: &str = "services:\n  a:\n    image: i\n    secrets:\n      - db\n      - \
                       source: token\n        target: api_token\n        uid: \"103\"\n        \
                       gid: \"104\"\n        mode: 0440\n    configs:\n      - app\n      - \
                       source: inline\n        target: /etc/inline.conf\n\
                       secrets:\n  db:\n    file: ./db_password.txt\n  token:\n    \
                       environment: TOKEN\n\
                       configs:\n  app:\n    file: app.conf\n  inline:\n    content: |\n      \
                       a = 1\n";

#[test]
fn secrets_and_configs_are_read_with_targets_as_compose_resolves_them() {
    let p = load(SECRETS).unwrap();
    let a = &p.services["a"];
    assert_eq!(a.secrets[0].target, "/run/secrets/db");
    assert_eq!(a.secrets[1].target, "/run/secrets/api_token");
    assert_eq!(
        (a.secrets[1].uid, a.secrets[1].gid, a.secrets[1].mode),
        (Some(103), Some(104), Some(0o440))
    );
    assert_eq!(a.configs[0].target, "/app");
    assert_eq!(a.configs[1].target, "/etc/inline.conf");
    assert!(p.secrets["db"].file.as_ref().unwrap().is_absolute());
    assert_eq!(p.secrets["token"].value.as_deref(), Some("tok-123"));
    assert_eq!(p.configs["inline"].content.as_deref(), Some("a = 1\n"));
    assert_eq!(p.secrets["db"].name, "t_db");
}

#[test]
fn config_prints_definitions_never_secret_values() {
    let p = load(SECRETS).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    assert!(json.contains("\"environment\":\"TOKEN\""), "{json}");
    assert!(json.contains("db_password.txt"), "{json}");
    assert!(json.contains("\"mode\":\"0440\""), "{json}");
    assert!(!json.contains("tok-123"), "{json}");
    assert!(!json.contains("s3cret-value"), "{json}");
    assert!(
        !format!("{:?}", p.secrets).contains("tok-123"),
        "a Debug print shows the value"
    );
}

#[test]
fn bad_secrets_and_configs_name_file_line_key_and_fix() {
    let d = dir();
    let f = d.join("compose.yml").display().to_string();
    let svc = "services:\n  a:\n    image: i\n";
    for (src, at, words) in [
        (
            format!("{svc}secrets:\n  s:\n    file: ./missing.txt\n"),
            ":6:11",
            vec!["secrets.s.file", "missing.txt", "does not exist"],
        ),
        (
            format!("{svc}secrets:\n  s:\n    external: true\n"),
            ":6:5",
            vec!["secrets.s.external", "Swarm", "`file:` or `environment:`"],
        ),
        (
            format!("{svc}secrets:\n  s:\n    environment: UNSET_VAR_X\n"),
            ":6:18",
            vec!["secrets.s.environment", "UNSET_VAR_X", "is not set"],
        ),
        (
            format!("{svc}secrets:\n  s:\n    content: x\n"),
            ":6:14",
            vec!["secrets.s.content", "unknown key"],
        ),
        (
            format!("{svc}secrets:\n  s:\n    file: db_password.txt\n    driver: vault\n"),
            ":7:13",
            vec!["secrets.s.driver", "Swarm setting"],
        ),
        (
            format!("{svc}configs:\n  c:\n    file: app.conf\n    content: x\n"),
            ":5:3",
            vec!["configs.c", "exactly one source", "file and content"],
        ),
        (
            format!("{svc}configs:\n  c: {{}}\n"),
            ":5:3",
            vec!["configs.c", "exactly one source", "none"],
        ),
        (
            "services:\n  a:\n    image: i\n    secrets: [nope]\n".to_string(),
            ":4:15",
            vec!["services.a.secrets[0]", "`nope` is not declared"],
        ),
        (
            "services:\n  a:\n    image: i\n    configs:\n      - target: /x\n".to_string(),
            ":5:",
            vec!["services.a.configs[0]", "`source:` is required"],
        ),
        (
            "services:\n  a:\n    image: i\n    secrets:\n      - {source: s, mode: 0999}\n\
             secrets:\n  s:\n    file: db_password.txt\n"
                .to_string(),
            ":5:27",
            vec!["services.a.secrets[0].mode", "\"0999\"", "octal"],
        ),
    ] {
        let e = load_in(&d, &src, &[]).unwrap_err();
        assert!(e.contains(&format!("{f}{at}")), "{at} in:\n{e}");
        for w in words {
            assert!(e.contains(w), "{w:?} in:\n{e}");
        }
    }
}

#[test]
fn top_level_network_and_volume_options_are_read() {
    let p = load(
        "services:\n  a:\n    image: i\n    networks: [n]\n    volumes: [v:/v]\n\
         networks:\n  n:\n    driver: bridge\n    driver_opts:\n      \
         com.docker.network.bridge.name: br-osm\n    labels: [tier=front]\n    \
         internal: true\n    attachable: true\n    enable_ipv6: true\n    ipam:\n      \
         driver: default\n      config:\n        - subnet: 172.28.0.0/16\n          \
         ip_range: 172.28.5.0/24\n          gateway: 172.28.5.254\n          \
         aux_addresses: {host1: 172.28.1.5}\n      options: {foo: bar}\n\
         volumes:\n  v:\n    driver: local\n    driver_opts: {type: tmpfs, device: tmpfs}\n    \
         labels: {team: data}\n",
    )
    .unwrap();
    let n = &p.networks["n"];
    assert!(n.internal && n.attachable && n.enable_ipv6);
    assert_eq!(n.driver_opts["com.docker.network.bridge.name"], "br-osm");
    assert_eq!(n.labels["tier"], "front");
    let ipam = n.ipam.as_ref().unwrap();
    assert_eq!(ipam.config[0].subnet.as_deref(), Some("172.28.0.0/16"));
    assert_eq!(ipam.config[0].gateway.as_deref(), Some("172.28.5.254"));
    assert_eq!(ipam.config[0].aux_addresses["host1"], "172.28.1.5");
    assert_eq!(ipam.options["foo"], "bar");
    let v = &p.volumes["v"];
    assert_eq!(v.driver_opts["type"], "tmpfs");
    assert_eq!(v.labels["team"], "data");
}

#[test]
fn bad_network_options_name_file_line_key_and_value() {
    let d = dir();
    let f = d.join("compose.yml").display().to_string();
    let svc = "services:\n  a:\n    image: i\n";
    for (src, at, words) in [
        (
            format!("{svc}networks:\n  n:\n    ipam: {{config: [{{subnet: 10.0.0.0}}]}}\n"),
            ":6:30",
            vec!["networks.n.ipam.config[0].subnet", "\"10.0.0.0\"", "CIDR"],
        ),
        (
            format!("{svc}networks:\n  n:\n    enable_ipv4: false\n"),
            ":6:5",
            vec!["networks.n.enable_ipv4", "API 1.47"],
        ),
        (
            format!("{svc}networks:\n  n:\n    internal: maybe\n"),
            ":6:15",
            vec!["networks.n.internal", "\"maybe\""],
        ),
        (
            format!("{svc}volumes:\n  v:\n    ipam: {{}}\n"),
            ":6:5",
            vec!["volumes.v.ipam", "unknown key"],
        ),
        (
            "services:\n  a:\n    image: i\n    networks:\n      default:\n        \
             ipv4_address: 10.0.0.300\n"
                .to_string(),
            ":6:23",
            vec!["services.a.networks.default.ipv4_address", "\"10.0.0.300\""],
        ),
        (
            "services:\n  a:\n    image: i\n    networks:\n      default:\n        \
             gw_priority: 1\n"
                .to_string(),
            ":6:9",
            vec!["services.a.networks.default.gw_priority", "not applied"],
        ),
    ] {
        let e = load_in(&d, &src, &[]).unwrap_err();
        assert!(e.contains(&format!("{f}{at}")), "{at} in:\n{e}");
        for w in words {
            assert!(e.contains(w), "{w:?} in:\n{e}");
        }
    }
}

#[test]
fn external_objects_refuse_options_and_targets_do_not_collide() {
    let e = load(
        "services:\n  a:\n    image: i\nnetworks:\n  n:\n    external: true\n    \
         driver: bridge\nvolumes:\n  v:\n    external: true\n    labels: {a: b}\n",
    )
    .unwrap_err();
    for w in [
        ":7:13: networks.n.driver: conflicting parameters `external` and `driver`",
        ":11:13: volumes.v.labels: conflicting parameters `external` and `labels`",
    ] {
        assert!(e.contains(w), "{w:?} in {e}");
    }
    let e = load(
        "services:\n  a:\n    image: i\n    secrets: [s, {source: s, target: s}]\n\
         secrets:\n  s: {file: db_password.txt}\n",
    )
    .unwrap_err();
    assert!(
        e.contains(":4:14: services.a.secrets: `s` would land on /run/secrets/s"),
        "{e}"
    );
}

#[test]
fn static_addresses_and_priority_are_read() {
    let p = load(
        "services:\n  a:\n    image: i\n    networks:\n      front:\n        \
         ipv4_address: 172.28.0.10\n        ipv6_address: 2001:db8::10\n        \
         link_local_ips: [169.254.8.8]\n        priority: 10\n        aliases: [web]\n      \
         back: {}\nnetworks:\n  front: {}\n  back: {}\n",
    )
    .unwrap();
    let n = &p.services["a"].networks["front"];
    assert_eq!(n.ipv4_address.as_deref(), Some("172.28.0.10"));
    assert_eq!(n.ipv6_address.as_deref(), Some("2001:db8::10"));
    assert_eq!(n.link_local_ips, vec!["169.254.8.8"]);
    assert_eq!(n.priority, Some(10));
    assert_eq!(n.aliases, vec!["web"]);
    // Aliases alone keep the form existing containers' config hash was taken on.
    let json = serde_json::to_value(&p.services["a"].networks).unwrap();
    assert_eq!(json["back"], serde_json::json!([]));
    assert_eq!(json["front"]["ipv4_address"], "172.28.0.10");
    assert_eq!(json["front"]["aliases"], serde_json::json!(["web"]));
}
