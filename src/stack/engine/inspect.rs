//! The engine's answers read into osmen's rows: a container's inspect as a row and as
//! the inspect pane, its log output as text.

use super::*;

/// The inspect pane's content from the engine's answer (masked by the caller's
/// `Inspection::masked`).
pub(super) fn inspection_from(c: ContainerInspectResponse) -> Inspection {
    let cfg = c.config.clone().unwrap_or_default();
    let state = c.state.clone().unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let mut labels: Vec<(String, String)> =
        cfg.labels.clone().unwrap_or_default().into_iter().collect();
    labels.sort();
    let mounts = c
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            format!(
                "{} {} -> {} ({})",
                m.typ.unwrap_or_default(),
                m.name.or(m.source).unwrap_or_default(),
                m.destination.unwrap_or_default(),
                if m.rw.unwrap_or(true) { "rw" } else { "ro" }
            )
        })
        .collect();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, e)| {
            let aliases = e.aliases.unwrap_or_default();
            let mut l = format!("{name} {}", e.ip_address.unwrap_or_default());
            if !aliases.is_empty() {
                l.push_str(&format!(" (aliases {})", aliases.join(", ")));
            }
            l
        })
        .collect();
    networks.sort();
    let command: Vec<String> = cfg
        .entrypoint
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(cfg.cmd.clone().unwrap_or_default())
        .collect();
    Inspection {
        container: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: cfg.image.clone().unwrap_or_default(),
        // Secret options' values never reach the pane (`--requirepass x`).
        command: crate::model::secret::mask_command(&command).join(" "),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        created: c.created.clone().map(|t| t.to_string()).unwrap_or_default(),
        env: cfg.env.clone().unwrap_or_default(),
        mounts,
        labels,
        networks,
        health_status: health.status.map(|s| s.to_string()).unwrap_or_default(),
        health_log: health
            .log
            .unwrap_or_default()
            .into_iter()
            .map(|r| HealthRun {
                start: r.start.map(|t| t.to_string()).unwrap_or_default(),
                exit_code: r.exit_code.unwrap_or(-1),
                output: r.output.unwrap_or_default(),
            })
            .collect(),
    }
    .masked()
}

/// One piece of a container's output as text, with the stream it came from.
pub(super) fn log_chunk(o: bollard::container::LogOutput) -> LogChunk {
    use bollard::container::LogOutput;
    let (stream, bytes) = match o {
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdOut { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => (LogStream::Stdout, message),
    };
    LogChunk {
        stream,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub(super) fn row_from_inspect(c: ContainerInspectResponse) -> ContainerRow {
    let labels = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.labels.clone())
        .unwrap_or_default();
    let state = c.state.clone().unwrap_or_default();
    let health = state.health.clone().unwrap_or_default();
    let health_output = health
        .log
        .as_ref()
        .and_then(|l| l.last())
        .and_then(|r| r.output.clone())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(300)
        .collect();
    let mut ports: Vec<PortRow> = Vec::new();
    if let Some(map) = c.network_settings.as_ref().and_then(|n| n.ports.clone()) {
        for (key, binds) in map {
            let (cport, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            for b in binds.unwrap_or_default() {
                ports.push(PortRow {
                    host_ip: b.host_ip.unwrap_or_default(),
                    host_port: b.host_port.and_then(|p| p.parse().ok()).unwrap_or(0),
                    container_port: cport.parse().unwrap_or(0),
                    protocol: proto.to_string(),
                });
            }
        }
    }
    ports.sort_by_key(|p| (p.container_port, p.host_ip.clone()));
    let addresses = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|nets| {
            nets.values()
                .filter_map(|e| e.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .collect()
        })
        .unwrap_or_default();
    ContainerRow {
        addresses,
        service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
        number: labels
            .get(LABEL_NUMBER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        config_hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
        managed: labels.contains_key(LABEL_OSMEN),
        cpu_limit: c.host_config.as_ref().and_then(cpu_limit_of),
        memory_limit: c
            .host_config
            .as_ref()
            .and_then(|h| h.memory)
            .filter(|m| *m > 0)
            .map(|m| m as u64),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        id: c.id.unwrap_or_default(),
        image: c.config.and_then(|cfg| cfg.image).unwrap_or_default(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health: health
            .status
            .map(|s| Health::parse(s.as_ref()))
            .unwrap_or(Health::None),
        exit_code: state.exit_code,
        restart_count: c.restart_count.unwrap_or(0),
        started_at: state.started_at.unwrap_or_default(),
        created: c.created.clone().map(|t| t.to_string()).unwrap_or_default(),
        oom_killed: state.oom_killed.unwrap_or(false),
        ports,
        health_output,
    }
}

/// The CPU limit in cores: `--cpus` (NanoCpus), else a CFS quota over its period
/// (`cpu_quota`/`cpu_period`, as `docker update --cpu-quota` sets it).
pub(super) fn cpu_limit_of(h: &bollard::models::HostConfig) -> Option<f64> {
    if let Some(n) = h.nano_cpus.filter(|n| *n > 0) {
        return Some(n as f64 / 1e9);
    }
    let quota = h.cpu_quota.filter(|q| *q > 0)?;
    let period = h.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
    Some(quota as f64 / period as f64)
}
