//! Where the engine is: `DOCKER_HOST` read as the Docker CLI reads it. `unix://` and plain
//! `tcp://` as they are; `tcp://` with `DOCKER_TLS_VERIFY` set uses the client certificate
//! and CA of `DOCKER_CERT_PATH` (default `~/.docker`); `ssh://[user@]host[:port][/socket]`
//! keeps one `ssh` forwarding a local Unix socket to the remote engine's socket.
//!
//! The ssh tunnel is the only process osmen starts: the fixed program `ssh` with an
//! argument vector, the user and host checked before they get there (a host such as
//! `-oProxyCommand=...` is refused, and `--` ends ssh's options), so no string from
//! `DOCKER_HOST` reaches a shell. bollard's own ssh transport was not used: it passes
//! `host:port` to ssh as a host name (so any port fails) and starts a new master connection
//! per HTTP connection that it leaves running (`ControlPersist=forever`). A lost link is
//! retried by a keeper with backoff, so a remote engine degrades as a local one does:
//! the console says it is unreachable, then resynchronises when ssh is back.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// The remote engine's socket when the URL names none.
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";
/// How long the first connection may take before osmen gives up on it.
const SSH_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const SSH_RETRY_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub socket: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
    Tls { addr: String, files: TlsFiles },
    Ssh(SshTarget),
}

impl Endpoint {
    /// The engine's machine when it is not this one: where its published ports are.
    pub fn remote_host(&self) -> Option<String> {
        if self.is_local() {
            return None;
        }
        match self {
            Endpoint::Ssh(t) => Some(t.host.clone()),
            Endpoint::Tcp(a) | Endpoint::Tls { addr: a, .. } => {
                let hp = a.split_once("://").map(|(_, r)| r).unwrap_or(a);
                let host = match hp.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(v6),
                    None => hp.rsplit_once(':').map(|(h, _)| h).unwrap_or(hp),
                };
                Some(host.to_string())
            }
            Endpoint::Unix(_) => None,
        }
    }

    /// True when the engine's published ports are this machine's (a Unix socket, or TCP
    /// to a loopback address).
    pub fn is_local(&self) -> bool {
        match self {
            Endpoint::Unix(_) => true,
            Endpoint::Tcp(a) | Endpoint::Tls { addr: a, .. } => {
                let hp = a.split_once("://").map(|(_, r)| r).unwrap_or(a);
                let host = match hp.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or(v6),
                    None => hp.rsplit_once(':').map(|(h, _)| h).unwrap_or(hp),
                };
                matches!(host, "127.0.0.1" | "localhost" | "::1")
            }
            Endpoint::Ssh(_) => false,
        }
    }
}

/// The machine of the engine `DOCKER_HOST` names, when it is not this one (None for a
/// local engine or an address osmen cannot read; connecting reports that).
pub fn remote_host_from_env() -> Option<String> {
    endpoint(&HostEnv::from_process()).ok()?.remote_host()
}

/// The variables the Docker CLI reads, as osmen reads them.
#[derive(Debug, Clone, Default)]
pub struct HostEnv {
    pub docker_host: Option<String>,
    pub tls_verify: Option<String>,
    pub cert_path: Option<String>,
    pub home: Option<String>,
    /// The Docker context in use and what chose it (see [`super::context`]).
    pub context: String,
    pub context_by: &'static str,
    /// Why the context could not be read (a missing context): connecting fails with it.
    pub context_error: Option<super::context::ContextError>,
}

impl HostEnv {
    /// The engine the Docker CLI would use: `DOCKER_HOST` and the TLS variables, or the
    /// endpoint and TLS files of the Docker context in use.
    pub fn from_process() -> HostEnv {
        HostEnv::with_context(&super::context::ContextEnv::from_process())
    }

    pub fn with_context(ctx: &super::context::ContextEnv) -> HostEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut env = HostEnv {
            docker_host: ctx.docker_host.clone(),
            tls_verify: var("DOCKER_TLS_VERIFY"),
            cert_path: var("DOCKER_CERT_PATH"),
            home: var("HOME"),
            context: super::context::DEFAULT_CONTEXT.into(),
            context_by: "default",
            context_error: None,
        };
        match super::context::resolve(ctx) {
            Ok(c) => {
                env.context = c.name;
                env.context_by = c.chosen_by;
                if let Some(host) = c.host {
                    env.docker_host = Some(host);
                    env.tls_verify = c.tls_dir.as_ref().map(|_| "1".to_string());
                    env.cert_path = c.tls_dir.map(|d| d.display().to_string());
                }
            }
            Err(e) => env.context_error = Some(e),
        }
        env
    }

    /// The context and endpoint, as `doctor` shows them.
    pub fn describe(&self) -> String {
        format!(
            "context {} (chosen by {}), endpoint {}",
            self.context,
            self.context_by,
            self.shown()
        )
    }

    /// The address as shown to the operator.
    pub fn shown(&self) -> String {
        self.docker_host
            .clone()
            .unwrap_or_else(|| format!("unix://{DEFAULT_REMOTE_SOCKET}"))
    }
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'
}

/// Why `DOCKER_HOST` names no engine osmen can reach, or the ssh tunnel to it failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The Docker context in use could not be read (see `super::context`).
    #[error(transparent)]
    Context(#[from] super::context::ContextError),
    #[error(
        "DOCKER_HOST {url:?}: {why}; write ssh://user@host, ssh://user@host:2222 or \
         ssh://user@host/run/docker.sock"
    )]
    BadSsh { url: String, why: String },
    #[error(
        "DOCKER_HOST {host:?}: unsupported scheme; use unix://, tcp:// (with \
         DOCKER_TLS_VERIFY=1 for TLS) or ssh://"
    )]
    Scheme { host: String },
    #[error("DOCKER_HOST {host:?}: no address after the scheme")]
    NoAddress { host: String },
    #[error(
        "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME is: \
         set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem"
    )]
    NoCertPath,
    #[error(
        "DOCKER_TLS_VERIFY is set but {} is missing: put ca.pem, cert.pem and \
         key.pem in DOCKER_CERT_PATH ({})",
        file.display(),
        dir.display()
    )]
    MissingCert { file: PathBuf, dir: PathBuf },
    /// A context made with `ca=` alone: the Docker CLI verifies the engine with the CA and
    /// sends no certificate; osmen's TLS transport needs a client certificate and key.
    #[error(
        "context {context:?} gives the engine's CA but no {} ({}): osmen speaks TLS to an \
         engine only with a client certificate and key (the Docker CLI also accepts a CA \
         alone); add them with `docker context update {context} --docker \
         \"host=...,ca=CA,cert=CERT,key=KEY\"`, or use a context without TLS",
        file.file_name().unwrap_or_default().to_string_lossy(),
        file.display()
    )]
    ContextCert { context: String, file: PathBuf },
    #[error("cannot create {}: {source}", dir.display())]
    TunnelDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("OSMEN_SSH_CONFIG names {}, which is not a file", path.display())]
    SshConfig { path: PathBuf },
    #[error("cannot run ssh: {source} (install the OpenSSH client)")]
    NoSsh { source: std::io::Error },
    #[error("ssh to {host} ended ({status}): {message}")]
    SshEnded {
        host: String,
        status: std::process::ExitStatus,
        message: String,
    },
    #[error("ssh to {host} forwarded no socket within {}s", within.as_secs())]
    NoSocket { host: String, within: Duration },
}

/// Parses `ssh://[user@]host[:port][/path/to/docker.sock]`, refusing anything ssh could
/// read as an option or that could not be a user, host or port.
pub fn parse_ssh(url: &str) -> Result<SshTarget, RemoteError> {
    let bad = |why: &str| RemoteError::BadSsh {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("ssh://")
        .ok_or_else(|| bad("not an ssh:// address"))?;
    let (authority, socket) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let socket = match socket {
        "" | "/" => DEFAULT_REMOTE_SOCKET.to_string(),
        s if s.chars().all(|c| is_host_char(c) || c == '/') => s.to_string(),
        _ => {
            return Err(bad(
                "the socket path may hold only letters, digits, . _ - and /",
            ));
        }
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if let Some(u) = user
        && (u.is_empty() || u.starts_with('-') || !u.chars().all(is_host_char))
    {
        return Err(bad(&format!("{u:?} is not a user name")));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(&format!("{h:?} is not an IPv6 address")));
        }
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty()
        || host.starts_with('-')
        || !host.chars().all(|c| is_host_char(c) || c == ':')
    {
        return Err(bad(&format!("{host:?} is not a host name")));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("port {p:?} is not 1-65535")))?,
        ),
    };
    Ok(SshTarget {
        user: user.map(String::from),
        host,
        port,
        socket,
    })
}

/// Where `DOCKER_HOST` (and the TLS variables) point.
pub fn endpoint(env: &HostEnv) -> Result<Endpoint, RemoteError> {
    if let Some(e) = &env.context_error {
        return Err(RemoteError::Context(e.clone()));
    }
    let host = env.shown();
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if host.starts_with("ssh://") {
        return parse_ssh(&host).map(Endpoint::Ssh);
    }
    let addr = if let Some(r) = host.strip_prefix("tcp://") {
        r
    } else if let Some(r) = host.strip_prefix("https://") {
        r
    } else if let Some(r) = host.strip_prefix("http://") {
        r
    } else {
        return Err(RemoteError::Scheme { host });
    };
    let addr = addr.trim_end_matches('/');
    if addr.is_empty() {
        return Err(RemoteError::NoAddress { host });
    }
    if env.tls_verify.is_none() && !host.starts_with("https://") {
        return Ok(Endpoint::Tcp(format!("tcp://{addr}")));
    }
    let dir = match (&env.cert_path, &env.home) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(h)) => Path::new(h).join(".docker"),
        (None, None) => {
            return Err(RemoteError::NoCertPath);
        }
    };
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    for f in [&files.ca, &files.cert, &files.key] {
        let from_context =
            !env.context.is_empty() && env.context != super::context::DEFAULT_CONTEXT;
        if !f.is_file() && from_context {
            return Err(RemoteError::ContextCert {
                context: env.context.clone(),
                file: f.clone(),
            });
        }
        if !f.is_file() {
            return Err(RemoteError::MissingCert {
                file: f.clone(),
                dir: dir.clone(),
            });
        }
    }
    Ok(Endpoint::Tls {
        addr: format!("tcp://{addr}"),
        files,
    })
}

/// The arguments of the one `ssh` osmen runs: no remote command, one Unix-socket forward.
pub fn ssh_args(t: &SshTarget, local: &Path, config: Option<&Path>) -> Vec<String> {
    let mut a: Vec<String> = vec!["-nNT".into()];
    for o in [
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "ServerAliveInterval=5",
        "ServerAliveCountMax=2",
        "ConnectTimeout=10",
        "StreamLocalBindUnlink=yes",
    ] {
        a.push("-o".into());
        a.push(o.into());
    }
    a.push("-L".into());
    a.push(format!("{}:{}", local.display(), t.socket));
    if let Some(c) = config {
        a.push("-F".into());
        a.push(c.display().to_string());
    }
    if let Some(p) = t.port {
        a.push("-p".into());
        a.push(p.to_string());
    }
    if let Some(u) = &t.user {
        a.push("-l".into());
        a.push(u.clone());
    }
    a.push("--".into());
    a.push(t.host.clone());
    a
}

/// An `ssh -L` kept running for as long as the engine handle lives: the local socket
/// bollard talks to, and a keeper that starts ssh again (with backoff) when the link drops.
pub struct SshTunnel {
    pub socket: PathBuf,
    dir: PathBuf,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for SshTunnel {
    fn drop(&mut self) {
        // Aborting drops the child, and kill_on_drop ends ssh.
        self.keeper.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_ssh(args: &[String], stderr: bool) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true);
    // kill_on_drop needs osmen to unwind; a SIGKILLed osmen would leave the tunnel (and
    // its session on the remote) behind. The kernel ends ssh when its parent thread dies
    // (the runtime's threads live as long as osmen).
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

impl SshTunnel {
    /// Starts ssh and waits until the forwarded socket exists; ssh's own message when it
    /// could not connect. `OSMEN_SSH_CONFIG` names an ssh_config file to use instead of
    /// the user's (`ssh -F`).
    pub async fn open(t: &SshTarget) -> Result<SshTunnel, RemoteError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "osmen-ssh-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|source| RemoteError::TunnelDir {
                    dir: dir.clone(),
                    source,
                })?;
        }
        let socket = dir.join("docker.sock");
        let config = std::env::var_os("OSMEN_SSH_CONFIG").map(PathBuf::from);
        if let Some(c) = &config
            && !c.is_file()
        {
            return Err(RemoteError::SshConfig { path: c.clone() });
        }
        let args = ssh_args(t, &socket, config.as_deref());
        let mut child = spawn_ssh(&args, true).map_err(|source| RemoteError::NoSsh { source })?;
        let started = tokio::time::Instant::now();
        loop {
            if socket.exists() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut msg = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut msg).await;
                }
                let _ = std::fs::remove_dir_all(&dir);
                let msg = msg.trim().lines().last().unwrap_or("").to_string();
                return Err(RemoteError::SshEnded {
                    host: t.host.clone(),
                    status,
                    message: msg,
                });
            }
            if started.elapsed() > SSH_CONNECT_TIMEOUT {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(RemoteError::NoSocket {
                    host: t.host.clone(),
                    within: SSH_CONNECT_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ssh's stderr is no longer read: drop the pipe so ssh never blocks on it.
        drop(child.stderr.take());
        let keeper = tokio::spawn(async move {
            let mut child = child;
            let mut backoff = Duration::from_millis(500);
            loop {
                let up = tokio::time::Instant::now();
                let _ = child.wait().await;
                if up.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_millis(500);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(SSH_RETRY_MAX);
                match spawn_ssh(&args, false) {
                    Ok(c) => child = c,
                    Err(_) => continue,
                }
            }
        });
        Ok(SshTunnel {
            socket,
            dir,
            keeper,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(host: &str) -> HostEnv {
        HostEnv {
            docker_host: Some(host.into()),
            ..HostEnv::default()
        }
    }

    #[test]
    fn ssh_addresses_parse_and_options_are_refused() {
        let t = parse_ssh("ssh://ops@build-01.lan:2222").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("ops"), "build-01.lan", Some(2222))
        );
        assert_eq!(t.socket, DEFAULT_REMOTE_SOCKET);
        let t = parse_ssh("ssh://[::1]:22/run/user/1000/docker.sock").unwrap();
        assert_eq!(
            (t.host.as_str(), t.socket.as_str()),
            ("::1", "/run/user/1000/docker.sock")
        );
        for bad in [
            "ssh://-oProxyCommand=touch%20x",
            "ssh://-oProxyCommand=x@host",
            "ssh://user@-host",
            "ssh://user@host:0",
            "ssh://user@host:99999",
            "ssh://us er@host",
            "ssh://user@ho;st",
            "ssh://user@host/sock;rm",
            "ssh://",
        ] {
            let e = parse_ssh(bad).unwrap_err().to_string();
            assert!(e.contains("DOCKER_HOST"), "{bad}: {e}");
        }
        let t = parse_ssh("ssh://me@h").unwrap();
        let args = ssh_args(&t, Path::new("/tmp/x/docker.sock"), None);
        let n = args.len();
        assert_eq!(&args[n - 2..], ["--", "h"]);
        assert!(args.contains(&"/tmp/x/docker.sock:/var/run/docker.sock".to_string()));
    }

    #[test]
    fn docker_host_is_read_as_the_cli_reads_it() {
        assert_eq!(
            endpoint(&HostEnv::default()).unwrap(),
            Endpoint::Unix(DEFAULT_REMOTE_SOCKET.into())
        );
        assert_eq!(
            endpoint(&env("tcp://10.0.0.5:2375")).unwrap(),
            Endpoint::Tcp("tcp://10.0.0.5:2375".into())
        );
        assert!(!endpoint(&env("tcp://10.0.0.5:2375")).unwrap().is_local());
        assert!(endpoint(&env("tcp://127.0.0.1:2375")).unwrap().is_local());
        assert!(endpoint(&env("tcp://127.0.0.1")).unwrap().is_local());
        assert!(endpoint(&env("tcp://[::1]:2375")).unwrap().is_local());
        assert!(!endpoint(&env("ssh://a@b")).unwrap().is_local());
        let e = endpoint(&env("npipe:////./pipe/docker"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported scheme"), "{e}");
        // TLS: the three files, named when one is missing.
        let dir = std::env::temp_dir().join(format!("osmen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut tls = env("tcp://127.0.0.1:2376");
        tls.tls_verify = Some("1".into());
        tls.cert_path = Some(dir.display().to_string());
        let e = endpoint(&tls).unwrap_err().to_string();
        assert!(e.contains("ca.pem is missing"), "{e}");
        // A context with its CA alone (`docker context create X --docker host=..,ca=..`):
        // named as the context's, with the command that completes it.
        std::fs::write(dir.join("ca.pem"), "x").unwrap();
        let mut ctx = tls.clone();
        ctx.context = "tls-ca-only".into();
        let e = endpoint(&ctx).unwrap_err().to_string();
        assert!(
            e.starts_with("context \"tls-ca-only\" gives the engine's CA but no cert.pem")
                && e.contains("docker context update tls-ca-only")
                && !e.contains("DOCKER_TLS_VERIFY"),
            "{e}"
        );
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        match endpoint(&tls).unwrap() {
            Endpoint::Tls { addr, files } => {
                assert_eq!(addr, "tcp://127.0.0.1:2376");
                assert_eq!(files.key, dir.join("key.pem"));
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
