//! Networks and volumes: the create requests from their definitions, and what an existing
//! one lacks of its definition (drift), as `docker compose` checks before using one.

use super::*;

/// The project's labels with the file's own (the file cannot override Compose's).
pub(super) fn with_labels(
    mut labels: HashMap<String, String>,
    own: &std::collections::BTreeMap<String, String>,
) -> HashMap<String, String> {
    for (k, v) in own {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    labels
}

pub(super) fn network_request(
    def: &NetworkDef,
    labels: HashMap<String, String>,
) -> NetworkCreateRequest {
    let ipam = def.ipam.as_ref().map(|i| bollard::models::Ipam {
        driver: Some(i.driver.clone().unwrap_or_else(|| "default".into())),
        config: Some(
            i.config
                .iter()
                .map(|c| bollard::models::IpamConfig {
                    subnet: c.subnet.clone(),
                    ip_range: c.ip_range.clone(),
                    gateway: c.gateway.clone(),
                    auxiliary_addresses: hash_map(&c.aux_addresses),
                })
                .collect(),
        ),
        options: hash_map(&i.options),
    });
    NetworkCreateRequest {
        name: def.name.clone(),
        driver: Some(def.driver.clone().unwrap_or_else(|| "bridge".into())),
        internal: def.internal.then_some(true),
        attachable: def.attachable.then_some(true),
        enable_ipv6: def.enable_ipv6.then_some(true),
        ipam,
        options: hash_map(&def.driver_opts),
        labels: Some(with_labels(labels, &def.labels)),
        ..Default::default()
    }
}

pub(super) fn drift_error(what: &str, name: &str, drift: Vec<String>) -> EResult<bool> {
    if drift.is_empty() {
        return Ok(false);
    }
    let fix = if what == "network" {
        format!(
            "docker compose recreates a diverged network; osmen does not disconnect containers \
             on its own: run `osmen down`, then `docker network rm {name}`, then `osmen up`, \
             or mark it `external: true` to use it as it is"
        )
    } else {
        format!(
            "docker compose asks before recreating a diverged volume (its data is lost); osmen \
             does not delete data: back it up, `docker volume rm {name}`, then `osmen up`, or \
             mark it `external: true` to use it as it is"
        )
    };
    Err(EngineError::Other(format!(
        "{what} {name} exists but differs from the compose file: {}. {fix}",
        drift.join("; ")
    )))
}

/// What an existing network lacks of its definition (and the Compose labels that say
/// whose it is), as `docker compose` checks before using one.
pub(super) fn network_drift(
    def: &NetworkDef,
    labels: &HashMap<String, String>,
    n: &bollard::models::NetworkInspect,
) -> Vec<String> {
    let mut out = Vec::new();
    let have = n.labels.clone().unwrap_or_default();
    let want = LABEL_NETWORK;
    if have.get(want) != labels.get(want) {
        out.push(format!(
            "label {want} is {:?} (expected {:?}; it was not created by Compose for this \
             project)",
            have.get(want).map_or("", String::as_str),
            labels.get(want).map_or("", String::as_str)
        ));
    }
    let driver = def.driver.as_deref().unwrap_or("bridge");
    if n.driver.as_deref() != Some(driver) {
        out.push(format!(
            "driver is {:?} (file: {driver:?})",
            n.driver.as_deref().unwrap_or("")
        ));
    }
    // `internal` both ways (a network cut off from outside, or not, changes what the
    // containers can reach); `attachable` and `enable_ipv6` when the file asks for them:
    // docker-compose 1.29 makes every network attachable, and its networks are adopted.
    for (key, want, got, both_ways) in [
        ("internal", def.internal, n.internal, true),
        ("attachable", def.attachable, n.attachable, false),
        ("enable_ipv6", def.enable_ipv6, n.enable_ipv6, false),
    ] {
        let got = got.unwrap_or(false);
        if got != want && (want || both_ways) {
            out.push(format!("{key} is {got} (file: {want})"));
        }
    }
    map_drift(
        &mut out,
        "driver_opts",
        &def.driver_opts,
        n.options.as_ref(),
    );
    map_drift(&mut out, "label", &def.labels, n.labels.as_ref());
    if let Some(ipam) = &def.ipam {
        let got = n.ipam.clone().unwrap_or_default();
        let drv = ipam.driver.as_deref().unwrap_or("default");
        if got.driver.as_deref().unwrap_or("default") != drv {
            out.push(format!("ipam driver is {:?} (file: {drv:?})", got.driver));
        }
        let pools: Vec<_> = got.config.unwrap_or_default();
        for c in &ipam.config {
            let found = pools.iter().any(|p| {
                p.subnet == c.subnet
                    && (c.ip_range.is_none() || p.ip_range == c.ip_range)
                    && (c.gateway.is_none() || p.gateway == c.gateway)
            });
            if !found {
                out.push(format!(
                    "no ipam pool with subnet {} (the network has {})",
                    c.subnet.as_deref().unwrap_or("(any)"),
                    pools
                        .iter()
                        .filter_map(|p| p.subnet.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    out
}

pub(super) fn volume_drift(
    def: &VolumeDef,
    labels: &HashMap<String, String>,
    v: &bollard::models::Volume,
) -> Vec<String> {
    let mut out = Vec::new();
    let want = LABEL_VOLUME;
    if v.labels.get(want) != labels.get(want) {
        out.push(format!(
            "label {want} is {:?} (expected {:?}; it was not created by Compose for this \
             project)",
            v.labels.get(want).map_or("", String::as_str),
            labels.get(want).map_or("", String::as_str)
        ));
    }
    let driver = def.driver.as_deref().unwrap_or("local");
    if v.driver != driver {
        out.push(format!("driver is {:?} (file: {driver:?})", v.driver));
    }
    map_drift(&mut out, "driver_opts", &def.driver_opts, Some(&v.options));
    map_drift(&mut out, "label", &def.labels, Some(&v.labels));
    out
}

pub(super) fn map_drift(
    out: &mut Vec<String>,
    what: &str,
    want: &std::collections::BTreeMap<String, String>,
    have: Option<&HashMap<String, String>>,
) {
    for (k, v) in want {
        let got = have.and_then(|h| h.get(k));
        if got != Some(v) {
            out.push(format!(
                "{what} {k} is {} (file: {v:?})",
                got.map_or("unset".to_string(), |g| format!("{g:?}"))
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};

    #[test]
    fn networks_are_created_with_every_option_and_a_diverged_one_is_named() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    networks: [n]\n\
             networks:\n  n:\n    driver_opts: {com.docker.network.bridge.enable_icc: 'false'}\n    \
             labels: {tier: front}\n    internal: true\n    attachable: true\n    \
             enable_ipv6: true\n    ipam:\n      config:\n        - subnet: 172.28.0.0/16\n          \
             ip_range: 172.28.5.0/24\n          gateway: 172.28.5.254\n          \
             aux_addresses: {host1: 172.28.1.5}\n      options: {o: v}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let def = &p.networks["n"];
        let labels: HashMap<String, String> = [
            (LABEL_PROJECT.to_string(), "t".to_string()),
            (LABEL_NETWORK.to_string(), "n".to_string()),
        ]
        .into();
        let req = network_request(def, labels.clone());
        assert_eq!(req.name, "t_n");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        assert_eq!(
            (req.internal, req.attachable, req.enable_ipv6),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(
            req.options.as_ref().unwrap()["com.docker.network.bridge.enable_icc"],
            "false"
        );
        let req_labels = req.labels.clone().unwrap();
        assert_eq!(req_labels["tier"], "front");
        assert_eq!(req_labels[LABEL_NETWORK], "n");
        let ipam = req.ipam.clone().unwrap();
        assert_eq!(ipam.driver.as_deref(), Some("default"));
        let pool = &ipam.config.as_ref().unwrap()[0];
        assert_eq!(pool.subnet.as_deref(), Some("172.28.0.0/16"));
        assert_eq!(pool.ip_range.as_deref(), Some("172.28.5.0/24"));
        assert_eq!(pool.gateway.as_deref(), Some("172.28.5.254"));
        assert_eq!(
            pool.auxiliary_addresses.as_ref().unwrap()["host1"],
            "172.28.1.5"
        );
        assert_eq!(ipam.options.as_ref().unwrap()["o"], "v");
        // What the engine answers for the network it made matches: nothing to say.
        let made = bollard::models::NetworkInspect {
            driver: req.driver.clone(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6: req.enable_ipv6,
            ipam: req.ipam.clone(),
            options: req.options.clone(),
            labels: req.labels.clone(),
            ..Default::default()
        };
        assert_eq!(network_drift(def, &labels, &made), Vec::<String>::new());
        // A network made by hand with another subnet and no Compose labels.
        let other = bollard::models::NetworkInspect {
            driver: Some("bridge".into()),
            ipam: Some(bollard::models::Ipam {
                driver: Some("default".into()),
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some("10.1.0.0/16".into()),
                    ..Default::default()
                }]),
                options: None,
            }),
            ..Default::default()
        };
        // docker-compose 1.29's networks are attachable: not a difference the file asks
        // about when it does not set `attachable`.
        let plain = &p.networks["default"];
        let default_labels: HashMap<String, String> =
            [(LABEL_NETWORK.to_string(), "default".to_string())].into();
        let compose129 = bollard::models::NetworkInspect {
            driver: Some("bridge".into()),
            attachable: Some(true),
            labels: Some(default_labels.clone()),
            ..Default::default()
        };
        assert!(network_drift(plain, &default_labels, &compose129).is_empty());
        let drift = network_drift(def, &labels, &other).join("; ");
        for w in [
            "label com.docker.compose.network is \"\" (expected \"n\"",
            "internal is false (file: true)",
            "attachable is false (file: true)",
            "no ipam pool with subnet 172.28.0.0/16 (the network has 10.1.0.0/16)",
            "driver_opts com.docker.network.bridge.enable_icc is unset",
            "label tier is unset (file: \"front\")",
        ] {
            assert!(drift.contains(w), "{w:?} in {drift}");
        }
        let e = drift_error("network", "t_n", vec!["x".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network t_n exists but differs") && e.contains("docker network rm t_n")
        );
    }

    #[test]
    fn a_diverged_volume_is_named_and_never_removed() {
        let p = load_str(
            "name: t\nservices:\n  a:\n    image: i\n    volumes: [v:/v]\n\
             volumes:\n  v:\n    driver_opts: {type: tmpfs, device: tmpfs}\n    labels: {team: data}\n",
            std::path::Path::new("/x/c.yml"),
            &LoadOptions::default(),
        )
        .unwrap();
        let labels: HashMap<String, String> = [(LABEL_VOLUME.to_string(), "v".to_string())].into();
        let mut v = bollard::models::Volume {
            name: "t_v".into(),
            driver: "local".into(),
            labels: [
                (LABEL_VOLUME.to_string(), "v".to_string()),
                ("team".to_string(), "data".to_string()),
            ]
            .into(),
            options: [
                ("type".to_string(), "tmpfs".to_string()),
                ("device".to_string(), "tmpfs".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        assert!(volume_drift(&p.volumes["v"], &labels, &v).is_empty());
        v.options.insert("type".into(), "nfs".into());
        let d = volume_drift(&p.volumes["v"], &labels, &v).join("; ");
        assert!(
            d.contains("driver_opts type is \"nfs\" (file: \"tmpfs\")"),
            "{d}"
        );
        let e = drift_error("volume", "t_v", vec![d])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("docker volume rm t_v") && e.contains("data is lost"),
            "{e}"
        );
    }
}
