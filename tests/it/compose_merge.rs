//! Several compose files, override discovery, `extends` and `include`, checked against
//! Debian's docker-compose 1.29 where it knows the feature (its `config` output, parsed as
//! YAML and compared field by field after normalising forms), and against the Compose
//! Specification's text where it predates it (`include`, `!reset`, `!override`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::util::{osmen, root, text};

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures/compose/multi").join(rel)
}

/// docker-compose 1.29 is the reference; under CI=true its absence fails the test.
fn has_compose() -> bool {
    let ok = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but docker-compose (the merge reference) is not installed");
    }
    if !ok {
        eprintln!("skipped: no docker-compose (required under CI=true)");
    }
    ok
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().map(str::to_string).unwrap_or_default(),
                        yaml_to_json(v),
                    )
                })
                .collect::<Map<_, _>>(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::String(i.to_string()),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

fn compose_config(dir: &Path, files: &[&str]) -> Value {
    let mut c = Command::new("docker-compose");
    c.current_dir(dir).env_remove("COMPOSE_FILE");
    for f in files {
        c.args(["-f", f]);
    }
    let o = c.arg("config").output().expect("run docker-compose");
    let (out, err) = text(&o);
    assert!(o.status.success(), "docker-compose config: {err}");
    let docs = yaml_rust2::YamlLoader::load_from_str(&out).expect("its output is YAML");
    yaml_to_json(&docs[0])
}

fn osmen_config(dir: &Path, files: &[&str]) -> Result<Value, String> {
    let mut c = osmen();
    c.current_dir(dir)
        .env_remove("COMPOSE_FILE")
        .env_remove("OSMEN_COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME");
    for f in files {
        c.args(["-f", f]);
    }
    let o = c
        .args(["config", "--json", "--all"])
        .output()
        .expect("run osmen");
    let (out, err) = text(&o);
    if !o.status.success() {
        return Err(err);
    }
    Ok(serde_json::from_str(&out).expect("osmen config --json is JSON"))
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn strings(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default()
}

fn norm_path(p: &str) -> String {
    p.replace("/./", "/").trim_end_matches("/.").to_string()
}

/// The fields of one service that both tools print, in one form.
fn reference_view(svc: &Value) -> Value {
    let volumes: BTreeSet<String> = strings(svc.get("volumes"))
        .into_iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            let ro = parts.get(2) == Some(&"ro");
            format!(
                "{}:{}:{ro}",
                norm_path(parts[0]),
                parts.get(1).unwrap_or(&"")
            )
        })
        .collect();
    let ports: BTreeSet<String> = svc
        .get("ports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| match p.as_str() {
                    // 1.29 prints a port with a host address as `ip:published:target/proto`.
                    Some(text) => {
                        let (spec, proto) = text.split_once('/').unwrap_or((text, "tcp"));
                        let mut parts = spec.rsplitn(3, ':');
                        let target = parts.next().unwrap_or_default();
                        let published = parts.next().unwrap_or_default();
                        format!("{published}:{target}/{proto}")
                    }
                    None => {
                        let proto = p.get("protocol").map(s).unwrap_or_else(|| "tcp".into());
                        format!("{}:{}/{proto}", s(&p["published"]), s(&p["target"]))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "image": svc.get("image").map(s),
        // 1.29 keeps a string command as written; the fixtures' split on blanks.
        "command": svc.get("command").map(|c| match c.as_str() {
            Some(line) => json!(line.split_whitespace().collect::<Vec<_>>()),
            None => c.clone(),
        }),
        "environment": svc.get("environment").cloned().unwrap_or(json!({})),
        "labels": svc.get("labels").cloned().unwrap_or(json!({})),
        "ports": ports,
        "volumes": volumes,
        "dns": strings(svc.get("dns")),
        "expose": strings(svc.get("expose")),
        "depends_on": svc.get("depends_on").and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default(),
        "replicas": svc.pointer("/deploy/replicas").map(s).unwrap_or_else(|| "1".into()),
        "build": svc.pointer("/build/context").map(|c| norm_path(&s(c))),
    })
}

fn osmen_view(svc: &Value) -> Value {
    let volumes: BTreeSet<String> = svc["volumes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let ro = m["read_only"].as_bool().unwrap_or(false);
                    format!("{}:{}:{ro}", norm_path(&s(&m["source"])), s(&m["target"]))
                })
                .collect()
        })
        .unwrap_or_default();
    let ports: BTreeSet<String> = svc["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{}:{}/{}",
                        s(&p["published"]),
                        s(&p["target"]),
                        s(&p["protocol"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "image": svc.get("image").filter(|i| !i.is_null()).map(s),
        "command": svc.get("command"),
        "environment": svc["environment"],
        "labels": svc["labels"],
        "ports": ports,
        "volumes": volumes,
        "dns": strings(svc.get("dns")),
        "expose": strings(svc.get("expose")),
        "depends_on": svc["depends_on"].as_object()
            .map(|m| m.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default(),
        "replicas": s(&svc["replicas"]),
        "build": svc.pointer("/build/context").map(|c| norm_path(&s(c))),
    })
}

/// osmen prints secret-named values masked; docker-compose prints them. A masked value
/// must be a password-named variable with a value in the reference, which then stands in.
fn unmask(got: &mut Value, want: &Value, service: &str) {
    let Some(env) = got["environment"].as_object_mut() else {
        return;
    };
    for (k, v) in env.iter_mut() {
        if v == "********" {
            assert!(
                k.contains("PASSWORD") || k.contains("SECRET") || k.contains("TOKEN"),
                "{service}: {k} is masked but does not name a secret"
            );
            let real = &want["environment"][k];
            assert!(
                real.as_str().is_some_and(|r| !r.is_empty()),
                "{service}: {k} masked, reference {real}"
            );
            *v = real.clone();
        }
    }
}

/// Every service of both outputs, field by field; returns the number of services compared.
fn assert_same(dir: &Path, files: &[&str]) -> usize {
    let reference = compose_config(dir, files);
    let ours = osmen_config(dir, files).unwrap_or_else(|e| panic!("osmen config: {e}"));
    let names = |v: &Value| -> BTreeSet<String> {
        v["services"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(names(&ours), names(&reference), "services of {files:?}");
    for name in names(&reference) {
        let want = reference_view(&reference["services"][&name]);
        let mut got = osmen_view(&ours["services"][&name]);
        unmask(&mut got, &want, &name);
        assert_eq!(
            got,
            want,
            "service {name} of {files:?} in {}",
            dir.display()
        );
    }
    eprintln!(
        "{files:?}: {} services match docker-compose 1.29",
        names(&reference).len()
    );
    names(&reference).len()
}

#[test]
fn base_and_override_match_docker_compose() {
    if !has_compose() {
        return;
    }
    let dir = fixture("base");
    let n = assert_same(&dir, &["docker-compose.yml", "docker-compose.override.yml"]);
    assert_eq!(n, 2);
    let ours = osmen_config(&dir, &["docker-compose.yml", "docker-compose.override.yml"]).unwrap();
    let web = &ours["services"]["web"];
    // The stated results of the merge rules, so the test fails if both tools regress alike.
    assert_eq!(web["command"], json!(["nginx-debug", "-g", "daemon off;"]));
    assert_eq!(web["environment"]["LOG_LEVEL"], "debug");
    assert_eq!(web["environment"]["REGION"], "eu");
    assert_eq!(web["labels"], json!({"owner": "ops", "tier": "web"}));
    assert_eq!(
        web["volumes"].as_array().map(Vec::len),
        Some(2),
        "one per target"
    );
}

#[test]
fn the_scale_overlay_matches_docker_compose() {
    if !has_compose() {
        return;
    }
    let dir = fixture("base");
    assert_same(&dir, &["docker-compose.yml", "docker-compose.scale.yml"]);
    let ours = osmen_config(&dir, &["docker-compose.yml", "docker-compose.scale.yml"]).unwrap();
    assert_eq!(ours["services"]["cache"]["replicas"], 3);
}

#[test]
fn extends_in_the_same_and_another_file_matches_docker_compose() {
    if !has_compose() {
        return;
    }
    let dir = fixture("extends");
    assert_same(&dir, &["docker-compose.yml"]);
    let ours = osmen_config(&dir, &["docker-compose.yml"]).unwrap();
    let api = &ours["services"]["api"];
    let common = dir.join("common");
    assert_eq!(
        norm_path(&s(&api["build"]["context"])),
        common.join("app").display().to_string()
    );
    assert_eq!(
        api["environment"]["FROM_FILE"], "common",
        "env_file read from common/"
    );
}

/// Discovery in a fresh directory: the override file is merged only when no -f is given,
/// and a sub-directory finds the file above it.
#[test]
fn override_discovery_matches_docker_compose() {
    if !has_compose() {
        return;
    }
    let tmp = TempDir::new("discover");
    let dir = tmp.0.clone();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for f in ["docker-compose.yml", "docker-compose.override.yml"] {
        std::fs::copy(fixture("base").join(f), dir.join(f)).unwrap();
    }
    assert_same(&dir, &[]);
    let merged = osmen_config(&dir, &[]).unwrap();
    assert_eq!(
        merged["services"]["web"]["environment"]["LOG_LEVEL"],
        "debug"
    );
    let only = osmen_config(&dir, &["docker-compose.yml"]).unwrap();
    assert_eq!(only["services"]["web"]["environment"]["LOG_LEVEL"], "info");
    // From a sub-directory, as Compose walks up.
    let up = osmen_config(&dir.join("sub"), &[]).unwrap();
    assert_eq!(up["services"]["web"]["environment"]["LOG_LEVEL"], "debug");
    // COMPOSE_FILE when no -f.
    let o = osmen()
        .current_dir(&dir)
        .env("COMPOSE_FILE", "docker-compose.yml")
        .env_remove("OSMEN_COMPOSE_FILE")
        .args(["config", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"]["web"]["environment"]["LOG_LEVEL"], "info");
    // Two supported names: the first in Compose's order wins, with a warning (and the
    // override file is still merged over it, as compose-go does).
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  only:\n    image: osmen-shell:test\n  web:\n    image: osmen-nginx:test\n",
    )
    .unwrap();
    let o = osmen()
        .current_dir(&dir)
        .env_remove("COMPOSE_FILE")
        .env_remove("OSMEN_COMPOSE_FILE")
        .args(["config", "--json"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(out.contains("\"only\""), "{out}");
    assert!(err.contains("found several compose files"), "{err}");
}

/// A directory under the system's temp dir, removed when dropped (a failing test too).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("osmen-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// docker-compose 1.29 predates `include`: the spec's text is the reference.
#[test]
fn include_is_recursive_with_paths_relative_to_each_file() {
    let dir = fixture("include");
    let v = osmen_config(&dir, &["compose.yaml"]).unwrap();
    let names: Vec<&String> = v["services"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["cache", "db", "web"]);
    let db = &v["services"]["db"];
    let src = s(&db["volumes"][0]["source"]);
    assert_eq!(
        src,
        dir.join("sub/init").display().to_string(),
        "relative to sub/"
    );
}

#[test]
fn an_include_cycle_is_refused_with_its_chain() {
    let err = osmen_config(&fixture("cycle"), &["a.yml"]).unwrap_err();
    assert!(
        err.contains("include cycle: a.yml -> b.yml -> a.yml"),
        "{err}"
    );
    assert!(
        err.contains("b.yml:2:"),
        "names the including file and line: {err}"
    );
    assert_eq!(err.matches("include cycle").count(), 1, "{err}");
}

#[test]
fn an_included_service_that_conflicts_is_an_error() {
    let dir = std::env::temp_dir().join(format!("osmen-inc-conflict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("other.yml"), "services:\n  web:\n    image: b\n").unwrap();
    std::fs::write(
        dir.join("compose.yml"),
        "include: [other.yml]\nservices:\n  web:\n    image: a\n",
    )
    .unwrap();
    let err = osmen_config(&dir, &["compose.yml"]).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("compose.yml:3:"), "{err}");
    assert!(err.contains("service `web` conflicts"), "{err}");
    assert!(err.contains("other.yml (line 2)"), "{err}");
}

/// `!reset` and `!override` (newer than 1.29): the spec's examples, with their results.
#[test]
fn reset_and_override_tags_as_the_spec_states() {
    let dir = std::env::temp_dir().join(format!("osmen-tags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  app:\n    image: myapp\n    ports: ['8080:80']\n    \
         environment:\n      FOO: BAR\n  other:\n    image: myapp\n    ports: ['8080:80']\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("over.yaml"),
        "services:\n  app:\n    image: myapp\n    ports: !reset []\n    environment:\n      \
         FOO: !reset null\n  other:\n    ports: !override\n      - '8443:443'\n",
    )
    .unwrap();
    let v = osmen_config(&dir, &["compose.yaml", "over.yaml"]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v["services"]["app"]["ports"], json!([]));
    assert_eq!(v["services"]["app"]["environment"], json!({}));
    assert_eq!(
        v["services"]["other"]["ports"],
        json!([{"protocol": "tcp", "published": "8443", "target": 443}])
    );
}

#[test]
fn errors_after_a_merge_name_the_file_the_value_came_from() {
    let dir = fixture("base");
    let bad = std::env::temp_dir().join(format!("osmen-bad-over-{}.yml", std::process::id()));
    std::fs::write(&bad, "services:\n  web:\n    restart: sometimes\n").unwrap();
    let err = osmen_config(&dir, &["docker-compose.yml", bad.to_str().unwrap()]).unwrap_err();
    let _ = std::fs::remove_file(&bad);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
}

#[test]
fn extends_errors_name_the_file_line_and_chain() {
    let dir = std::env::temp_dir().join(format!("osmen-ext-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yml"),
        "services:\n  a:\n    extends: b\n  b:\n    extends: a\n  c:\n    extends:\n      \
         file: nope.yml\n      service: x\n  d:\n    extends: missing\n",
    )
    .unwrap();
    let err = osmen_config(&dir, &["compose.yml"]).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("extends cycle: compose.yml:a -> compose.yml:b -> compose.yml:a"),
        "{err}"
    );
    assert!(
        err.contains("compose.yml:8:") && err.contains("nope.yml"),
        "{err}"
    );
    assert!(
        err.contains("compose.yml:11:") && err.contains("no service `missing`"),
        "{err}"
    );
}

/// Both projects of the container comparison, removed when dropped, even on failure.
struct UpPair {
    dir: PathBuf,
    osmen: String,
    compose: String,
}

impl UpPair {
    fn new() -> UpPair {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("osmen-merge-up-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixture("up"), &dir);
        UpPair {
            dir,
            osmen: format!("osmen-merge-o{pid}"),
            compose: format!("osmen-merge-c{pid}"),
        }
    }

    fn compose(&self, args: &[&str]) -> (bool, String) {
        let o = Command::new("docker-compose")
            .current_dir(&self.dir)
            .env_remove("COMPOSE_FILE")
            .arg("-p")
            .arg(&self.compose)
            .args(args)
            .output()
            .expect("run docker-compose");
        let (out, err) = text(&o);
        (o.status.success(), format!("{out}{err}"))
    }

    fn osmen(&self, args: &[&str]) -> (bool, String) {
        let o = osmen()
            .current_dir(&self.dir)
            .env_remove("COMPOSE_FILE")
            .env_remove("OSMEN_COMPOSE_FILE")
            .arg("-p")
            .arg(&self.osmen)
            .args(args)
            .output()
            .expect("run osmen");
        let (out, err) = text(&o);
        (o.status.success(), format!("{out}{err}"))
    }
}

impl Drop for UpPair {
    fn drop(&mut self) {
        let _ = self.osmen(&["down", "--volumes"]);
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
        for project in [&self.osmen, &self.compose] {
            let filter = format!("label=com.docker.compose.project={project}");
            let (_, ids) = crate::util::docker(&["ps", "-aq", "--filter", &filter]);
            for id in ids.split_whitespace() {
                let _ = crate::util::docker(&["rm", "-f", id]);
            }
            let _ = crate::util::docker(&["network", "rm", &format!("{project}_default")]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// What the merge decides in a created container, in one form for both tools.
fn container_view(name: &str, project: &str) -> Value {
    let (ok, out) = crate::util::docker(&["inspect", name]);
    assert!(ok, "docker inspect {name}: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let c = &v[0];
    let env: BTreeSet<String> = strings(c.pointer("/Config/Env"));
    let labels: BTreeSet<String> = c["Config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !k.starts_with("com.docker.compose.") || k.ends_with("config_files")
                })
                .filter(|(k, _)| !k.starts_with("io.osmen."))
                .map(|(k, v)| {
                    // 1.29 writes the files as found, current Compose and osmen as absolute
                    // paths: compared by name, in order.
                    let v = if k.ends_with("config_files") {
                        s(v).split(',')
                            .map(|f| f.rsplit('/').next().unwrap_or(f).to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    } else {
                        s(v)
                    };
                    format!("{k}={v}")
                })
                .collect()
        })
        .unwrap_or_default();
    let mut binds: BTreeSet<String> = strings(c.pointer("/HostConfig/Binds"));
    if let Some(mounts) = c["Mounts"].as_array() {
        for m in mounts.iter().filter(|m| m["Type"] == "bind") {
            binds.insert(format!(
                "{}:{}:{}",
                s(&m["Source"]),
                s(&m["Destination"]),
                if m["RW"] == json!(false) { "ro" } else { "rw" }
            ));
        }
    }
    let binds: BTreeSet<String> = binds
        .into_iter()
        .map(|b| b.trim_end_matches(":rw").to_string())
        .filter(|b| b.matches(':').count() >= 1)
        .collect();
    let text = json!({
        "cmd": c["Config"]["Cmd"],
        "image": c["Config"]["Image"],
        "env": env,
        "labels": labels,
        "binds": binds.into_iter().map(|b| b.replace(":ro:ro", ":ro")).collect::<BTreeSet<_>>(),
        "dns": c["HostConfig"]["Dns"],
        "expose": c["Config"]["ExposedPorts"].as_object()
            .map(|m| m.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default(),
    })
    .to_string();
    serde_json::from_str(&text.replace(project, "PROJECT")).unwrap()
}

/// Discovery, the override, `extends` from another file with its relative bind source:
/// the `web` container osmen creates is the one docker-compose 1.29 creates.
#[test]
fn merged_files_create_the_container_docker_compose_creates() {
    if !crate::util::docker_ready() || !has_compose() {
        return;
    }
    let pair = UpPair::new();
    let (ok, out) = pair.compose(&["up", "-d"]);
    assert!(ok, "docker-compose up: {out}");
    let (ok, out) = pair.osmen(&["up", "--wait"]);
    assert!(ok, "osmen up: {out}");
    let reference = container_view(&format!("{}_web_1", pair.compose), &pair.compose);
    let ours = container_view(&format!("{}-web-1", pair.osmen), &pair.osmen);
    eprintln!("docker-compose 1.29: {reference:#}");
    assert_eq!(
        ours.as_object().map(|m| m.keys().collect::<Vec<_>>()),
        reference.as_object().map(|m| m.keys().collect::<Vec<_>>())
    );
    for (k, want) in reference.as_object().unwrap() {
        let got = &ours[k];
        if k == "dns" {
            // 1.29 appends `dns` without removing repeats; Compose v2 keeps one of each.
            assert_eq!(strings(Some(got)), strings(Some(want)), "{k}");
        } else {
            assert_eq!(got, want, "{k}");
        }
    }
    // The stated results, so that both tools regressing alike still fails.
    let env = strings(ours.get("env"));
    for e in ["ROLE=web", "LEVEL=debug", "FROM_BASE=1"] {
        assert!(env.contains(e), "{e} in {env:?}");
    }
    assert_eq!(ours["cmd"], json!(["sleep", "300"]));
    let binds = strings(ours.get("binds"));
    let data = pair.dir.join("common/data").display().to_string();
    assert!(binds.iter().any(|b| b.starts_with(&data)), "{binds:?}");
    assert!(
        binds.iter().any(|b| b.ends_with("/other:/site:ro")),
        "{binds:?}"
    );
}

/// `-f -` reads the first file from standard input; the project directory is the
/// working directory, and later files merge over it.
#[test]
fn a_file_from_standard_input_merges_with_the_next() {
    use std::io::Write;
    let dir = fixture("base");
    let mut child = osmen()
        .current_dir(&dir)
        .args([
            "-f",
            "-",
            "-f",
            "docker-compose.scale.yml",
            "config",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(dir.join("docker-compose.yml")).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "base");
    assert_eq!(v["services"]["cache"]["replicas"], 3);
    let src = s(&v["services"]["web"]["volumes"][0]["source"]);
    assert_eq!(src, dir.join("html").display().to_string());
}

fn realworld(rel: &str) -> PathBuf {
    root().join("tests/fixtures/compose/realworld").join(rel)
}

#[test]
fn a_lamp_stack_matches_docker_compose() {
    if !has_compose() {
        return;
    }
    let dir = realworld("lamp");
    assert_eq!(assert_same(&dir, &["docker-compose.yml"]), 2);
    let ours = osmen_config(&dir, &["docker-compose.yml"]).unwrap();
    let db = &ours["services"]["db"];
    // The word in a command is not a secret; the password variables are.
    assert_eq!(
        db["command"][0],
        "--default-authentication-plugin=mysql_native_password"
    );
    assert_eq!(db["environment"]["MARIADB_PASSWORD"], "********");
    assert_eq!(ours["networks"]["back"]["internal"], true);
    assert_eq!(
        ours["services"]["web"]["depends_on"]["db"]["condition"],
        "service_healthy"
    );
}

#[test]
fn a_mysql_with_secrets_matches_docker_compose_and_shows_no_secret() {
    if !has_compose() {
        return;
    }
    let dir = realworld("mysql-secrets");
    assert_eq!(assert_same(&dir, &["docker-compose.yml"]), 2);
    let ours = osmen_config(&dir, &["docker-compose.yml"]).unwrap();
    let text = ours.to_string();
    for value in ["wp-Zq81mXr", "root-Hc42pLs"] {
        assert!(!text.contains(value), "config shows the secret {value}");
    }
    // *_FILE variables are paths, printed as they are.
    assert_eq!(
        ours["services"]["db"]["environment"]["MYSQL_PASSWORD_FILE"],
        "/run/secrets/db_password"
    );
    let grant = |svc: &str| -> Vec<String> {
        ours["services"][svc]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| format!("{}>{}", s(&g["source"]), s(&g["target"])))
            .collect()
    };
    assert_eq!(
        grant("db"),
        [
            "db_root_password>/run/secrets/db_root_password",
            "db_password>/run/secrets/db_password"
        ]
    );
    assert_eq!(
        grant("wordpress"),
        ["db_password>/run/secrets/wp_db_password"]
    );
    let reference = compose_config(&dir, &["docker-compose.yml"]);
    assert_eq!(
        reference["services"]["wordpress"]["secrets"][0]["target"],
        "wp_db_password"
    );
}

#[test]
fn a_reverse_proxy_with_labels_and_a_shared_network_stack_matches_docker_compose() {
    if !has_compose() {
        return;
    }
    let dir = realworld("proxy");
    assert_eq!(assert_same(&dir, &["docker-compose.yml"]), 4);
    let ours = osmen_config(&dir, &["docker-compose.yml"]).unwrap();
    let reference = compose_config(&dir, &["docker-compose.yml"]);
    for (svc, key) in [
        ("downloader", "network_mode"),
        ("vpn", "cap_add"),
        ("proxy", "security_opt"),
    ] {
        assert_eq!(
            ours["services"][svc][key], reference["services"][svc][key],
            "{svc}.{key}"
        );
    }
    assert_eq!(
        ours["services"]["downloader"]["network_mode"],
        "service:vpn"
    );
    assert_eq!(
        ours["services"]["whoami"]["labels"]["traefik.http.routers.whoami.rule"],
        "Host(`whoami.localhost`)"
    );
    let admin = ours["services"]["proxy"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| s(&p["target"]) == "8080")
        .cloned()
        .unwrap();
    assert_eq!(admin["host_ip"], "127.0.0.1");
}
