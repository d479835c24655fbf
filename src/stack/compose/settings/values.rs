//! The per-key value parsers behind `parse_key`: modes, lists, limits, devices, hosts.

use super::*;

pub(super) const NETWORK_MODES: &[&str] = &["host", "none", "bridge", "service:", "container:"];
pub(super) const IPC_MODES: &[&str] = &[
    "host",
    "none",
    "private",
    "shareable",
    "service:",
    "container:",
];
pub(super) const PID_MODES: &[&str] = &["host", "service:", "container:"];

/// A namespace mode: one of `known` (a `prefix:` entry takes a name after it). With
/// `any_name`, a plain word is accepted too (network_mode may name a network).
pub(super) fn mode(
    ctx: &mut Ctx,
    v: &Node,
    p: &str,
    known: &[&str],
    any_name: bool,
) -> Option<String> {
    let s = ctx.scalar(v, p, "a mode")?;
    let ok = known.iter().any(|k| match k.strip_suffix(':') {
        Some(prefix) => s
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| !r.is_empty()),
        None => s == *k,
    }) || (any_name && !s.is_empty() && !s.contains(':'));
    if !ok {
        let forms: Vec<String> = known
            .iter()
            .map(|k| {
                if k.ends_with(':') {
                    format!("{k}NAME")
                } else {
                    k.to_string()
                }
            })
            .collect();
        ctx.err(
            v.pos,
            p,
            format!("invalid mode {s:?}: use {}", forms.join(", ")),
        );
        return None;
    }
    Some(s)
}

/// A list of strings; a single string is refused where the spec asks for a list.
pub(super) fn list(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    if let Kind::Scalar { value, .. } = &v.kind {
        ctx.err(
            v.pos,
            p,
            format!("expected a list, found the string {value:?}: write [{value:?}]"),
        );
        return Vec::new();
    }
    ctx.string_list(v, p)
}

pub(super) fn capabilities(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let caps = list(ctx, v, p);
    for c in &caps {
        let name = c.strip_prefix("CAP_").unwrap_or(c);
        if name.is_empty()
            || !name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            ctx.err(
                v.pos,
                p,
                format!("invalid capability {c:?}: use names such as NET_ADMIN or ALL"),
            );
        }
    }
    caps
}

pub(super) fn int(ctx: &mut Ctx, v: &Node, p: &str, min: i64, max: i64) -> Option<i64> {
    let s = ctx.scalar(v, p, "a whole number")?;
    match s.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Some(n),
        Ok(n) => {
            let range = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            ctx.err(
                v.pos,
                p,
                format!("{n} is out of range: use a number {range}"),
            );
            None
        }
        Err(_) => {
            ctx.err(v.pos, p, format!("expected a whole number, found {s:?}"));
            None
        }
    }
}

/// Microseconds, written as a number or as a duration (`400ms`), as compose-go reads
/// the CPU period and real-time keys.
pub(super) fn micros(ctx: &mut Ctx, v: &Node, p: &str) -> Option<i64> {
    let s = ctx.scalar(v, p, "a number of microseconds or a duration")?;
    if let Ok(n) = s.trim().parse::<i64>() {
        if n >= -1 {
            return Some(n);
        }
    } else if let Ok(d) = parse_duration(&s) {
        return Some(d.as_micros() as i64);
    }
    ctx.err(
        v.pos,
        p,
        format!("invalid value {s:?}: write microseconds (100000) or a duration (\"100ms\")"),
    );
    None
}

pub(super) fn swap(ctx: &mut Ctx, v: &Node, p: &str) -> Option<i64> {
    let s = ctx.scalar(v, p, "a size such as \"1g\", or -1")?;
    if s.trim() == "-1" {
        return Some(-1);
    }
    match parse_bytes(&s) {
        Ok(b) => Some(b as i64),
        Err(m) => {
            ctx.err(v.pos, p, format!("{m}, or -1 for unlimited swap"));
            None
        }
    }
}

pub(super) fn cpuset(ctx: &mut Ctx, v: &Node, p: &str) -> Option<String> {
    let s = ctx.scalar(v, p, "CPUs such as \"0-3\" or \"0,1\"")?;
    let ok = !s.is_empty()
        && s.split(',').all(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
        });
    if !ok {
        ctx.err(
            v.pos,
            p,
            format!("invalid cpuset {s:?}: list CPUs and ranges such as \"0-3\" or \"0,2\""),
        );
        return None;
    }
    Some(s)
}

pub(super) fn mac(ctx: &mut Ctx, v: &Node, p: &str) -> Option<String> {
    let s = ctx.scalar(v, p, "a MAC address")?;
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|x| x.len() == 2 && x.chars().all(|c| c.is_ascii_hexdigit()))
    {
        ctx.err(
            v.pos,
            p,
            format!("invalid MAC address {s:?}: write six hex pairs such as 02:42:ac:11:00:02"),
        );
        return None;
    }
    Some(s)
}

pub(super) fn tmpfs(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = ctx.string_list(v, p);
    for t in &items {
        let path = t.split_once(':').map_or(t.as_str(), |(a, _)| a);
        if !path.starts_with('/') {
            ctx.err(
                v.pos,
                p,
                format!("invalid tmpfs {t:?}: the container path must be absolute (\"/run\")"),
            );
        }
    }
    items
}

pub(super) fn ulimits(ctx: &mut Ctx, v: &Node, p: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Some(m) = ctx.map(v, p) else { return out };
    for (k, val) in m {
        let Some(name) = ctx.scalar(k, p, "a limit name such as nofile") else {
            continue;
        };
        let lp = format!("{p}.{name}");
        let limit = match &val.kind {
            Kind::Map(_) => {
                let mut get = |field: &str| match val.get(field) {
                    Some(n) => int(ctx, n, &format!("{lp}.{field}"), -1, i64::MAX),
                    None => {
                        ctx.err(
                            val.pos,
                            &lp,
                            format!(
                                "a ulimit mapping needs `soft` and `hard`; `{field}` is missing"
                            ),
                        );
                        None
                    }
                };
                let (soft, hard) = (get("soft"), get("hard"));
                for (fk, _) in val.as_map().unwrap_or(&[]) {
                    let f = fk.as_str().unwrap_or("");
                    if f != "soft" && f != "hard" {
                        ctx.err(
                            fk.pos,
                            &format!("{lp}.{f}"),
                            "a ulimit has only soft and hard",
                        );
                    }
                }
                match (soft, hard) {
                    (Some(s), Some(h)) if h != -1 && (s > h || s == -1) => {
                        ctx.err(
                            val.pos,
                            &lp,
                            format!("soft limit {s} is above the hard limit {h}"),
                        );
                        None
                    }
                    (Some(soft), Some(hard)) => Some(Ulimit { soft, hard }),
                    _ => None,
                }
            }
            _ => int(ctx, val, &lp, -1, i64::MAX).map(|n| Ulimit { soft: n, hard: n }),
        };
        if let Some(l) = limit {
            out.insert(name, l);
        }
    }
    out
}

pub(super) fn devices(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<DeviceMap> {
    let mut out = Vec::new();
    for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let dev = if let Kind::Map(_) = it.kind {
            let field = |ctx: &mut Ctx, f: &str| {
                it.get(f)
                    .and_then(|n| ctx.scalar(n, &format!("{ip}.{f}"), "a string"))
            };
            let Some(source) = field(ctx, "source") else {
                ctx.err(
                    it.pos,
                    &ip,
                    "a device mapping needs `source` (the host device)",
                );
                continue;
            };
            DeviceMap {
                target: field(ctx, "target").unwrap_or_else(|| source.clone()),
                permissions: field(ctx, "permissions").unwrap_or_else(|| "rwm".into()),
                source,
            }
        } else {
            let Some(s) = ctx.scalar(it, &ip, "a device such as \"/dev/fuse:/dev/fuse:rwm\"")
            else {
                continue;
            };
            if !s.starts_with('/') && s.contains('=') {
                ctx.err(
                    it.pos,
                    &ip,
                    format!(
                        "{s:?} is a CDI device name, which osmen does not resolve; map the \
                         device node (\"/dev/xyz:/dev/xyz\")"
                    ),
                );
                continue;
            }
            let parts: Vec<&str> = s.split(':').collect();
            let (src, dst, perm) = match parts.as_slice() {
                [a] => (*a, *a, "rwm"),
                [a, b] if is_perm(b) => (*a, *a, *b),
                [a, b] => (*a, *b, "rwm"),
                [a, b, c] => (*a, *b, *c),
                _ => ("", "", ""),
            };
            DeviceMap {
                source: src.into(),
                target: dst.into(),
                permissions: perm.into(),
            }
        };
        if !dev.source.starts_with('/')
            || !dev.target.starts_with('/')
            || !is_perm(&dev.permissions)
        {
            ctx.err(
                it.pos,
                &ip,
                format!(
                    "invalid device {}:{}:{}: write \"/dev/HOST[:/dev/CONTAINER[:rwm]]\" with \
                     absolute paths and permissions from r, w, m",
                    dev.source, dev.target, dev.permissions
                ),
            );
            continue;
        }
        out.push(dev);
    }
    out
}

pub(super) fn is_perm(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| "rwm".contains(c))
}

/// `HOST:IP`, `HOST=IP` or a `HOST: IP` mapping (a list of IPs too), as `HOST:IP`.
pub(super) fn extra_hosts(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let mut pairs: Vec<(String, String, Pos)> = Vec::new();
    match &v.kind {
        Kind::Map(m) => {
            for (k, val) in m {
                let Some(host) = ctx.scalar(k, p, "a host name") else {
                    continue;
                };
                let hp = format!("{p}.{host}");
                let ips = match &val.kind {
                    Kind::Seq(_) => ctx.string_list(val, &hp),
                    _ => ctx.scalar(val, &hp, "an IP address").into_iter().collect(),
                };
                for ip in ips {
                    pairs.push((host.clone(), ip, val.pos));
                }
            }
        }
        _ => {
            for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
                let ip_path = format!("{p}[{i}]");
                let Some(s) = ctx.scalar(it, &ip_path, "\"HOST:IP\"") else {
                    continue;
                };
                match s.split_once('=').or_else(|| s.split_once(':')) {
                    Some((h, ip)) => pairs.push((h.to_string(), ip.to_string(), it.pos)),
                    None => ctx.err(
                        it.pos,
                        &ip_path,
                        format!("invalid extra host {s:?}: write \"HOST:IP\" or \"HOST=IP\""),
                    ),
                }
            }
        }
    }
    let mut out = Vec::new();
    for (host, ip, pos) in pairs {
        let ip = ip
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() || (ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err()) {
            ctx.err(
                pos,
                p,
                format!(
                    "invalid extra host {host}={ip:?}: the address must be an IP or host-gateway"
                ),
            );
            continue;
        }
        out.push(format!("{host}:{ip}"));
    }
    out
}

pub(super) fn blkio(ctx: &mut Ctx, v: &Node, p: &str) -> Option<Blkio> {
    let m = ctx.map(v, p)?;
    let mut b = Blkio::default();
    for (k, val) in m {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        match key {
            "weight" => b.weight = int(ctx, val, &kp, 10, 1000).map(|w| w as u16),
            "weight_device" => {
                b.weight_device = per_device(ctx, val, &kp, "weight", |ctx, n, ip| {
                    int(ctx, n, ip, 10, 1000)
                })
                .into_iter()
                .map(|(path, w)| DeviceWeight {
                    path,
                    weight: w as u16,
                })
                .collect()
            }
            "device_read_bps" | "device_write_bps" => {
                let l = rates(per_device(ctx, val, &kp, "rate", |ctx, n, ip| {
                    ctx.bytes(n, ip).map(|r| r as i64)
                }));
                if key == "device_read_bps" {
                    b.device_read_bps = l;
                } else {
                    b.device_write_bps = l;
                }
            }
            "device_read_iops" | "device_write_iops" => {
                let l = rates(per_device(ctx, val, &kp, "rate", |ctx, n, ip| {
                    int(ctx, n, ip, 0, i64::MAX)
                }));
                if key == "device_read_iops" {
                    b.device_read_iops = l;
                } else {
                    b.device_write_iops = l;
                }
            }
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown blkio_config key `{other}`: use weight, weight_device, \
                     device_read_bps, device_write_bps, device_read_iops, device_write_iops"
                ),
            ),
        }
    }
    Some(b)
}

pub(super) fn rates(l: Vec<(String, i64)>) -> Vec<DeviceRate> {
    l.into_iter()
        .map(|(path, rate)| DeviceRate { path, rate })
        .collect()
}

/// A list of `{path: /dev/sda, FIELD: value}`.
pub(super) fn per_device(
    ctx: &mut Ctx,
    v: &Node,
    p: &str,
    field: &str,
    value: impl Fn(&mut Ctx, &Node, &str) -> Option<i64>,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (i, it) in seq_or_err(ctx, v, p).unwrap_or(&[]).iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let (Some(path), Some(val)) = (it.get("path"), it.get(field)) else {
            ctx.err(
                it.pos,
                &ip,
                format!("write {{path: /dev/sda, {field}: ...}}"),
            );
            continue;
        };
        let Some(path) = ctx.scalar(path, &format!("{ip}.path"), "a device path") else {
            continue;
        };
        if !path.starts_with('/') {
            ctx.err(
                it.pos,
                &ip,
                format!("device path {path:?} must be absolute"),
            );
            continue;
        }
        if let Some(n) = value(ctx, val, &format!("{ip}.{field}")) {
            out.push((path, n));
        }
    }
    out
}

pub(super) fn volumes_from(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = list(ctx, v, p);
    for e in &items {
        let parts: Vec<&str> = e.split(':').collect();
        let mode = match parts.as_slice() {
            [s] => Some((*s, "rw")),
            ["container", c] => Some((*c, "rw")),
            ["container", c, m] => Some((*c, *m)),
            [s, m] if *s != "container" => Some((*s, *m)),
            _ => None,
        };
        if !mode.is_some_and(|(name, m)| !name.is_empty() && (m == "ro" || m == "rw")) {
            ctx.err(
                v.pos,
                p,
                format!(
                    "invalid volumes_from {e:?}: write \"SERVICE[:ro|rw]\" or \
                     \"container:NAME[:ro|rw]\""
                ),
            );
        }
    }
    items
}

pub(super) fn expose(ctx: &mut Ctx, v: &Node, p: &str) -> Vec<String> {
    let items = list(ctx, v, p);
    for e in &items {
        let (range, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        if port_range(range).is_none() || !["tcp", "udp", "sctp"].contains(&proto) {
            ctx.err(
                v.pos,
                p,
                format!(
                    "invalid exposed port {e:?}: write a port or range 1-65535 with an optional \
                     /tcp, /udp or /sctp (\"8080\", \"9000-9010/udp\")"
                ),
            );
        }
    }
    items
}
