//! `.env`, `env_file` and `label_file` read as `docker compose` reads them, interpolation
//! with COMPOSE_PROJECT_NAME, and `config` listing the services of the enabled profiles.
//! The stack is `tests/fixtures/compose/dotenv/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use osmen::stack::compose::{LoadOptions, Project, load};

use crate::util::{osmen, root, text};

fn fixture() -> PathBuf {
    root().join("tests/fixtures/compose/dotenv/docker-compose.yml")
}

fn opts(env: &[(&str, &str)], project: Option<&str>) -> LoadOptions {
    LoadOptions {
        project_name: project.map(str::to_string),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn env_of<'a>(p: &'a Project, svc: &str) -> &'a BTreeMap<String, String> {
    &p.services[svc].environment
}

/// A throwaway directory holding `files`, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str, files: &[(&str, &str)]) -> Dir {
        let d =
            std::env::temp_dir().join(format!("osmen-compose-env-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (name, body) in files {
            std::fs::write(d.join(name), body).unwrap();
        }
        Dir(d)
    }

    fn compose(&self) -> PathBuf {
        self.0.join("docker-compose.yml")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_err(file: &Path, env: &[(&str, &str)]) -> String {
    match load(file, &opts(env, None)) {
        Ok(_) => panic!("{} loaded, expected an error", file.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn dotenv_forms_reach_the_services() {
    let p = load(&fixture(), &opts(&[("HOME_DIR", "/home/ops")], None)).unwrap();
    // COMPOSE_PROJECT_NAME in `.env` names the project and is offered to interpolation.
    assert_eq!(p.name, "shop");
    assert_eq!(p.services["web"].ports[0].host_port(), Some(8080));
    let app = env_of(&p, "app");
    let want = [
        // `.env`: interpolation of earlier values, inline comment dropped.
        ("DATABASE_URL", "postgres://shop@db:5432/shop_prod"),
        // `\t` decoded inside double quotes.
        ("GREETING", "Hello\tWorld"),
        // A quoted value over two lines.
        ("BANNER", "line one\nline two"),
        // `a#b` is a value, not a comment.
        ("HASH", "a#b"),
        // A bare `HOME_DIR` takes the environment's value; an absent one stays unset.
        ("HOME_DIR", "/home/ops"),
        ("NOT_IN_ENV", "absent"),
        // A lone `$` is kept.
        ("PRICE", "5$ flat"),
        // env_file: a bare name from the project's variables (`export<TAB>` in `.env`).
        ("APP_ENV", "production"),
        ("LOG_LEVEL", "info"),
        ("WORKERS", "4"),
        ("CACHE_URL", "redis://cache:6379/0"),
        ("FEATURE_FLAGS", "a,b,$c"),
        ("PUBLIC_URL", "http://localhost:8080"),
        // format: raw, exactly as written.
        ("JAVA_OPTS", "\"-Xmx512m\" -Dx=${NOT_EXPANDED} # kept"),
    ];
    for (k, v) in want {
        assert_eq!(app.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(app.len(), want.len(), "{app:?}");
    let db = env_of(&p, "db");
    assert_eq!(db["POSTGRES_DB"], "shop_prod");
    // Single quotes: `$$` and `#` kept as written, not interpolated again in the file.
    assert_eq!(db["POSTGRES_PASSWORD"], "pa$$word#1");
}

#[test]
fn label_file_labels_under_explicit_labels() {
    let p = load(&fixture(), &opts(&[], None)).unwrap();
    let labels = &p.services["web"].labels;
    assert_eq!(labels["traefik.enable"], "true");
    assert_eq!(
        labels["traefik.http.routers.web.rule"],
        "Host(`shop.localhost`)"
    );
    // `labels:` wins over the file, and ${COMPOSE_PROJECT_NAME} is the project's name.
    assert_eq!(labels["com.example.stack"], "shop");
    assert_eq!(labels.len(), 3, "{labels:?}");
}

#[test]
fn compose_project_name_follows_the_name_osmen_uses() {
    // -p (or COMPOSE_PROJECT_NAME in the environment, which clap turns into -p) wins
    // over `.env`, and interpolation sees the same name.
    let p = load(&fixture(), &opts(&[], Some("Other-Shop"))).unwrap();
    assert_eq!(p.name, "other-shop");
    assert_eq!(p.services["web"].labels["com.example.stack"], "other-shop");

    let d = Dir::new(
        "name",
        &[(
            "docker-compose.yml",
            "name: ${TEAM:-blue}-shop\nservices:\n  a:\n    image: x\n    labels:\n      \
             p: ${COMPOSE_PROJECT_NAME}\n",
        )],
    );
    let p = load(&d.compose(), &opts(&[("TEAM", "red")], None)).unwrap();
    assert_eq!(
        (p.name.as_str(), p.services["a"].labels["p"].as_str()),
        ("red-shop", "red-shop")
    );
}

#[test]
fn bom_and_crlf_dotenv_loads() {
    let d = Dir::new(
        "bom",
        &[
            (".env", "\u{feff}A=1\r\nB=\"two\" # c\r\nexport C=${A}3\r\n"),
            (
                "docker-compose.yml",
                "services:\n  s:\n    image: x\n    environment:\n      A: $A\n      B: $B\n      \
                 C: $C\n",
            ),
        ],
    );
    let p = load(&d.compose(), &opts(&[], None)).unwrap();
    let e = env_of(&p, "s");
    assert_eq!(
        (e["A"].as_str(), e["B"].as_str(), e["C"].as_str()),
        ("1", "two", "13")
    );
}

#[test]
fn a_malformed_dotenv_line_names_file_and_line() {
    let d = Dir::new(
        "bad",
        &[
            (".env", "GOOD=1\n# fine\nBAD KEY=2\n"),
            ("docker-compose.yml", "services:\n  s:\n    image: x\n"),
        ],
    );
    let e = load_err(&d.compose(), &[]);
    let at = format!("{}:3:1", d.0.join(".env").display());
    assert!(
        e.contains(&at) && e.contains("\"BAD KEY\" contains a space"),
        "{e}"
    );

    std::fs::write(d.0.join(".env"), "A=\"never closed\nB=2\n").unwrap();
    let e = load_err(&d.compose(), &[]);
    assert!(
        e.contains(":1:1") && e.contains("A: unterminated quoted value"),
        "{e}"
    );
}

#[test]
fn env_file_errors_name_the_file() {
    let d = Dir::new(
        "envfile",
        &[
            ("bad.env", "OK=1\nALSO=2\nnot$valid\n"),
            (
                "docker-compose.yml",
                "services:\n  s:\n    image: x\n    env_file:\n      - missing.env\n      \
                 - path: bad.env\n      - path: other.env\n        format: json\n      \
                 - path: gone.env\n        required: false\n",
            ),
        ],
    );
    let e = load_err(&d.compose(), &[]);
    assert!(
        e.contains("services.s.env_file[0]")
            && e.contains("missing.env")
            && e.contains("required: false"),
        "{e}"
    );
    let bad = format!("{}:3:1", d.0.join("bad.env").display());
    assert!(
        e.contains(&bad) && e.contains("unexpected character '$'"),
        "{e}"
    );
    assert!(
        e.contains("services.s.env_file[2].format") && e.contains("\"json\""),
        "{e}"
    );
    assert!(
        !e.contains("gone.env"),
        "a `required: false` file is skipped: {e}"
    );
}

#[test]
fn label_file_missing_is_an_error_naming_it() {
    let d = Dir::new(
        "labels",
        &[(
            "docker-compose.yml",
            "services:\n  s:\n    image: x\n    label_file: [nope.labels]\n",
        )],
    );
    let e = load_err(&d.compose(), &[]);
    assert!(e.contains("label_file") && e.contains("nope.labels"), "{e}");
}

fn config_services(args: &[&str]) -> Vec<String> {
    let o = osmen()
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_PROJECT_NAME")
        .arg("-f")
        .arg(fixture())
        .args(args)
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["services"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn config_lists_the_services_of_enabled_profiles() {
    assert_eq!(config_services(&["config", "--json"]), ["app", "db", "web"]);
    assert_eq!(
        config_services(&["--profile", "debug", "config", "--json"]),
        ["adminer", "app", "db", "web"]
    );
    assert_eq!(
        config_services(&["config", "--json", "--all-profiles"]),
        ["adminer", "app", "db", "web"]
    );
}

#[test]
fn env_file_and_label_file_lookups_follow_compose_go() {
    // env_file: an earlier file's value first, then the project's variables;
    // label_file: earlier label files only (compose-go's WithServicesLabelsResolved).
    let d = Dir::new(
        "lookup",
        &[
            (".env", "TIER=from-dotenv\n"),
            ("one.env", "TIER=from-one\n"),
            ("two.env", "A=${TIER}\nTIER\n"),
            ("one.labels", "team=ops\n"),
            ("two.labels", "owner=${team}\ntier=${TIER}\n"),
            (
                "docker-compose.yml",
                "services:\n  s:\n    image: x\n    env_file: [one.env, two.env]\n    \
                 label_file: [one.labels, two.labels]\n",
            ),
        ],
    );
    let p = load(&d.compose(), &opts(&[], None)).unwrap();
    let s = &p.services["s"];
    assert_eq!(s.environment["A"], "from-one");
    assert_eq!(s.environment["TIER"], "from-one");
    assert_eq!(s.labels["owner"], "ops");
    assert_eq!(
        s.labels["tier"], "",
        "a label file does not see the project's variables"
    );
    // A `required: false` entry that exists but is a directory is still an error.
    std::fs::create_dir_all(d.0.join("dir.env")).unwrap();
    std::fs::write(
        d.compose(),
        "services:\n  s:\n    image: x\n    env_file:\n      - path: dir.env\n        \
         required: false\n",
    )
    .unwrap();
    let e = load_err(&d.compose(), &[]);
    assert!(
        e.contains("dir.env") && e.contains("make it a readable file"),
        "{e}"
    );
}

/// `osmen config --json` run in `dir` with COMPOSE_FILE and COMPOSE_PROFILES as `env`
/// gives them (None: unset): the names of the services shown.
fn services_in(dir: &Path, env: &[(&str, Option<&str>)], args: &[&str]) -> Vec<String> {
    let mut cmd = osmen();
    cmd.current_dir(dir)
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("OSMEN_COMPOSE_FILE");
    for (k, v) in env {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let o = cmd.args(args).args(["config", "--json"]).output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{env:?} {args:?}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["services"].as_object().unwrap().keys().cloned().collect()
}

#[test]
fn compose_file_and_compose_profiles_in_dotenv_are_read_and_the_environment_wins() {
    let d = Dir::new(
        "dotenv-files",
        &[
            (".env", "COMPOSE_FILE=a.yml:b.yml\nCOMPOSE_PROFILES=debug\n"),
            ("a.yml", "services:\n  web:\n    image: x\n"),
            (
                "b.yml",
                "services:\n  adminer:\n    image: y\n    profiles: [debug]\n  \
                 gpu:\n    image: z\n    profiles: [gpu]\n",
            ),
            ("c.yml", "services:\n  other:\n    image: x\n"),
        ],
    );
    // Expected: both files merged and the `debug` profile on, as docker compose does.
    assert_eq!(services_in(&d.0, &[], &[]), ["adminer", "web"]);
    // The environment wins over `.env`, the command line over both.
    assert_eq!(
        services_in(&d.0, &[("COMPOSE_PROFILES", Some("gpu"))], &[]),
        ["gpu", "web"]
    );
    assert_eq!(
        services_in(&d.0, &[("COMPOSE_PROFILES", Some(""))], &[]),
        ["web"]
    );
    assert_eq!(
        services_in(&d.0, &[("COMPOSE_FILE", Some("c.yml"))], &[]),
        ["other"]
    );
    assert_eq!(services_in(&d.0, &[], &["-f", "c.yml"]), ["other"]);
    assert_eq!(
        services_in(&d.0, &[], &["--profile", "gpu"]),
        ["gpu", "web"]
    );
}
