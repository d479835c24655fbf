//! From compose services to engine specs: container names, Compose labels, the config
//! hash that decides whether a running container is current, and dependency order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::compose::settings::{VolumesFrom, link_parts, volumes_from_parts};
use super::compose::{FileGrant, FileObject, Mount, MountKind, Project, Service, ServiceNetwork};
use super::engine::{
    Attachment, ContainerSpec, FileContent, InjectedFile, LABEL_CONFIG_FILES, LABEL_HASH,
    LABEL_NUMBER, LABEL_ONEOFF, LABEL_OSMEN, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION,
    LABEL_WORKING_DIR,
};
use crate::model::container::ContainerRow;

/// The Compose version osmen's labels claim to be compatible with.
pub const COMPOSE_COMPAT_VERSION: &str = "2.20.0";

/// A stable digest of everything in the service that shapes its containers.
pub fn config_hash(project: &Project, svc: &Service) -> String {
    let mut h = Sha256::new();
    // The replica count is not a container's configuration: scaling adds or removes
    // containers and leaves the others running (as Compose does). One replica hashes as
    // before, so existing single containers keep their hash.
    let mut one = svc.clone();
    one.replicas = 1;
    h.update(serde_json::to_vec(&one).unwrap_or_default());
    // Engine-side names of networks and volumes change the container too.
    for net in svc.networks.keys() {
        if let Some(n) = project.networks.get(net) {
            h.update(n.name.as_bytes());
        }
    }
    let digest = h.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn container_name(project: &Project, svc: &Service, number: u32) -> String {
    match &svc.container_name {
        Some(n) => n.clone(),
        None => format!("{}-{}-{}", project.name, svc.name, number),
    }
}

/// Labels Compose itself puts on containers, so `docker compose ps` lists ours and we
/// recognise theirs.
pub fn container_labels(project: &Project, svc: &Service, number: u32) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = svc
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let dir = std::fs::canonicalize(&project.dir).unwrap_or_else(|_| project.dir.clone());
    // Every compose file, comma-separated, as Compose writes the label.
    let files: Vec<String> = project
        .files
        .iter()
        .chain(project.files.is_empty().then_some(&project.file))
        .map(|f| {
            let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
            f.to_string_lossy().into_owned()
        })
        .collect();
    l.insert(LABEL_PROJECT.into(), project.name.clone());
    l.insert(LABEL_SERVICE.into(), svc.name.clone());
    l.insert(LABEL_NUMBER.into(), number.to_string());
    l.insert(LABEL_ONEOFF.into(), "False".into());
    l.insert(LABEL_HASH.into(), config_hash(project, svc));
    l.insert(LABEL_VERSION.into(), COMPOSE_COMPAT_VERSION.into());
    l.insert(LABEL_WORKING_DIR.into(), dir.to_string_lossy().into_owned());
    l.insert(LABEL_CONFIG_FILES.into(), files.join(","));
    l.insert(LABEL_OSMEN.into(), "true".into());
    l
}

/// The networks a container joins, highest `priority` first, then by name (as Compose
/// orders them); the first is given at create.
fn attachments(project: &Project, svc: &Service) -> Vec<Attachment> {
    if svc.settings.network_mode.is_some() {
        return Vec::new();
    }
    let default = [("default".to_string(), ServiceNetwork::default())];
    let mut nets: Vec<(&String, &ServiceNetwork)> = if svc.networks.is_empty() {
        default.iter().map(|(k, v)| (k, v)).collect()
    } else {
        svc.networks.iter().collect()
    };
    nets.sort_by(|a, b| {
        b.1.priority
            .unwrap_or(0)
            .cmp(&a.1.priority.unwrap_or(0))
            .then(a.0.cmp(b.0))
    });
    nets.into_iter()
        .map(|(key, n)| {
            let mut aliases = vec![svc.name.clone()];
            aliases.extend(n.aliases.iter().cloned());
            if let Some(cn) = &svc.container_name {
                aliases.push(cn.clone());
            }
            Attachment {
                network: project
                    .networks
                    .get(key)
                    .map(|d| d.name.clone())
                    .unwrap_or_else(|| key.clone()),
                aliases,
                ipv4_address: n.ipv4_address.clone(),
                ipv6_address: n.ipv6_address.clone(),
                link_local_ips: n.link_local_ips.clone(),
                mac_address: n.mac_address.clone(),
                driver_opts: n.driver_opts.clone(),
            }
        })
        .collect()
}

/// The service's secrets and configs with their definitions.
fn grants<'a>(
    project: &'a Project,
    svc: &'a Service,
) -> impl Iterator<Item = (&'a FileGrant, &'a FileObject)> {
    let secrets = svc
        .secrets
        .iter()
        .filter_map(|g| project.secrets.get(&g.source).map(|o| (g, o)));
    let configs = svc
        .configs
        .iter()
        .filter_map(|g| project.configs.get(&g.source).map(|o| (g, o)));
    secrets.chain(configs)
}

/// A file-based secret or config without uid, gid or mode is bind-mounted read-only, as
/// `docker compose` (and docker-compose 1.29) mounts it.
fn is_bind(g: &FileGrant, o: &FileObject) -> bool {
    o.file.is_some() && g.uid.is_none() && g.gid.is_none() && g.mode.is_none()
}

fn file_mounts(project: &Project, svc: &Service) -> Vec<Mount> {
    grants(project, svc)
        .filter(|(g, o)| is_bind(g, o))
        .filter_map(|(g, o)| {
            let src = o.file.as_ref()?.to_string_lossy().into_owned();
            Some(Mount::new(
                MountKind::Bind,
                Some(src),
                g.target.clone(),
                true,
            ))
        })
        .collect()
}

/// Everything else is copied in after create: from a variable or `content:` (as
/// `docker compose` injects them), or a file whose owner or mode the grant sets (a bind
/// mount would keep the host file's). Mode 0444 unless set, owner root unless set.
fn injected_files(project: &Project, svc: &Service) -> Vec<InjectedFile> {
    grants(project, svc)
        .filter(|(g, o)| !is_bind(g, o))
        .filter_map(|(g, o)| {
            let content = match (&o.file, &o.value, &o.content) {
                (Some(f), _, _) => FileContent::Path(f.clone()),
                (None, Some(v), _) => FileContent::Inline(v.clone()),
                (None, None, Some(c)) => FileContent::Inline(c.clone()),
                _ => return None,
            };
            Some(InjectedFile {
                target: g.target.clone(),
                content,
                uid: g.uid.unwrap_or(0),
                gid: g.gid.unwrap_or(0),
                mode: g.mode.unwrap_or(0o444),
            })
        })
        .collect()
}

pub fn container_spec(project: &Project, svc: &Service, number: u32) -> ContainerSpec {
    let image = svc
        .image
        .clone()
        .unwrap_or_else(|| format!("{}-{}", project.name, svc.name));
    let networks = attachments(project, svc);
    let mounts = svc
        .volumes
        .iter()
        .map(|m| {
            let source = match (&m.kind, &m.source) {
                (MountKind::Volume, Some(v)) => Some(
                    project
                        .volumes
                        .get(v)
                        .map(|d| d.name.clone())
                        .unwrap_or_else(|| v.clone()),
                ),
                (_, s) => s.clone(),
            };
            Mount {
                source,
                ..m.clone()
            }
        })
        .chain(file_mounts(project, svc))
        .collect();
    ContainerSpec {
        name: container_name(project, svc, number),
        image,
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        env: svc
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(svc.env_unset.iter().cloned())
            .collect(),
        labels: container_labels(project, svc, number),
        healthcheck: svc.healthcheck.clone(),
        cpus: svc.resources.cpus,
        memory: svc.resources.memory,
        memory_reservation: svc.resources.memory_reservation,
        restart: svc.restart.clone(),
        ports: svc.ports.clone(),
        mounts,
        gpus: svc.resources.gpus.clone(),
        networks,
        files: injected_files(project, svc),
        stop_timeout_s: svc.stop_grace_period.map(|d| d.as_secs() as i64),
        stop_signal: svc.stop_signal.clone(),
        working_dir: svc.working_dir.clone(),
        user: svc.user.clone(),
        init: svc.init,
        log_driver: svc.logging.as_ref().and_then(|l| {
            l.driver.clone().map(|d| {
                (
                    d,
                    l.options
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
        }),
        settings: svc.settings.clone(),
        links: svc
            .settings
            .external_links
            .iter()
            .map(|l| {
                let (c, alias) = link_parts(l);
                format!("{c}:{alias}")
            })
            .collect(),
    }
}

/// The config hash of a container whose settings name other containers: the service's
/// hash and the resolved ids, so that it changes when one of them is recreated.
pub fn refs_hash(base: &str, spec: &ContainerSpec) -> String {
    let st = &spec.settings;
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    for m in [&st.network_mode, &st.ipc, &st.pid].into_iter().flatten() {
        h.update(m.as_bytes());
    }
    for v in st.volumes_from.iter().chain(&spec.links) {
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A reference to another service that cannot be resolved yet: that service has no
/// container (`key` is the setting: network_mode, ipc, pid, volumes_from or links).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("{key}: service:{service} has no container yet; start `{service}` first")]
    Namespace { key: &'static str, service: String },
    #[error("{key}: service `{service}` has no container yet; start it first")]
    Service { key: &'static str, service: String },
}

/// Fills in what names other containers of the project: `service:x` namespace modes
/// become `container:<id of x's first container>`, and each link to a service becomes the
/// three names Compose gives every container of it (the alias, `svc-N` and
/// `project-svc-N`). `rows` are the project's containers as the engine lists them.
pub fn resolve_refs(
    project: &Project,
    spec: &mut ContainerSpec,
    rows: &[ContainerRow],
) -> Result<(), RefError> {
    let first_of = |svc: &str| {
        rows.iter()
            .filter(|r| r.service == svc)
            .min_by_key(|r| (r.state != "running", r.number))
    };
    let st = &mut spec.settings;
    for (key, mode) in [
        ("network_mode", &mut st.network_mode),
        ("ipc", &mut st.ipc),
        ("pid", &mut st.pid),
    ] {
        let Some(target) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) else {
            continue;
        };
        let Some(row) = first_of(target) else {
            return Err(RefError::Namespace {
                key,
                service: target.to_string(),
            });
        };
        *mode = Some(format!("container:{}", row.id));
    }
    for v in st.volumes_from.iter_mut() {
        *v = match volumes_from_parts(v) {
            VolumesFrom::Container(c, mode) => format!("{c}:{mode}"),
            VolumesFrom::Service(svc, mode) => match first_of(svc) {
                Some(row) => format!("{}:{mode}", row.id),
                None => {
                    return Err(RefError::Service {
                        key: "volumes_from",
                        service: svc.to_string(),
                    });
                }
            },
        };
    }
    let mut links = Vec::new();
    for l in &st.links {
        let (target, alias) = link_parts(l);
        let mut mine: Vec<&ContainerRow> = rows.iter().filter(|r| r.service == target).collect();
        if mine.is_empty() {
            return Err(RefError::Service {
                key: "links",
                service: target.to_string(),
            });
        }
        mine.sort_by_key(|r| r.number);
        for r in mine {
            let n = r.number;
            links.push(format!("{}:{alias}", r.name));
            links.push(format!("{}:{target}-{n}", r.name));
            links.push(format!("{}:{}-{target}-{n}", r.name, project.name));
        }
    }
    links.append(&mut spec.links);
    // One entry per name (`links: [db, db:db-1]` names db-1 twice).
    let mut seen = BTreeSet::new();
    links.retain(|l| seen.insert(l.clone()));
    spec.links = links;
    Ok(())
}

/// Groups `services` into start levels: each level depends only on earlier ones.
/// Dependencies outside `services` are ignored. Assumes no cycles (validated on load).
pub fn levels(project: &Project, services: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    fn depth_of(
        p: &Project,
        set: &BTreeSet<String>,
        n: &str,
        memo: &mut BTreeMap<String, usize>,
        guard: usize,
    ) -> usize {
        if let Some(d) = memo.get(n) {
            return *d;
        }
        let d = p
            .services
            .get(n)
            .map(|s| {
                s.depends_on
                    .keys()
                    .filter(|d| set.contains(*d) && guard < 1000)
                    .map(|d| depth_of(p, set, d, memo, guard + 1) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        memo.insert(n.to_string(), d);
        d
    }
    for s in services {
        depth_of(project, services, s, &mut depth, 0);
    }
    let max = depth.values().copied().max().unwrap_or(0);
    let mut out = vec![Vec::new(); if services.is_empty() { 0 } else { max + 1 }];
    for (s, d) in depth {
        out[d].push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::{LoadOptions, load_str};
    use std::path::Path;

    fn project(src: &str) -> Project {
        load_str(
            src,
            Path::new("/tmp/x/docker-compose.yml"),
            &LoadOptions::default(),
        )
        .unwrap()
    }

    const SRC: &str = "name: t\nservices:\n  a: {image: i}\n  b: {image: i, depends_on: [a]}\n  \
                       c: {image: i, depends_on: {b: {condition: service_healthy}}}\n  \
                       d: {image: i, environment: {X: '1'}}\n";

    #[test]
    fn levels_follow_dependencies() {
        let p = project(SRC);
        let all = p.services.keys().cloned().collect();
        assert_eq!(
            levels(&p, &all),
            vec![
                vec!["a".to_string(), "d".to_string()],
                vec!["b".into()],
                vec!["c".into()]
            ]
        );
    }

    #[test]
    fn hash_changes_with_config_only() {
        let p1 = project(SRC);
        let p2 = project(SRC);
        let p3 = project(&SRC.replace("X: '1'", "X: '2'"));
        let h = |p: &Project| config_hash(p, &p.services["d"]);
        assert_eq!(h(&p1), h(&p2));
        assert_ne!(h(&p1), h(&p3));
        assert_eq!(
            config_hash(&p1, &p1.services["a"]),
            config_hash(&p3, &p3.services["a"])
        );
    }

    #[test]
    fn spec_has_limits_and_labels() {
        let p = project(
            "name: t\nservices:\n  r:\n    image: redis\n    cpus: 0.5\n    mem_limit: 128m\n",
        );
        let s = container_spec(&p, &p.services["r"], 1);
        assert_eq!(s.name, "t-r-1");
        assert_eq!(s.cpus, Some(0.5));
        assert_eq!(s.memory, Some(128 << 20));
        assert_eq!(s.labels[LABEL_PROJECT], "t");
        assert_eq!(s.labels[LABEL_SERVICE], "r");
        assert_eq!(s.networks[0].network, "t_default");
        assert_eq!(s.networks[0].aliases, vec!["r".to_string()]);
    }

    fn row(service: &str, number: u32, id: &str) -> ContainerRow {
        ContainerRow {
            service: service.into(),
            number,
            id: id.into(),
            name: format!("t-{service}-{number}"),
            state: "running".into(),
            image: "i".into(),
            health: crate::model::container::Health::None,
            exit_code: None,
            restart_count: 0,
            started_at: String::new(),
            created: String::new(),
            oom_killed: false,
            ports: Vec::new(),
            health_output: String::new(),
            config_hash: String::new(),
            managed: true,
            cpu_limit: None,
            memory_limit: None,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn service_refs_become_container_ids_and_compose_link_names() {
        let p = project(
            "name: t\nservices:\n  db: {image: i, scale: 2}\n  side:\n    image: i\n    \
             network_mode: service:db\n    ipc: service:db\n  web:\n    image: i\n    \
             links: ['db:database']\n    external_links: ['ext:e']\n    \
             volumes_from: ['db:ro', 'container:c']\n",
        );
        let rows = [row("db", 2, "id2"), row("db", 1, "id1")];
        let mut side = container_spec(&p, &p.services["side"], 1);
        assert!(
            side.networks.is_empty(),
            "network_mode joins no project network"
        );
        resolve_refs(&p, &mut side, &rows).unwrap();
        assert_eq!(side.settings.network_mode.as_deref(), Some("container:id1"));
        assert_eq!(side.settings.ipc.as_deref(), Some("container:id1"));
        let mut web = container_spec(&p, &p.services["web"], 1);
        resolve_refs(&p, &mut web, &rows).unwrap();
        assert_eq!(web.settings.volumes_from, ["id1:ro", "c:rw"]);
        assert_eq!(
            web.links,
            [
                "t-db-1:database",
                "t-db-1:db-1",
                "t-db-1:t-db-1",
                "t-db-2:database",
                "t-db-2:db-2",
                "t-db-2:t-db-2",
                "ext:e"
            ]
        );
        let base = config_hash(&p, &p.services["side"]);
        let moved = [row("db", 1, "id9")];
        let mut again = container_spec(&p, &p.services["side"], 1);
        resolve_refs(&p, &mut again, &moved).unwrap();
        assert_ne!(
            refs_hash(&base, &side),
            refs_hash(&base, &again),
            "a recreated db makes side out of date"
        );
        let e = resolve_refs(&p, &mut container_spec(&p, &p.services["side"], 1), &[]);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("service:db has no container yet")
        );
    }
}
