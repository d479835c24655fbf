//! What osmen knows about one container of the stack, as `ps` and the console show it.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The service defines no health check.
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(s: &str) -> Health {
        match s {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Health::None => "",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The host this machine uses for a port the engine publishes on `host_ip`: loopback
/// for a local engine; for an engine on `remote`, that host when the port is published on
/// every address, and None when only the remote machine's loopback has it.
pub fn published_host(remote: Option<&str>, host_ip: &str) -> Option<String> {
    let every = matches!(host_ip, "" | "0.0.0.0" | "::");
    match remote {
        None if every || host_ip == "127.0.0.1" => Some("127.0.0.1".into()),
        None => Some(host_ip.to_string()),
        Some(h) if every => Some(if h.contains(':') {
            format!("[{h}]")
        } else {
            h.to_string()
        }),
        Some(_) if host_ip == "127.0.0.1" || host_ip == "::1" => None,
        Some(_) => Some(host_ip.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRow {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

impl std::fmt::Display for PortRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An IPv6 address in brackets, as `docker ps` prints it: `[::1]:8080->80/tcp`.
        if self.host_ip.contains(':') {
            write!(f, "[{}]", self.host_ip)?;
        } else {
            write!(f, "{}", self.host_ip)?;
        }
        write!(
            f,
            ":{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

#[cfg(test)]
mod port_row_tests {
    use super::PortRow;

    #[test]
    fn ipv6_host_addresses_print_in_brackets() {
        let row = |ip: &str| PortRow {
            host_ip: ip.into(),
            host_port: 47300,
            container_port: 81,
            protocol: "udp".into(),
        };
        assert_eq!(row("::1").to_string(), "[::1]:47300->81/udp");
        assert_eq!(row("127.0.0.1").to_string(), "127.0.0.1:47300->81/udp");
    }
}

/// One container of the project, from the engine's point of view.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerRow {
    pub service: String,
    pub name: String,
    pub id: String,
    pub number: u32,
    pub image: String,
    /// created, running, restarting, exited, paused, dead.
    pub state: String,
    pub health: Health,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub started_at: String,
    /// When the container was created (RFC 3339): a recreated container starts its
    /// restart count afresh.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// The kernel's OOM killer ended the container's last run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    pub ports: Vec<PortRow>,
    /// Last health-check output, trimmed; empty when there is none.
    pub health_output: String,
    pub config_hash: String,
    /// Created by osmen (false: adopted from Compose or another tool).
    pub managed: bool,
    /// CPU limit in cores (HostConfig.NanoCpus), if any.
    pub cpu_limit: Option<f64>,
    /// Memory limit in bytes (HostConfig.Memory), if any.
    pub memory_limit: Option<u64>,
    /// The container's IP address on each of its networks (what the probes reach when no
    /// port is published on loopback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

impl ContainerRow {
    /// A one-word status an operator reads first: `healthy`, `running`, `exited(1)`...
    pub fn status_word(&self) -> String {
        match (self.state.as_str(), &self.health) {
            ("running", Health::None) => "running".into(),
            ("running", h) => h.as_str().into(),
            ("exited", _) => format!("exited({})", self.exit_code.unwrap_or(0)),
            (s, _) => s.into(),
        }
    }
}
