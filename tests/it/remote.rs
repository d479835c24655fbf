//! Remote engines: the same commands through `DOCKER_HOST=tcp://` (a loopback forward to
//! the local engine by socat), `tcp://` with TLS (`DOCKER_TLS_VERIFY`, certificates made by
//! openssl; stunnel terminates TLS and demands the client certificate, as `dockerd
//! --tlsverify` does) and `ssh://` (an sshd on loopback started here, with its own keys and
//! known_hosts, through `OSMEN_SSH_CONFIG`). socat, stunnel4 and openssh-server come from
//! Debian's packages (`.ci/run` installs them). socat cannot stand in for the TLS side: each
//! forked child refuses a resumed session ("session id context uninitialized"), and
//! bollard's client resumes its second connection.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{Stack, docker_ready, free_port, wait_until};

pub(crate) fn need(tool: &str) -> bool {
    let found = ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing: apt-get install socat stunnel4 openssh-server (.ci/run does)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into())
}

/// A child process killed when the test ends, pass or fail.
pub(crate) struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

pub(crate) fn socat(listen: String) -> (Bg, u16) {
    let port: u16 = listen
        .split([':', ','])
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap();
    let child = Command::new("socat")
        .arg(listen)
        .arg(format!("UNIX-CONNECT:{}", engine_socket()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || port_open(port)));
    (Bg(child), port)
}

pub(crate) fn stack(tag: &str) -> Stack {
    let st = Stack::new("secrets", tag);
    std::fs::write(st.path("secrets.env"), "DB_TOKEN=x\n").unwrap();
    st
}

/// up, ps --json, status --json and down through one DOCKER_HOST.
pub(crate) fn round_trip(st: &Stack, env: &[(&str, String)]) {
    let run = |args: &[&str]| {
        let mut c = st.cmd(args);
        for (k, v) in env {
            // An empty value: the variable is unset for the command.
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        let o = c.output().unwrap();
        let (so, se) = crate::util::text(&o);
        (o.status.code().unwrap_or(-1), so, se)
    };
    let (code, so, se) = run(&["up", "--wait"]);
    assert_eq!(code, 0, "up: {so}{se}");
    let (code, so, se) = run(&["ps", "--json"]);
    assert_eq!(code, 0, "ps: {se}");
    let ps: serde_json::Value = serde_json::from_str(&so).unwrap();
    let rows = ps
        .as_array()
        .or_else(|| ps["containers"].as_array())
        .unwrap();
    assert_eq!(rows.len(), 1, "{so}");
    assert!(so.contains(&st.container("cache")), "{so}");
    assert!(so.contains("running"), "{so}");
    let (code, so, se) = run(&["status", "--json"]);
    assert_eq!(code, 0, "status: {se}");
    let status: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert!(so.contains(&st.container("cache")), "{so}");
    assert!(status.is_object());
    let (code, so, se) = run(&["down"]);
    assert_eq!(code, 0, "down: {so}{se}");
    let (_, ids) = crate::util::docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", st.project),
    ]);
    assert!(ids.trim().is_empty(), "down left {ids}");
}

#[test]
fn plain_tcp_through_a_loopback_forward() {
    if !docker_ready() || !need("socat") {
        return;
    }
    let (_fwd, port) = socat(format!(
        "TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork",
        free_port()
    ));
    let st = stack("tcp");
    let host = format!("tcp://127.0.0.1:{port}");
    round_trip(&st, &[("DOCKER_HOST", host.clone())]);
    // The console too, through the same address: it brings the stack up and shows it.
    let script = format!(
        "cd {} && DOCKER_HOST={host} OSMEN_GATEWAY_LISTEN=127.0.0.1:{} {} -p {}; sleep 30",
        st.dir.display(),
        free_port(),
        env!("CARGO_BIN_EXE_osmen"),
        st.project
    );
    let t = crate::console::Tmux::start(
        format!("osmen-tcp-{}", std::process::id()),
        120,
        40,
        &script,
    );
    let screen = t.wait_for("1/1 running", Duration::from_secs(60));
    assert!(screen.contains("cache"), "{screen}");
    t.keys(&["q"]);
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A self-signed certificate and its key (a CA, or a client no CA vouches for).
fn self_signed(dir: &Path, key: &str, cert: &str, subject: &str) {
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key, "-out",
            cert, "-subj", subject,
        ],
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd
/// --tlsverify` and the Docker CLI use them.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir.join("client")).unwrap();
    self_signed(dir, "ca-key.pem", "ca.pem", "/CN=osmen test CA");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("server", "server.ext"), ("client/", "client.ext")] {
        let base = if name == "client/" {
            "client/"
        } else {
            "server-"
        };
        let key = format!("{base}key.pem");
        let csr = format!("{base}req.csr");
        let cert = format!("{base}cert.pem");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                ext,
            ],
        );
    }
    std::fs::copy(dir.join("ca.pem"), dir.join("client/ca.pem")).unwrap();
}

#[test]
fn tcp_with_tls_client_certificates() {
    if !docker_ready() || !need("stunnel4") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("osmen-tls-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let d = dir.display();
    let port = free_port();
    std::fs::write(
        dir.join("stunnel.conf"),
        format!(
            "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = {}\n\
             cert = {d}/server-cert.pem\nkey = {d}/server-key.pem\nCAfile = {d}/ca.pem\n\
             verifyChain = yes\n",
            engine_socket()
        ),
    )
    .unwrap();
    let _fwd = Bg(Command::new("stunnel4")
        .arg(dir.join("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    assert!(wait_until(Duration::from_secs(10), || port_open(port)));
    let st = stack("tls");
    let host = format!("tcp://127.0.0.1:{port}");
    // Without the client's files osmen says which one is missing.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = {
        let o = st
            .cmd(&["ps"])
            .env("DOCKER_HOST", &host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &empty)
            .output()
            .unwrap();
        let (a, b) = crate::util::text(&o);
        (o.status.code(), a, b)
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ca.pem is missing"), "{err}");
    // Plain HTTP to a TLS port is refused, not silently accepted; so is a client whose
    // certificate the engine's CA did not sign.
    let o = st.cmd(&["ps"]).env("DOCKER_HOST", &host).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stranger = dir.join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    self_signed(&stranger, "key.pem", "cert.pem", "/CN=stranger");
    std::fs::copy(dir.join("ca.pem"), stranger.join("ca.pem")).unwrap();
    let o = st
        .cmd(&["ps"])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &stranger)
        .output()
        .unwrap();
    let (_, err) = crate::util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("DOCKER_CERT_PATH holds the CA"), "{err}");
    round_trip(
        &st,
        &[
            ("DOCKER_HOST", host.clone()),
            ("DOCKER_TLS_VERIFY", "1".into()),
            ("DOCKER_CERT_PATH", dir.join("client").display().to_string()),
        ],
    );
    // The same engine through a Docker context the Docker CLI made with the same files:
    // the context store's TLS folder is used, with no TLS variable set.
    let config = dir.join("docker-config");
    let c = dir.join("client");
    let made = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args([
            "context",
            "create",
            "osmen-tls",
            "--docker",
            &format!(
                "host={host},ca={},cert={},key={}",
                c.join("ca.pem").display(),
                c.join("cert.pem").display(),
                c.join("key.pem").display()
            ),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", crate::util::text(&made).1);
    // The context's endpoint is the TLS-only port (plain HTTP is refused there, above), so
    // the round trip below can only pass with the context's TLS files.
    let o = st
        .cmd(&["doctor"])
        .env("DOCKER_CONFIG", &config)
        .env("DOCKER_CONTEXT", "osmen-tls")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .output()
        .unwrap();
    let (out, _) = crate::util::text(&o);
    assert!(
        out.contains(&format!(
            "context osmen-tls (chosen by DOCKER_CONTEXT), endpoint {host}"
        )),
        "{out}"
    );
    round_trip(
        &st,
        &[
            ("DOCKER_CONFIG", config.display().to_string()),
            ("DOCKER_CONTEXT", "osmen-tls".into()),
            ("DOCKER_HOST", String::new()),
            ("DOCKER_TLS_VERIFY", String::new()),
            ("DOCKER_CERT_PATH", String::new()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An sshd on a loopback port with its own host key, the test's client key authorised,
/// and an ssh_config that pins both.
struct Sshd {
    child: Option<Bg>,
    port: u16,
    config: PathBuf,
    dir: PathBuf,
}

impl Sshd {
    fn start(tag: &str) -> Sshd {
        let dir = std::env::temp_dir().join(format!("osmen-sshd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::create_dir_all("/run/sshd");
        for key in ["host_key", "client_key"] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .output()
                .unwrap();
            assert!(o.status.success());
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\n\
                 AllowStreamLocalForwarding yes\n"
            ),
        )
        .unwrap();
        let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        let mut pub_parts = host_pub.split_whitespace();
        let (kt, kb) = (pub_parts.next().unwrap(), pub_parts.next().unwrap());
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kt} {kb}\n"),
        )
        .unwrap();
        let config = dir.join("ssh_config");
        std::fs::write(
            &config,
            format!(
                "Host 127.0.0.1\n  IdentityFile {d}/client_key\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n"
            ),
        )
        .unwrap();
        let mut d = Sshd {
            child: None,
            port,
            config,
            dir,
        };
        d.run();
        d
    }

    fn run(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(Bg(child));
        assert!(wait_until(Duration::from_secs(10), || port_open(self.port)));
    }

    /// The server and every session it serves go away, as when the link is lost.
    fn stop(&mut self) {
        if let Some(bg) = self.child.take() {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &bg.0.id().to_string()])
                .status();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Its sessions too: they outlive the listener.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".into())
}

#[test]
fn ssh_to_an_sshd_on_loopback() {
    if !docker_ready() || !need("sshd") {
        return;
    }
    let sshd = Sshd::start("rt");
    let st = stack("ssh");
    let host = format!("ssh://{}@127.0.0.1:{}", user(), sshd.port);
    round_trip(
        &st,
        &[
            ("DOCKER_HOST", host.clone()),
            ("OSMEN_SSH_CONFIG", sshd.config.display().to_string()),
        ],
    );
    // A host that is an ssh option is refused before ssh runs.
    let o = st
        .cmd(&["ps"])
        .env("DOCKER_HOST", "ssh://-oProxyCommand=touch${IFS}/tmp/pwned")
        .output()
        .unwrap();
    let (_, err) = crate::util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a host name"), "{err}");
    // A key the server does not know: ssh's own reason, and no process left behind.
    std::fs::write(sshd.dir.join("authorized_keys"), "").unwrap();
    let o = st
        .cmd(&["ps"])
        .env("DOCKER_HOST", &host)
        .env("OSMEN_SSH_CONFIG", &sshd.config)
        .output()
        .unwrap();
    let (_, err) = crate::util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
}

/// The ssh link lost for a while: `status --watch` stays alive and says the engine is
/// unreachable, then the tunnel's keeper reconnects and the view resynchronises.
#[test]
fn a_lost_ssh_link_degrades_like_a_lost_engine_and_recovers() {
    if !docker_ready() || !need("sshd") {
        return;
    }
    let mut sshd = Sshd::start("cut");
    let st = stack("sshcut");
    let (code, so, se) = st.run(&["up", "--wait"]);
    assert_eq!(code, 0, "{so}{se}");
    let watch = crate::util::Watch::start(
        st.cmd(&["status", "--watch"])
            .env(
                "DOCKER_HOST",
                format!("ssh://{}@127.0.0.1:{}", user(), sshd.port),
            )
            .env("OSMEN_SSH_CONFIG", &sshd.config),
    );
    assert!(
        wait_until(Duration::from_secs(30), || watch
            .frame()
            .contains("containers ok")),
        "{}",
        watch.frame()
    );
    sshd.stop();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let f = watch.frame();
            f.contains("engine unreachable") && f.contains("since")
        }),
        "{}",
        watch.frame()
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(watch.alive(), "status --watch died");
    sshd.run();
    let back = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || watch
            .frame()
            .contains("containers ok")),
        "not back:\n{}",
        watch.frame()
    );
    eprintln!(
        "ssh link lost: status --watch back {:.1} s after sshd returned",
        back.elapsed().as_secs_f64()
    );
    assert!(watch.alive(), "status --watch died");
    // Killed outright (SIGKILL: no unwinding), osmen still takes its ssh with it.
    drop(watch);
    let config = sshd.config.display().to_string();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let o = Command::new("pgrep")
                .args(["-f", &config])
                .output()
                .unwrap();
            o.stdout.is_empty()
        }),
        "an ssh tunnel outlived osmen"
    );
}
