//! `ports:` entries read as compose-go reads them. The short form follows docker's
//! `nat.ParsePortSpec` (go-connections): `[IP:][HOST:]CONTAINER[/PROTO]`, where IP may be
//! an IPv6 address in brackets or bare (everything before the last two `:`), HOST and
//! CONTAINER may be ranges, a HOST range over one CONTAINER port is kept whole (the
//! engine picks a free port in it) and two ranges must have the same length. The long
//! form is a mapping with `target`, `published` (a port or a range), `host_ip`,
//! `protocol`, `mode`, `name` and `app_protocol`.

use std::fmt;

use serde::{Serialize, Serializer};

use super::Port;
use super::parse::Ctx;
use super::yaml::{Kind, Node};

/// A published host port or range (`8000-8002`). A range over one container port lets
/// the engine pick one free port of it; over a container range it is split port by port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPorts {
    pub start: u16,
    pub end: u16,
}

impl HostPorts {
    pub fn one(port: u16) -> HostPorts {
        HostPorts {
            start: port,
            end: port,
        }
    }

    /// The port when it is one port, not a range.
    pub fn single(self) -> Option<u16> {
        (self.start == self.end).then_some(self.start)
    }
}

impl fmt::Display for HostPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.single() {
            Some(p) => write!(f, "{p}"),
            None => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// As compose-go prints it: a string (`"8080"`, `"8000-8002"`).
impl Serialize for HostPorts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp"];
const LONG_KEYS: &[&str] = &[
    "target",
    "published",
    "host_ip",
    "protocol",
    "mode",
    "name",
    "app_protocol",
];
const FORMS: &str = "write \"TARGET\", \"HOST:TARGET\", \"IP:HOST:TARGET\", \"IP::TARGET\" or \
                     \"[IPv6]:HOST:TARGET\", where HOST and TARGET are ports 1-65535 or ranges \
                     (\"8000-8002\"), with an optional /tcp, /udp or /sctp";

fn port_num(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `80` or `8000-8002` (start <= end).
pub fn port_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_num(a)?, port_num(b)?);
            (a <= b).then_some((a, b))
        }
        None => port_num(s).map(|p| (p, p)),
    }
}

/// IP, host part and container part, as `nat.splitParts` cuts them: everything before the
/// last two `:` is the address (so `::1:8080:80` is `::1`, port 8080, port 80).
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let container = parts[n - 1];
    match n {
        1 => ("", "", container),
        2 => ("", parts[0], container),
        _ => {
            let host_start = raw.len() - container.len() - 1 - parts[n - 2].len();
            (&raw[..host_start - 1], parts[n - 2], container)
        }
    }
}

/// One short-form entry, as compose-go expands it: one `Port` per container port.
pub fn parse_short(raw: &str) -> Result<Vec<Port>, PortError> {
    let bad = |why: String| PortError {
        raw: raw.to_string(),
        why,
    };
    let (ip, host, container) = split_parts(raw);
    let (container, protocol) = match container.split_once('/') {
        Some((c, "")) => (c, "tcp".to_string()),
        Some((c, p)) => (c, p.to_ascii_lowercase()),
        None => (container, "tcp".to_string()),
    };
    let ip = match ip.strip_prefix('[') {
        Some(r) => r
            .strip_suffix(']')
            .ok_or_else(|| bad(format!("{ip:?} has an unclosed `[`")))?,
        None => ip,
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(bad(format!("{ip:?} is not an IP address")));
    }
    if container.is_empty() {
        return Err(bad("no container port".into()));
    }
    let (t0, t1) = port_range(container).ok_or_else(|| {
        bad(format!(
            "container port {container:?} is not a port or range"
        ))
    })?;
    let host_range = match host {
        "" => None,
        h => Some(
            port_range(h).ok_or_else(|| bad(format!("host port {h:?} is not a port or range")))?,
        ),
    };
    if let Some((h0, h1)) = host_range
        && h1 - h0 != t1 - t0
        && t0 != t1
    {
        return Err(bad(format!(
            "the host range {host} and the container range {container} differ in length"
        )));
    }
    if !PROTOCOLS.contains(&protocol.as_str()) {
        return Err(bad(format!("unknown protocol {protocol:?}")));
    }
    let host_ip = (!ip.is_empty()).then(|| ip.to_string());
    Ok((0..=(t1 - t0))
        .map(|i| Port {
            host_ip: host_ip.clone(),
            published: host_range.map(|(h0, h1)| {
                if t0 == t1 {
                    HostPorts { start: h0, end: h1 }
                } else {
                    HostPorts::one(h0 + i)
                }
            }),
            target: t0 + i,
            protocol: protocol.clone(),
            mode: None,
            name: None,
            app_protocol: None,
        })
        .collect())
}

fn text(ctx: &mut Ctx, node: &Node, key: &str, path: &str) -> Option<String> {
    let v = node.get(key)?;
    ctx.scalar(v, &format!("{path}.{key}"), "a string")
}

/// The long form: a mapping with `target` and optional published range, address,
/// protocol, mode (`host` or `ingress`), name and application protocol.
fn parse_long(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Port> {
    let mut ok = true;
    for (k, _) in node.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        if !LONG_KEYS.contains(&key) && !key.starts_with("x-") {
            ctx.err(
                k.pos,
                &format!("{path}.{key}"),
                format!("unknown port key `{key}`: use {}", LONG_KEYS.join(", ")),
            );
            ok = false;
        }
    }
    let target = text(ctx, node, "target", path);
    let Some(target) = target.as_deref().and_then(port_num) else {
        ctx.err(
            node.pos,
            &format!("{path}.target"),
            format!(
                "`target` must be the container port 1-65535 (got {})",
                target.map_or("nothing".into(), |t| format!("{t:?}"))
            ),
        );
        return None;
    };
    let published = match text(ctx, node, "published", path).as_deref() {
        None | Some("") => None,
        Some(p) => match port_range(p) {
            Some((start, end)) => Some(HostPorts { start, end }),
            None => {
                ctx.err(
                    node.pos,
                    &format!("{path}.published"),
                    format!(
                        "invalid published port {p:?}: write a host port 1-65535 or a range \
                         (\"8000-8002\"), or leave it out for a free port"
                    ),
                );
                return None;
            }
        },
    };
    let protocol = text(ctx, node, "protocol", path)
        .unwrap_or_else(|| "tcp".into())
        .to_ascii_lowercase();
    if !PROTOCOLS.contains(&protocol.as_str()) {
        ctx.err(
            node.pos,
            &format!("{path}.protocol"),
            format!("unknown protocol {protocol:?}: use tcp, udp or sctp"),
        );
        ok = false;
    }
    let host_ip = text(ctx, node, "host_ip", path);
    if let Some(ip) = &host_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        ctx.err(
            node.pos,
            &format!("{path}.host_ip"),
            format!("{ip:?} is not an IP address: write one such as 127.0.0.1 or ::1"),
        );
        ok = false;
    }
    let mode = text(ctx, node, "mode", path);
    if let Some(m) = &mode
        && m != "host"
        && m != "ingress"
    {
        ctx.err(
            node.pos,
            &format!("{path}.mode"),
            format!("unknown port mode {m:?}: use host or ingress"),
        );
        ok = false;
    }
    ok.then(|| Port {
        host_ip,
        published,
        target,
        protocol,
        mode,
        name: text(ctx, node, "name", path),
        app_protocol: text(ctx, node, "app_protocol", path),
    })
}

/// One `ports:` entry, short or long; errors go to `ctx` with the file and line.
/// A short port mapping that does not parse: the mapping as written and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port {raw:?}: {why}; {}", FORMS)]
pub struct PortError {
    pub raw: String,
    pub why: String,
}

pub(super) fn parse_port(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<Port>> {
    if let Kind::Map(_) = node.kind {
        return parse_long(ctx, node, path).map(|p| vec![p]);
    }
    let raw = ctx.scalar(node, path, "a port mapping such as \"127.0.0.1:8080:80\"")?;
    match parse_short(&raw) {
        Ok(ports) => Some(ports),
        Err(e) => {
            ctx.err(node.pos, path, e.to_string());
            None
        }
    }
}

/// The long-form port keys a local container has no setting for, one line per service,
/// port and key, for standard error (docker compose passes them to no container either).
pub fn local_up_notes(svc: &super::Service) -> Vec<String> {
    let mut out = Vec::new();
    for p in &svc.ports {
        let mut note = |key: &str, what: &str| {
            out.push(format!("{}: ports[{}].{key}: {what}", svc.name, p.target));
        };
        if p.mode.as_deref() == Some("ingress") {
            note(
                "mode",
                "ingress is Swarm's routing mesh; a local up publishes on this engine only",
            );
        }
        if p.name.is_some() {
            note(
                "name",
                "a port name for other engines (export k8s); a container has none",
            );
        }
        if p.app_protocol.is_some() {
            note(
                "app_protocol",
                "for other engines (export k8s: appProtocol); a container has none",
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (host_ip, published, target, protocol) of each port.
    fn short(raw: &str) -> Vec<(Option<String>, Option<String>, u16, String)> {
        parse_short(raw)
            .unwrap_or_else(|e| panic!("{raw}: {e}"))
            .into_iter()
            .map(|p| {
                (
                    p.host_ip,
                    p.published.map(|h| h.to_string()),
                    p.target,
                    p.protocol,
                )
            })
            .collect()
    }

    fn one(
        ip: Option<&str>,
        host: Option<&str>,
        t: u16,
        proto: &str,
    ) -> Vec<(Option<String>, Option<String>, u16, String)> {
        vec![(
            ip.map(str::to_string),
            host.map(str::to_string),
            t,
            proto.to_string(),
        )]
    }

    /// Each expectation is compose-go's ServicePortConfig for the same string
    /// (ParsePortConfig over nat.ParsePortSpec).
    #[test]
    fn short_forms_read_as_compose_go_reads_them() {
        assert_eq!(short("80"), one(None, None, 80, "tcp"));
        assert_eq!(short("8080:80"), one(None, Some("8080"), 80, "tcp"));
        assert_eq!(short("53:53/udp"), one(None, Some("53"), 53, "udp"));
        assert_eq!(short("132/SCTP"), one(None, None, 132, "sctp"));
        assert_eq!(short("80/"), one(None, None, 80, "tcp"));
        assert_eq!(
            short("127.0.0.1:8080:80"),
            one(Some("127.0.0.1"), Some("8080"), 80, "tcp")
        );
        assert_eq!(
            short("127.0.0.1::80"),
            one(Some("127.0.0.1"), None, 80, "tcp")
        );
        // A host range over one container port stays whole: the engine picks in it.
        assert_eq!(short("80-90:8080"), one(None, Some("80-90"), 8080, "tcp"));
        assert_eq!(
            short("[::1]:8080:80"),
            one(Some("::1"), Some("8080"), 80, "tcp")
        );
        // Without brackets, everything before the last two `:` is the address.
        assert_eq!(
            short("::1:8080:80/udp"),
            one(Some("::1"), Some("8080"), 80, "udp")
        );
        assert_eq!(short("[::]::80"), one(Some("::"), None, 80, "tcp"));
    }

    #[test]
    fn ranges_expand_port_by_port() {
        let r = short("8000-8002:9000-9002/udp");
        let got: Vec<(Option<String>, u16)> = r.into_iter().map(|p| (p.1, p.2)).collect();
        assert_eq!(
            got,
            [
                (Some("8000".to_string()), 9000),
                (Some("8001".to_string()), 9001),
                (Some("8002".to_string()), 9002)
            ]
        );
        let c: Vec<u16> = short("7000-7002").into_iter().map(|p| p.2).collect();
        assert_eq!(c, [7000, 7001, 7002]);
        assert!(short("7000-7002").iter().all(|p| p.1.is_none()));
        let v6 = short("[::1]:8000-8001:9000-9001");
        assert!(v6.iter().all(|p| p.0.as_deref() == Some("::1")), "{v6:?}");
    }

    #[test]
    fn bad_short_forms_name_the_value_and_the_fix() {
        for (raw, why) in [
            ("", "no container port"),
            ("8080:", "no container port"),
            ("http", "container port \"http\" is not a port or range"),
            ("0", "container port \"0\" is not a port or range"),
            ("70000", "container port \"70000\" is not a port or range"),
            ("90-80", "container port \"90-80\" is not a port or range"),
            ("x:80", "host port \"x\" is not a port or range"),
            ("8000-8001:9000-9002", "differ in length"),
            // One host port for a container range: compose-go refuses it too.
            ("8000:9000-9002", "differ in length"),
            ("80/icmp", "unknown protocol \"icmp\""),
            ("localhost:8080:80", "\"localhost\" is not an IP address"),
            ("1.2.3.4:5:8080:80", "\"1.2.3.4:5\" is not an IP address"),
            ("[::1:8080:80", "unclosed `[`"),
        ] {
            let e = parse_short(raw).expect_err(raw).to_string();
            assert!(e.contains(&format!("invalid port {raw:?}")), "{raw}: {e}");
            assert!(e.contains(why), "{raw}: {e}");
            assert!(e.contains("write \"TARGET\""), "{raw}: the fix: {e}");
        }
    }

    #[test]
    fn host_ports_print_as_compose_go_strings() {
        assert_eq!(HostPorts::one(80).to_string(), "80");
        let r = HostPorts { start: 80, end: 90 };
        assert_eq!(r.to_string(), "80-90");
        assert_eq!(r.single(), None);
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"80-90\"");
    }
    fn load(ports: &str) -> Result<Vec<Port>, String> {
        let opts = crate::stack::compose::LoadOptions {
            project_name: Some("t".into()),
            ..Default::default()
        };
        let src = format!("services:\n  a:\n    image: i\n    ports:\n{ports}");
        crate::stack::compose::load_str(&src, std::path::Path::new("/x/compose.yml"), &opts)
            .map(|p| p.services["a"].ports.clone())
            .map_err(|e| e.to_string())
    }

    /// compose-go's ServicePortConfig for the long form keeps `published` as a string
    /// range and carries mode, name and app_protocol.
    #[test]
    fn long_form_carries_every_field() {
        let p = load(
            "      - target: 80\n        published: \"8000-8002\"\n        host_ip: ::1\n        \
             protocol: UDP\n        mode: host\n        name: web\n        app_protocol: http\n\
             \x20     - {target: 81, published: 9000}\n      - {target: 82}\n",
        )
        .unwrap();
        assert_eq!(
            p[0].published.map(|h| h.to_string()).as_deref(),
            Some("8000-8002")
        );
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        assert_eq!(p[0].protocol, "udp");
        assert_eq!(p[0].mode.as_deref(), Some("host"));
        assert_eq!(p[0].name.as_deref(), Some("web"));
        assert_eq!(p[0].app_protocol.as_deref(), Some("http"));
        assert_eq!((p[1].host_port(), p[1].target), (Some(9000), 81));
        assert_eq!((p[2].published, p[2].target), (None, 82));
        let svc = crate::stack::compose::Service {
            ports: p,
            ..load_service()
        };
        assert_eq!(
            local_up_notes(&svc),
            [
                "a: ports[80].name: a port name for other engines (export k8s); a container \
                 has none",
                "a: ports[80].app_protocol: for other engines (export k8s: appProtocol); a \
                 container has none"
            ]
        );
    }

    fn load_service() -> crate::stack::compose::Service {
        let opts = crate::stack::compose::LoadOptions {
            project_name: Some("t".into()),
            ..Default::default()
        };
        let src = "services:\n  a:\n    image: i\n";
        crate::stack::compose::load_str(src, std::path::Path::new("/x/compose.yml"), &opts)
            .unwrap()
            .services["a"]
            .clone()
    }

    #[test]
    fn bad_long_forms_name_file_line_key_and_fix() {
        for (body, want) in [
            (
                "{published: 80}",
                "5:9: services.a.ports[0].target: `target` must be the container port 1-65535 (got nothing)",
            ),
            (
                "{target: http}",
                "`target` must be the container port 1-65535 (got \"http\")",
            ),
            (
                "{target: 80, published: 9-1}",
                "services.a.ports[0].published: invalid published port \"9-1\": write a host port",
            ),
            (
                "{target: 80, protocol: icmp}",
                "services.a.ports[0].protocol: unknown protocol \"icmp\": use tcp, udp or sctp",
            ),
            (
                "{target: 80, host_ip: localhost}",
                "services.a.ports[0].host_ip: \"localhost\" is not an IP address",
            ),
            (
                "{target: 80, mode: bridge}",
                "unknown port mode \"bridge\": use host or ingress",
            ),
            (
                "{target: 80, publish: 80}",
                "services.a.ports[0].publish: unknown port key `publish`: use target, published",
            ),
            (
                "\"8000:9000-9001\"",
                "5:9: services.a.ports[0]: invalid port \"8000:9000-9001\"",
            ),
        ] {
            let err = load(&format!("      - {body}\n")).unwrap_err();
            assert!(err.contains(want), "{body}\n  want: {want}\n  got: {err}");
            assert!(err.starts_with("/x/compose.yml:"), "{err}");
        }
    }
}
