//! The container's ports, and what a Service does not keep of a published one.

use super::*;

/// The container's ports, once each (compose may publish one port twice), as `(port,
/// "TCP" | "UDP")`.
/// The container's ports: the published ones' targets and the `expose`d ones (which the
/// other services reach, as the Service's ports give them).
pub(super) fn container_ports(svc: &Service) -> BTreeSet<(u16, String)> {
    let exposed = svc.settings.exposed_ports().into_iter().filter_map(|e| {
        let (port, proto) = e.split_once('/')?;
        Some((port.parse().ok()?, proto.to_ascii_uppercase()))
    });
    svc.ports
        .iter()
        .map(|p| (p.target, p.protocol.to_ascii_uppercase()))
        .chain(exposed)
        .collect()
}

/// What a Service does not keep of a published port: its host address (a Service is
/// reached from the whole cluster) and a host port other than the target.
pub(super) fn published_port_warnings(svc: &Service, ex: &mut Export) {
    for p in &svc.ports {
        let shown = format!(
            "{}{}:{}/{}",
            p.host_ip
                .as_ref()
                .map(|ip| format!("{ip}:"))
                .unwrap_or_default(),
            p.published.map(|h| h.to_string()).unwrap_or_default(),
            p.target,
            p.protocol
        );
        if let Some(ip) = &p.host_ip {
            ex.warnings.push(format!(
                "{}: ports {shown}: bound to {ip} on the host; a Service has no address \
                 binding and is reached from the whole cluster (restrict it with a \
                 NetworkPolicy)",
                svc.name
            ));
        }
        if p.published.is_some_and(|h| h.single() != Some(p.target)) && p.mode.is_none() {
            ex.warnings.push(format!(
                "{}: ports {shown}: the Service listens on {} (the target), not the host \
                 port; use kubectl port-forward or a LoadBalancer's port to publish it",
                svc.name, p.target
            ));
        }
    }
}

/// The long form's `name` or `app_protocol` of the first port with this target.
pub(super) fn port_field<'s>(
    svc: &'s Service,
    target: u16,
    f: impl Fn(&'s crate::stack::compose::Port) -> Option<&'s str>,
) -> Option<&'s str> {
    svc.ports.iter().filter(|p| p.target == target).find_map(f)
}
