//! The Compose Specification's schema marks a service's lists `uniqueItems` (ports, dns,
//! cap_add, volumes, ...): compose-go validates each file against it, after
//! interpolation and before the merge, so one file listing the same entry twice is an
//! error there (docker-compose 1.29: "contains non-unique items"). osmen refuses it the
//! same way, naming both lines; entries repeated across files are the merge's business.

use super::parse::Ctx;
use super::yaml::{Kind, Node};

/// Service keys whose list form the schema declares `uniqueItems`.
const UNIQUE_LISTS: &[&str] = &[
    "annotations",
    "cap_add",
    "cap_drop",
    "depends_on",
    "device_cgroup_rules",
    "dns",
    "dns_opt",
    "dns_search",
    "environment",
    "expose",
    "external_links",
    "extra_hosts",
    "group_add",
    "labels",
    "links",
    "networks",
    "ports",
    "profiles",
    "security_opt",
    "sysctls",
    "tmpfs",
    "volumes",
    "volumes_from",
];

/// A value's canonical text, positions and mapping order aside: two entries are the same
/// when their texts are. One pass per entry, so a long list is checked in linear time.
fn canon(n: &Node) -> String {
    match &n.kind {
        Kind::Null => "~".to_string(),
        Kind::Scalar { value, .. } => format!("s{}:{value}", value.len()),
        Kind::Seq(items) => {
            let parts: Vec<String> = items.iter().map(canon).collect();
            format!("[{}]", parts.join(","))
        }
        Kind::Map(pairs) => {
            let mut parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", canon(k), canon(v)))
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(","))
        }
    }
}

/// Refuses an entry listed twice in one service's unique list of this file's tree.
pub(super) fn check(ctx: &mut Ctx, root: &Node) {
    let Some(services) = root.get("services").and_then(Node::as_map) else {
        return;
    };
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("");
        for (k, v) in svc.as_map().unwrap_or(&[]) {
            let key = k.as_str().unwrap_or("");
            if !UNIQUE_LISTS.contains(&key) {
                continue;
            }
            let items = v.as_seq().unwrap_or(&[]);
            let mut first_at: std::collections::HashMap<String, usize> = Default::default();
            for (i, item) in items.iter().enumerate() {
                let Some(&first) = first_at.get(&canon(item)) else {
                    first_at.insert(canon(item), i);
                    continue;
                };
                // An `environment` entry is `NAME=value`: its value is masked as everywhere.
                let shown = item.as_str().map_or_else(
                    || format!("entry {}", first + 1),
                    |s| format!("{:?}", crate::model::secret::mask_assignment(s)),
                );
                ctx.err(
                    item.pos,
                    &format!("services.{name}.{key}[{i}]"),
                    format!(
                        "{shown} is listed twice (first at line {}); compose refuses \
                         non-unique items here: remove one",
                        items[first].pos.line
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, load_str};

    fn load(svc: &str) -> Result<(), String> {
        let src = format!("services:\n  a:\n    image: i\n{svc}");
        load_str(
            &src,
            std::path::Path::new("/x/compose.yml"),
            &LoadOptions {
                project_name: Some("u".into()),
                ..LoadOptions::default()
            },
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn an_entry_twice_in_one_file_is_refused_with_both_lines() {
        let e = load("    dns: [1.1.1.1, 9.9.9.9, 1.1.1.1]\n").unwrap_err();
        assert!(
            e.contains("4:29: services.a.dns[2]: \"1.1.1.1\" is listed twice (first at line 4)"),
            "{e}"
        );
        let e = load("    ports:\n      - 8080:80\n      - 8080:80\n").unwrap_err();
        assert!(e.contains("6:9: services.a.ports[1]: \"8080:80\""), "{e}");
        let e = load(
            "    volumes:\n      - {type: bind, source: ./x, target: /d}\n      \
             - {target: /d, source: ./x, type: bind}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("services.a.volumes[1]: entry 1 is listed twice"),
            "{e}"
        );
        // A secret in a repeated `NAME=value` entry stays masked.
        let e =
            load("    environment: [DB_PASSWORD=hunter22, DB_PASSWORD=hunter22]\n").unwrap_err();
        assert!(
            e.contains("\"DB_PASSWORD=********\" is listed twice"),
            "{e}"
        );
        assert!(!e.contains("hunter22"), "{e}");
        // Different entries, and the same entry in a list the schema does not mark, pass.
        load("    dns: [1.1.1.1, 9.9.9.9]\n    command: [a, a]\n").unwrap();
    }
}
