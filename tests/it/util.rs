//! Helpers shared by the integration tests: the osmen binary, the Docker engine (required
//! under CI=true), the test images, and throwaway stacks that clean up after themselves.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn osmen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_osmen"))
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// True when a Docker engine answers. Under CI=true a missing engine fails the test
/// instead of skipping it.
pub fn docker_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    let ready = *READY.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !ready {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Docker engine answers `docker info`: start it");
        }
        eprintln!("skipped: no Docker engine (these tests are required under CI=true)");
        return false;
    }
    ensure_images();
    true
}

fn ensure_images() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let o = Command::new("bash")
            .arg(root().join("tests/images/build.sh"))
            .output()
            .expect("run tests/images/build.sh");
        let (out, err) = text(&o);
        assert!(
            o.status.success(),
            "building test images failed:\n{out}\n{err}"
        );
    });
}

pub fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    let (out, err) = text(&o);
    (o.status.success(), format!("{}{}", out.trim(), err.trim()))
}

/// The host port a container publishes `port` (`6379/tcp`) on.
pub fn published_port(container: &str, port: &str) -> u16 {
    let out = docker(&["port", container, port]).1;
    out.lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{container} publishes no {port}: {out:?}"))
}

pub fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name]).1
}

/// Polls `f` every 200 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    f()
}

/// A copy of a fixture stack under a fresh directory with its own project name; taken
/// down (volumes included) when dropped.
pub struct Stack {
    pub dir: PathBuf,
    pub project: String,
}

impl Stack {
    pub fn new(fixture: &str, tag: &str) -> Stack {
        let project = format!("osmenit-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&project);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).unwrap();
        let src = root().join("tests/fixtures/stacks").join(fixture);
        std::fs::copy(
            src.join("docker-compose.yml"),
            dir.join("docker-compose.yml"),
        )
        .unwrap();
        std::fs::write(
            dir.join("config/osmen.toml"),
            "[supervisor]\nbackoff_initial = \"200ms\"\nbackoff_max = \"2s\"\n\
             crash_loop_restarts = 3\ncrash_loop_window = \"1m\"\nhealth_timeout = \"90s\"\n\
             stop_grace = \"2s\"\n",
        )
        .unwrap();
        Stack { dir, project }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = osmen();
        c.current_dir(&self.dir)
            .arg("-p")
            .arg(&self.project)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.cmd(args).output().expect("run osmen");
        let (out, err) = text(&o);
        (o.status.code().unwrap_or(-1), out, err)
    }

    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}-1", self.project)
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.dir.join("runtime/journal.jsonl")).unwrap_or_default()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn set_config(&self, body: &str) {
        std::fs::write(self.dir.join("config/osmen.toml"), body).unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cmd(&["down", "--volumes"]).output();
        // Whatever osmen left (a failed test may have broken it), the engine removes.
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let (_, ids) = docker(&["ps", "-aq", "--filter", &filter]);
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
        // And its networks: a leaked one per run exhausts the engine's address pools
        // ("could not find an available, non-overlapping IPv4 address pool").
        let (_, nets) = docker(&["network", "ls", "-q", "--filter", &filter]);
        for id in nets.split_whitespace() {
            let _ = docker(&["network", "rm", id]);
        }
        let _ = docker(&["volume", "rm", &format!("{}_redisdata", self.project)]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A distribution registry (Debian's docker-registry) on 127.0.0.1, optionally behind
/// basic auth; stopped when dropped.
pub struct Registry {
    pub addr: String,
    pub dir: PathBuf,
    child: std::process::Child,
}

impl Registry {
    /// None (and a skip) when the package is missing outside CI.
    pub fn start(tag: &str, auth: Option<(&str, &str)>) -> Option<Registry> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but docker-registry is not installed (.ci/run installs it)"
            );
            eprintln!("skipped: docker-registry not installed");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("osmen-registry-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut cfg = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((user, pass)) = auth {
            let o = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(o.status.success(), "htpasswd failed");
            std::fs::write(dir.join("htpasswd"), &o.stdout).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: osmen-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(dir.join("log"))
                    .map(Into::into)
                    .unwrap_or(std::process::Stdio::null()),
            )
            .spawn()
            .expect("start docker-registry");
        let addr = format!("127.0.0.1:{port}");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "docker-registry did not listen on {addr}");
        Some(Registry { addr, dir, child })
    }

    /// A Docker config directory holding credentials for this registry.
    pub fn docker_config(&self, user: &str, pass: &str) -> PathBuf {
        let d = self.dir.join("docker-config");
        std::fs::create_dir_all(&d).unwrap();
        let auth = base64(&format!("{user}:{pass}"));
        std::fs::write(
            d.join("config.json"),
            format!(
                "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
                self.addr
            ),
        )
        .unwrap();
        d
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (*c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// True on machines without the NVIDIA driver library (CI, this workplace).
pub fn nvml_absent() -> bool {
    ![
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "/usr/lib64/libnvidia-ml.so.1",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// A `status --watch` (or any command that redraws a whole screen per frame) read in the
/// background: [`Watch::frame`] is the last complete frame. Killed when dropped.
pub struct Watch {
    child: std::sync::Mutex<std::process::Child>,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watch {
    pub fn start(cmd: &mut Command) -> Watch {
        use std::io::Read;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut out = child.stdout.take().unwrap();
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut all = String::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the last whole frame (each starts by clearing the screen).
                if let Some(i) = all.rfind("\x1b[H\x1b[2J")
                    && i > 0
                {
                    *shared.lock().unwrap() = all[..i]
                        .rsplit("\x1b[H\x1b[2J")
                        .next()
                        .unwrap_or("")
                        .to_string();
                    all.drain(..i);
                }
            }
        });
        Watch {
            child: std::sync::Mutex::new(child),
            screen,
        }
    }

    pub fn frame(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    pub fn alive(&self) -> bool {
        self.child.lock().unwrap().try_wait().unwrap().is_none()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Compares `got` with its recording at `rel` under the project (`UPDATE_SNAPSHOT_JSON=1`
/// records it again; a missing recording fails, so deleting one cannot pass a test).
pub fn assert_recorded(rel: &str, got: &serde_json::Value, what: &str) {
    let path = root().join(rel);
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOT_JSON").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{rel}: {e} (UPDATE_SNAPSHOT_JSON=1 records it)"));
    let want: serde_json::Value = serde_json::from_str(&want).unwrap();
    assert_eq!(
        got, &want,
        "{what} changed; got:\n{text}\n(UPDATE_SNAPSHOT_JSON=1 records it)"
    );
}
