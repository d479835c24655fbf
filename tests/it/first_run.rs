//! A fresh clone of this repository, as a new user gets it: no `.env`. `config` and
//! `doctor` say that `up` will create the database password; the first `up` writes a
//! random one to `.env` (mode 0600), says so once and never prints it; later runs keep it,
//! and keep a value the user wrote instead.
//!
//! The shipped stack's images are not on this engine and no registry answers, so the
//! first `up` is `up postgres --pull never` on the shipped file exactly as cloned (it
//! creates `.env`, then stops on the image). To see the password reach a running
//! PostgreSQL, the clone's file then gets the test image for postgres (and loses the fixed
//! container name and host port, which other stacks on this engine may hold); its
//! `${POSTGRES_PASSWORD:?...}` and everything else stay as shipped.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{docker, docker_ready, inspect, osmen, root, text};

/// The clone, its project name, and its containers and volumes removed when dropped.
struct Clone {
    dir: PathBuf,
    project: String,
}

impl Clone {
    fn new(tag: &str) -> Clone {
        let project = format!("osmenit-fresh{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&project);
        let _ = std::fs::remove_dir_all(&dir);
        let o = Command::new("git")
            .args(["clone", "--local", "--quiet"])
            .arg(root())
            .arg(&dir)
            .output()
            .expect("run git clone");
        assert!(o.status.success(), "git clone failed: {:?}", text(&o));
        assert!(!dir.join(".env").exists(), "a fresh clone has no .env");
        Clone { dir, project }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = osmen()
            .current_dir(&self.dir)
            .env_remove("POSTGRES_PASSWORD")
            .env("OSMEN_GATEWAY_LISTEN", "127.0.0.1:1")
            .arg("-p")
            .arg(&self.project)
            .args(args)
            .output()
            .expect("run osmen");
        let (out, err) = text(&o);
        (o.status.code().unwrap_or(-1), out, err)
    }

    fn env_file(&self) -> PathBuf {
        self.dir.join(".env")
    }

    fn password(&self) -> String {
        let t = std::fs::read_to_string(self.env_file()).expect("read .env");
        t.lines()
            .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
            .unwrap_or_else(|| panic!("no POSTGRES_PASSWORD in .env:\n{t}"))
            .to_string()
    }
}

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--volumes"]);
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let (_, ids) = docker(&["ps", "-aq", "--filter", &filter]);
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
        let _ = docker(&["volume", "rm", &format!("{}_postgres_data", self.project)]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The shipped postgres service on the test image, with no fixed name or host port.
fn use_test_image(file: &Path) {
    let t = std::fs::read_to_string(file).unwrap();
    let t = t
        .replace("image: postgres:15-alpine", "image: osmen-postgres:test")
        .replace("    container_name: osmen-postgres\n", "")
        .replace("      - \"127.0.0.1:5432:5432\"\n", "");
    assert!(
        t.contains("${POSTGRES_PASSWORD:?"),
        "the shipped file requires it"
    );
    std::fs::write(file, t).unwrap();
}

fn container_password(c: &Clone) -> String {
    let env = inspect(
        &format!("{}-postgres-1", c.project),
        "{{range .Config.Env}}{{println .}}{{end}}",
    );
    env.lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap_or_else(|| panic!("the container has no POSTGRES_PASSWORD: {env}"))
        .to_string()
}

#[test]
fn a_fresh_clone_gets_a_private_database_password_on_its_first_up() {
    if !docker_ready() {
        return;
    }
    let c = Clone::new("up");

    // Before the first `up`: a warning, not a failure, and nothing written.
    let (code, out, err) = c.run(&["config"]);
    assert_eq!(code, 0, "config on a fresh clone:\n{out}\n{err}");
    assert!(
        err.contains("warning: POSTGRES_PASSWORD is not set")
            && err.contains("the first `osmen up`"),
        "{err}"
    );
    assert!(out.contains("POSTGRES_PASSWORD: \"********\""), "{out}");
    let (_, out, err) = c.run(&["doctor"]);
    let line = out
        .lines()
        .find(|l| l.contains("secrets"))
        .unwrap_or_else(|| panic!("no secrets check:\n{out}\n{err}"));
    assert!(line.starts_with("warn"), "{line}");
    assert!(!out.contains("FAIL compose"), "{out}");
    assert!(!c.env_file().exists(), "config and doctor write nothing");

    // The first `up`, on the file as cloned: `.env` is created, then the image stops it.
    let (code, out, err) = c.run(&["up", "postgres", "--pull", "never"]);
    assert_eq!(code, 1, "no postgres:15-alpine here:\n{out}\n{err}");
    let note = format!(
        "first run: wrote a random POSTGRES_PASSWORD to {} (mode 0600)",
        c.env_file().display()
    );
    assert_eq!(err.matches(&note).count(), 1, "said once:\n{err}");
    assert!(err.contains("postgres:15-alpine"), "{err}");
    assert_eq!(mode(&c.env_file()), 0o600);
    let pw = c.password();
    assert_eq!(pw.len(), 32);
    assert!(
        !out.contains(&pw) && !err.contains(&pw),
        "the password was printed"
    );

    // Later runs keep it, say nothing of it, and PostgreSQL starts with it.
    use_test_image(&c.dir.join("docker-compose.yml"));
    let (code, out, err) = c.run(&["up", "postgres", "--wait"]);
    assert_eq!(code, 0, "up --wait:\n{out}\n{err}");
    assert!(!err.contains("first run"), "said again:\n{err}");
    assert_eq!(c.password(), pw, "the generated value was replaced");
    assert_eq!(container_password(&c), pw);
    for args in [&["config"][..], &["config", "--json"], &["ps"], &["doctor"]] {
        let (_, out, err) = c.run(args);
        assert!(
            !out.contains(&pw) && !err.contains(&pw),
            "{args:?} printed it"
        );
        assert!(!err.contains("is not set"), "{args:?}: {err}");
    }

    // A value the user wrote stays as written.
    std::fs::write(c.env_file(), "POSTGRES_PASSWORD=users-own-choice-42\n").unwrap();
    let (code, out, err) = c.run(&["up", "postgres", "--wait"]);
    assert_eq!(code, 0, "second up:\n{out}\n{err}");
    assert!(!err.contains("first run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(c.env_file()).unwrap(),
        "POSTGRES_PASSWORD=users-own-choice-42\n"
    );
    assert_eq!(container_password(&c), "users-own-choice-42");
}

#[test]
fn commands_other_than_up_say_how_a_fresh_clone_gets_its_password() {
    let c = Clone::new("ps");
    let (code, _, err) = c.run(&["ps"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("POSTGRES_PASSWORD")
            && err.contains("the first `osmen up` (or the console) writes a random one"),
        "{err}"
    );
    // --read-only never writes it.
    let (code, _, err) = c.run(&["--read-only", "up"]);
    assert_eq!(code, 2, "{err}");
    assert!(!c.env_file().exists(), "--read-only wrote .env");
}

#[test]
fn doctor_checks_the_gateway_port() {
    let c = Clone::new("doctor");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let doctor = |listen: &str| {
        let o = osmen()
            .current_dir(&c.dir)
            .env("OSMEN_GATEWAY_LISTEN", listen)
            .arg("doctor")
            .output()
            .unwrap();
        let out = text(&o).0;
        out.lines()
            .find(|l| l.contains(" gateway "))
            .unwrap_or_else(|| panic!("no gateway check:\n{out}"))
            .to_string()
    };
    let line = doctor(&format!("127.0.0.1:{port}"));
    assert!(
        line.starts_with("FAIL") && line.contains("in use by another program"),
        "{line}"
    );
    drop(held);
    let line = doctor(&format!("127.0.0.1:{port}"));
    assert!(line.starts_with("ok") && line.contains("is free"), "{line}");
}
