use super::*;
use crate::stack::compose::{LoadOptions, Project, load_str};
use std::collections::BTreeSet;
use std::path::Path;

fn load(src: &str) -> Result<Project, String> {
    let opts = LoadOptions {
        project_name: Some("t".into()),
        ..LoadOptions::default()
    };
    load_str(src, Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
}

fn spec_keys() -> BTreeSet<String> {
    let f = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/compose/spec-service-keys.txt"
    );
    std::fs::read_to_string(f)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_spec_service_key_is_applied_or_refused_once() {
    let keys = spec_keys();
    assert_eq!(keys.len(), 93);
    let applied: BTreeSet<String> = APPLIED_KEYS.iter().map(|k| k.to_string()).collect();
    let refused: BTreeSet<String> = REFUSED_KEYS.iter().map(|(k, _)| k.to_string()).collect();
    assert!(
        applied.is_disjoint(&refused),
        "{:?}",
        applied.intersection(&refused)
    );
    let handled: BTreeSet<String> = applied.union(&refused).cloned().collect();
    assert_eq!(
        keys.difference(&handled).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "spec keys neither applied nor refused"
    );
    assert_eq!(
        handled.difference(&keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys osmen lists that the spec does not have"
    );
}

/// The fixture is the schema's list: regenerate it with
/// `jq -r '."$defs".service.properties|keys[]' compose-spec.json` when the schema moves.
#[test]
fn spec_key_fixture_matches_the_schema_beside_the_project() {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/compose-spec.json"
    );
    let Ok(text) = std::fs::read_to_string(schema) else {
        eprintln!("skipped: no {schema}");
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let from_schema: BTreeSet<String> = v["$defs"]["service"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(from_schema, spec_keys());
}

#[test]
fn every_refused_key_is_refused_at_load_with_line_and_reason() {
    for (key, why) in REFUSED_KEYS {
        let src = format!("services:\n  a:\n    image: i\n    {key}: x\n");
        let err = load(&src).unwrap_err();
        assert!(
            err.contains(&format!(
                "/x/compose.yml:4:5: services.a.{key}: service key `{key}` is refused: {why}"
            )),
            "{key}: {err}"
        );
    }
}

#[test]
fn every_applied_key_is_known_to_the_parser() {
    // A key the parser did not know would be reported as unknown.
    for key in APPLIED_KEYS {
        let src = format!("services:\n  a:\n    image: i\n    {key}: 7\n");
        if let Err(e) = load(&src) {
            assert!(!e.contains("unknown service key"), "{key}: {e}");
        }
    }
}

const ALL: &str = "name: t\nservices:\n  db: {image: i}\n  a:\n    image: i\n    \
    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    privileged: false\n    read_only: true\n    \
    security_opt: ['no-new-privileges:true']\n    tmpfs: /run\n    shm_size: 128m\n    \
    ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}\n    \
    sysctls: ['net.core.somaxconn=1024']\n    devices: ['/dev/null:/dev/xnull:rw']\n    \
    extra_hosts: ['one:10.0.0.1', 'two=10.0.0.2', 'six=[::1]']\n    dns: 8.8.8.8\n    \
    dns_search: [example.com]\n    dns_opt: [ndots:2]\n    hostname: h\n    domainname: d.x\n    \
    tty: true\n    stdin_open: true\n    ipc: shareable\n    pid: host\n    expose: ['80', '9000-9001/udp']\n    \
    group_add: ['100']\n    oom_score_adj: -500\n    oom_kill_disable: true\n    cpu_shares: 512\n    \
    cpu_period: 100ms\n    cpu_quota: 50000\n    cpuset: '0'\n    mem_swappiness: 10\n    \
    memswap_limit: 1g\n    pids_limit: 100\n    links: ['db:database']\n    scale: 1\n";

#[test]
fn settings_are_read_as_compose_writes_them() {
    let p = load(ALL).unwrap();
    let a = &p.services["a"];
    let st = &a.settings;
    assert_eq!(st.cap_drop, ["ALL"]);
    assert_eq!(st.read_only, Some(true));
    assert_eq!(st.tmpfs, ["/run"]);
    assert_eq!(st.shm_size, Some(128 << 20));
    assert_eq!(
        st.ulimits["nproc"],
        Ulimit {
            soft: 65535,
            hard: 65535
        }
    );
    assert_eq!(
        st.ulimits["nofile"],
        Ulimit {
            soft: 1024,
            hard: 2048
        }
    );
    assert_eq!(st.sysctls["net.core.somaxconn"], "1024");
    assert_eq!(st.devices[0].target, "/dev/xnull");
    assert_eq!(st.devices[0].permissions, "rw");
    assert_eq!(st.extra_hosts, ["one:10.0.0.1", "two:10.0.0.2", "six:::1"]);
    assert_eq!(st.dns, ["8.8.8.8"]);
    assert_eq!(st.cpu_period, Some(100_000));
    assert_eq!(st.memswap_limit, Some(1 << 30));
    assert_eq!(st.exposed_ports(), ["80/tcp", "9000/udp", "9001/udp"]);
    // links make the linked service a dependency, started first.
    assert!(a.depends_on.contains_key("db"));
}

#[test]
fn map_forms_of_extra_hosts_and_sysctls() {
    let p = load(
        "services:\n  a:\n    image: i\n    extra_hosts: {one: 10.0.0.1, gw: host-gateway}\n    \
         sysctls: {net.ipv4.ip_forward: 1}\n",
    )
    .unwrap();
    let st = &p.services["a"].settings;
    assert_eq!(st.extra_hosts, ["one:10.0.0.1", "gw:host-gateway"]);
    assert_eq!(st.sysctls["net.ipv4.ip_forward"], "1");
}

#[test]
fn bad_values_name_file_line_key_and_value() {
    let cases = [
        (
            "ulimits: {nofile: {soft: 10, hard: 5}}",
            "4:23: services.a.ulimits.nofile: soft limit 10 is above the hard limit 5",
        ),
        (
            "ulimits: {nofile: {soft: 10}}",
            "services.a.ulimits.nofile: a ulimit mapping needs `soft` and `hard`",
        ),
        (
            "extra_hosts: ['nohost']",
            "4:19: services.a.extra_hosts[0]: invalid extra host \"nohost\"",
        ),
        (
            "extra_hosts: ['db:not-an-ip']",
            "the address must be an IP or host-gateway",
        ),
        (
            "oom_score_adj: 5000",
            "services.a.oom_score_adj: 5000 is out of range: use a number between -1000 and 1000",
        ),
        (
            "mem_swappiness: x",
            "services.a.mem_swappiness: expected a whole number, found \"x\"",
        ),
        (
            "network_mode: 'service:'",
            "services.a.network_mode: invalid mode \"service:\"",
        ),
        (
            "pid: private",
            "services.a.pid: invalid mode \"private\": use host, service:NAME, container:NAME",
        ),
        (
            "cap_drop: ALL",
            "services.a.cap_drop: expected a list, found the string \"ALL\"",
        ),
        (
            "tmpfs: run",
            "invalid tmpfs \"run\": the container path must be absolute",
        ),
        (
            "devices: ['/dev/x:/dev/y:rwz']",
            "invalid device /dev/x:/dev/y:rwz",
        ),
        ("devices: ['nvidia.com/gpu=all']", "is a CDI device name"),
        ("expose: ['http']", "invalid exposed port \"http\""),
        ("cpuset: 'a-b'", "invalid cpuset \"a-b\""),
        (
            "cpu_period: soon",
            "invalid value \"soon\": write microseconds",
        ),
        (
            "memswap_limit: lots",
            "services.a.memswap_limit: invalid size \"lots\"",
        ),
        ("mac_address: 02:42", "invalid MAC address \"02:42\""),
        (
            "network_mode: 'service:nope'",
            "services.a.network_mode: unknown service `nope`",
        ),
        ("links: [nope]", "services.a.links: unknown service `nope`"),
        (
            "volumes_from: ['nope:ro']",
            "services.a.volumes_from: unknown service `nope`",
        ),
        ("volumes_from: ['db:rx']", "invalid volumes_from \"db:rx\""),
        (
            "blkio_config: {weight: 5}",
            "services.a.blkio_config.weight: 5 is out of range: use a number between 10 and 1000",
        ),
        (
            "blkio_config: {device_read_bps: [{path: /dev/sda}]}",
            "services.a.blkio_config.device_read_bps[0]: write {path: /dev/sda, rate: ...}",
        ),
        (
            "blkio_config: {wieght: 5}",
            "unknown blkio_config key `wieght`",
        ),
        (
            "network_mode: host\n    networks: [default]",
            "network_mode \"host\" and networks cannot be combined",
        ),
        (
            "network_mode: host\n    ports: ['80:80']",
            "5:12: services.a.ports: ports cannot be published with network_mode \"host\"",
        ),
        (
            "scale: 2\n    deploy: {replicas: 3}",
            "services.a.scale: can't set distinct values on 'scale' and 'deploy.replicas' (scale is 2, deploy.replicas is 3)",
        ),
    ];
    for (body, want) in cases {
        let src = format!("services:\n  a:\n    image: i\n    {body}\n");
        let err = load(&src).unwrap_err();
        assert!(err.contains(want), "{body}\n  want: {want}\n  got: {err}");
        assert!(err.starts_with("/x/compose.yml:"), "{err}");
    }
}

#[test]
fn scale_sets_the_replicas() {
    let p = load("services:\n  a:\n    image: i\n    scale: 3\n").unwrap();
    assert_eq!(p.services["a"].replicas, 3);
}

#[test]
fn set_keys_names_what_is_set() {
    let p = load(ALL).unwrap();
    let keys = p.services["a"].settings.set_keys();
    assert!(
        keys.contains(&"cap_drop") && keys.contains(&"links"),
        "{keys:?}"
    );
    assert!(!keys.contains(&"runtime"));
    assert!(p.services["db"].settings.set_keys().is_empty());
}
