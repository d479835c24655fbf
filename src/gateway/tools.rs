//! The agents' context tools. They read the real machine: /proc for load and memory,
//! statvfs for disk, /proc/net/tcp* for listening sockets, sshd_config, PATH, the
//! reboot flag and the firewall. Each returns text for the prompt and data for the API.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sys;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Host CPU load, memory and disk, from /proc and statvfs.
pub fn system_status() -> Value {
    let load: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut mem: BTreeMap<String, u64> = BTreeMap::new();
    for line in read("/proc/meminfo").lines() {
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next())
            && let Ok(kb) = v.parse::<u64>()
        {
            mem.insert(k.trim_end_matches(':').to_string(), kb * 1024);
        }
    }
    let total = mem.get("MemTotal").copied().unwrap_or(0);
    let avail = mem.get("MemAvailable").copied().unwrap_or(0);
    let root = sys::space("/").ok();
    json!({
        "cpus": cpus,
        "load_1m": load.first(),
        "load_5m": load.get(1),
        "load_15m": load.get(2),
        "memory_total_bytes": total,
        "memory_available_bytes": avail,
        "memory_used_percent": if total > 0 { (total - avail) as f64 / total as f64 * 100.0 } else { 0.0 },
        "disk_root_total_bytes": root.map(|r| r.total),
        "disk_root_available_bytes": root.map(|r| r.available),
    })
}

/// A listening TCP socket from /proc/net/tcp or tcp6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: String,
    pub port: u16,
    pub loopback: bool,
}

/// Parses /proc/net/tcp(6) text into listening sockets (state 0A).
pub fn parse_listeners(text: &str, v6: bool) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 || f[3] != "0A" {
            continue;
        }
        let Some((addr_hex, port_hex)) = f[1].split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port_hex, 16) else {
            continue;
        };
        let (addr, loopback) = if !v6 && addr_hex.len() == 8 {
            let n = u32::from_str_radix(addr_hex, 16).unwrap_or(0);
            // The kernel prints the address in host (little-endian) byte order.
            let ip = std::net::Ipv4Addr::from(n.swap_bytes());
            (ip.to_string(), ip.is_loopback())
        } else if addr_hex.len() == 32 {
            let mut bytes = [0u8; 16];
            for (i, chunk) in addr_hex.as_bytes().chunks(8).enumerate() {
                let word = u32::from_str_radix(std::str::from_utf8(chunk).unwrap_or("0"), 16)
                    .unwrap_or(0)
                    .swap_bytes();
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            let ip = std::net::Ipv6Addr::from(bytes);
            let lo = ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
            (ip.to_string(), lo)
        } else {
            continue;
        };
        out.push(Listener {
            addr,
            port,
            loopback,
        });
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1 low, 2 medium, 3 high.
    pub severity: u8,
    pub text: String,
}

/// Risky settings in an sshd_config text.
pub fn sshd_findings(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        let mut it = l.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let (k, v) = (k.to_ascii_lowercase(), v.to_ascii_lowercase());
        match (k.as_str(), v.as_str()) {
            ("permitrootlogin", "yes") => out.push(Finding {
                severity: 3,
                text: "sshd permits root login with a password (PermitRootLogin yes)".into(),
            }),
            ("permitemptypasswords", "yes") => out.push(Finding {
                severity: 3,
                text: "sshd permits empty passwords".into(),
            }),
            ("passwordauthentication", "yes") => out.push(Finding {
                severity: 2,
                text: "sshd accepts password logins (PasswordAuthentication yes)".into(),
            }),
            _ => {}
        }
    }
    out
}

/// The boot-hardening checks on this machine, with an overall status.
pub fn boot_hardening() -> Value {
    let mut findings: Vec<Finding> = Vec::new();
    let mut listeners = parse_listeners(&read("/proc/net/tcp"), false);
    listeners.extend(parse_listeners(&read("/proc/net/tcp6"), true));
    let exposed: Vec<String> = listeners
        .iter()
        .filter(|l| !l.loopback)
        .map(|l| format!("{}:{}", l.addr, l.port))
        .collect();
    if !exposed.is_empty() {
        findings.push(Finding {
            severity: if exposed.len() > 5 { 2 } else { 1 },
            text: format!(
                "{} socket(s) listen beyond loopback: {}",
                exposed.len(),
                exposed.join(", ")
            ),
        });
    }
    findings.extend(sshd_findings(&read("/etc/ssh/sshd_config")));
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(dir)
            && m.permissions().mode() & 0o002 != 0
            && m.permissions().mode() & 0o1000 == 0
        {
            findings.push(Finding {
                severity: 3,
                text: format!("{dir} on PATH is world-writable"),
            });
        }
    }
    if Path::new("/var/run/reboot-required").exists() {
        findings.push(Finding {
            severity: 1,
            text: "a reboot is pending (/var/run/reboot-required)".into(),
        });
    }
    let firewall = [
        "/usr/sbin/nft",
        "/sbin/nft",
        "/usr/sbin/iptables",
        "/sbin/iptables",
        "/usr/sbin/ufw",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if !firewall {
        findings.push(Finding {
            severity: 2,
            text: "no firewall tool (nft, iptables, ufw) is installed".into(),
        });
    }
    let worst = findings.iter().map(|f| f.severity).max().unwrap_or(0);
    let highs = findings.iter().filter(|f| f.severity == 3).count();
    let status = match (worst, highs) {
        (0, _) => "good",
        (1, _) => "moderate",
        (2, _) => "needs_attention",
        (_, 1) => "needs_attention",
        _ => "critical",
    };
    json!({
        "status": status,
        "listening_sockets": listeners.len(),
        "exposed_sockets": exposed,
        "findings": findings.iter().map(|f| json!({"severity": f.severity, "finding": f.text})).collect::<Vec<_>>(),
    })
}

/// A tool's facts as the prompt and the answer carry them: the value and its text,
/// rendered once.
#[derive(Debug)]
pub struct Facts {
    pub value: Value,
    /// The value as pretty JSON, empty for no facts.
    pub text: String,
    pub at: Instant,
}

impl Facts {
    pub fn new(value: Value) -> Facts {
        let text = if value.is_null() {
            String::new()
        } else {
            serde_json::to_string_pretty(&value).unwrap_or_default()
        };
        Facts {
            value,
            text,
            at: Instant::now(),
        }
    }
}

/// How long machine-wide facts (load, memory, disk, sockets, the stack) are shared
/// between requests before they are read again.
pub const FACTS_MAX_AGE: Duration = Duration::from_secs(1);

/// Facts that do not depend on the request, read at most once per [`FACTS_MAX_AGE`] and
/// shared by every request meanwhile; one reader refreshes while the others wait for it.
pub struct Shared {
    last: Mutex<Option<Arc<Facts>>>,
    refresh: tokio::sync::Mutex<()>,
    max_age: Duration,
}

impl Shared {
    pub fn new(max_age: Duration) -> Shared {
        Shared {
            last: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            max_age,
        }
    }

    fn fresh(&self) -> Option<Arc<Facts>> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|f| f.at.elapsed() < self.max_age)
            .cloned()
    }

    /// The shared facts, read with `read` when the last are older than the max age.
    pub async fn get<F, Fut>(&self, read: F) -> Arc<Facts>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Value>,
    {
        if let Some(f) = self.fresh() {
            return f;
        }
        let _one = self.refresh.lock().await;
        // Another request may have read them while this one waited.
        if let Some(f) = self.fresh() {
            return f;
        }
        let f = Arc::new(Facts::new(read().await));
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(f.clone());
        f
    }
}

/// Focus sessions, one per API key.
#[derive(Default)]
pub struct Focus {
    sessions: Mutex<BTreeMap<String, (Instant, Duration)>>,
}

impl Focus {
    /// Reads the command from the input (`start [minutes]`, `stop`, anything else is a
    /// status question) and returns the session state.
    pub fn handle(&self, key_id: &str, input: &str, now: Instant) -> Value {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let words: Vec<&str> = input.split_whitespace().collect();
        let cmd = words
            .first()
            .map(|w| w.to_ascii_lowercase())
            .unwrap_or_default();
        match cmd.as_str() {
            "start" => {
                let minutes = words
                    .get(1)
                    .and_then(|m| m.parse::<u64>().ok())
                    .unwrap_or(25)
                    .clamp(1, 480);
                s.insert(key_id.to_string(), (now, Duration::from_secs(minutes * 60)));
            }
            "stop" => {
                s.remove(key_id);
            }
            _ => {}
        }
        match s.get(key_id) {
            Some((start, len)) => {
                let elapsed = now.duration_since(*start);
                if elapsed >= *len {
                    json!({"session": "finished", "minutes": len.as_secs() / 60})
                } else {
                    json!({
                        "session": "active",
                        "minutes": len.as_secs() / 60,
                        "remaining_seconds": (*len - elapsed).as_secs(),
                    })
                }
            }
            None => json!({"session": "none"}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_listeners() {
        let v4 = "  sl  local_address rem_address   st\n   \
                  0: 0100007F:1F90 00000000:0000 0A 00000000\n   \
                  1: 00000000:0016 00000000:0000 0A 00000000\n   \
                  2: 0100007F:A1B2 0100007F:1F90 01 00000000\n";
        let l = parse_listeners(v4, false);
        assert_eq!(l.len(), 2);
        assert_eq!(
            (l[0].addr.as_str(), l[0].port, l[0].loopback),
            ("127.0.0.1", 8080, true)
        );
        assert_eq!(
            (l[1].addr.as_str(), l[1].port, l[1].loopback),
            ("0.0.0.0", 22, false)
        );
        let v6 = "sl local\n 0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A x\n";
        let l = parse_listeners(v6, true);
        assert_eq!(
            (l[0].addr.as_str(), l[0].port, l[0].loopback),
            ("::1", 80, true)
        );
    }

    #[test]
    fn sshd_settings() {
        let f = sshd_findings(
            "# PermitRootLogin yes\nPermitRootLogin yes\nPasswordAuthentication no\n",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, 3);
    }

    #[test]
    fn focus_sessions_per_key() {
        let f = Focus::default();
        let t = Instant::now();
        assert_eq!(f.handle("a", "start 30", t)["session"], "active");
        assert_eq!(f.handle("b", "status", t)["session"], "none");
        let v = f.handle("a", "how long?", t + Duration::from_secs(60));
        assert_eq!(v["remaining_seconds"], 29 * 60);
        assert_eq!(
            f.handle("a", "status", t + Duration::from_secs(1900))["session"],
            "finished"
        );
        assert_eq!(f.handle("a", "stop", t)["session"], "none");
    }

    #[tokio::test]
    async fn shared_facts_are_read_once_per_max_age() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let reads = AtomicU32::new(0);
        let shared = Shared::new(Duration::from_millis(200));
        let read = || async {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            json!({ "read": n })
        };
        let a = shared.get(read).await;
        let b = shared.get(read).await;
        assert!(
            Arc::ptr_eq(&a, &b),
            "a second request within the max age shares the facts"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert_eq!(a.text, "{\n  \"read\": 1\n}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let c = shared.get(read).await;
        assert_eq!(
            c.value["read"], 2,
            "facts older than the max age are read again"
        );
        // Concurrent requests on stale facts: one read between them.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (x, y) = tokio::join!(shared.get(read), shared.get(read));
        assert!(Arc::ptr_eq(&x, &y));
        assert_eq!(reads.load(Ordering::SeqCst), 3);
        assert!(Facts::new(Value::Null).text.is_empty());
    }

    #[test]
    fn live_checks_run_here() {
        let s = system_status();
        assert!(s["memory_total_bytes"].as_u64().unwrap() > 0);
        let b = boot_hardening();
        assert!(
            ["good", "moderate", "needs_attention", "critical"]
                .contains(&b["status"].as_str().unwrap())
        );
    }
}
