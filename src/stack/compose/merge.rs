//! The Compose Specification's merge rules, on positioned YAML trees.
//!
//! Several `-f` files, an `extends` base and its service, and included files are all laid
//! one over the other with the same rules (compose-spec `merge.md`, compose-go's
//! `override` package): mappings merge key by key, sequences append, scalars are replaced;
//! `command`, `entrypoint` and `healthcheck.test` are replaced whole; `environment`,
//! `labels` and the like merge as maps whatever form each side is written in; `ports`,
//! `volumes`, `secrets`, `configs`, `expose`, `dns`... keep one entry per unique key, the
//! later one in the earlier one's place. `!reset` drops what lower layers set and
//! `!override` replaces it. Nodes keep their positions (file included), so errors found
//! after the merge still point at the line a value came from.

use super::yaml::{Kind, Node, Pos, Tag};

/// Lays `over` on `base`. `path` is the keys from the root (`["services", "web"]`), which
/// selects the special rules.
pub fn merge(base: Node, over: Node, path: &[&str]) -> Option<Node> {
    match over.tag {
        Some(Tag::Reset) => return None,
        Some(Tag::Override) => return clean(over),
        None => {}
    }
    let rule = rule_at(path);
    Some(match rule {
        Rule::Replace => clean(over)?,
        Rule::AsMap(sep) => merge_as_map(base, over, sep),
        Rule::ByName => merge_by_name(base, over, path),
        Rule::Logging => merge_logging(base, over, path),
        Rule::Unique(key) => merge_unique(one_item_seq(base), one_item_seq(over), key),
        Rule::Build => {
            let (b, o) = (build_map(base), build_map(over));
            let pos = o.pos;
            match (b.kind, o.kind) {
                (Kind::Map(b), Kind::Map(o)) => {
                    Node::new(Kind::Map(merge_entries(b, o, path)), pos)
                }
                (_, kind) => clean(Node::new(kind, pos))?,
            }
        }
        Rule::Plain => match (base.kind, over.kind) {
            (Kind::Map(b), Kind::Map(o)) => Node {
                kind: Kind::Map(merge_entries(b, o, path)),
                pos: over.pos,
                tag: None,
            },
            (Kind::Seq(mut b), Kind::Seq(o)) => {
                b.extend(o.into_iter().filter_map(clean));
                Node {
                    kind: Kind::Seq(b),
                    pos: over.pos,
                    tag: None,
                }
            }
            (_, kind) => clean(Node {
                kind,
                pos: over.pos,
                tag: None,
            })?,
        },
    })
}

/// Where laying `over` on `base` would drop a mapping or a list for a value of another
/// type, which compose-go refuses ("cannot override"): `(position, path, message)`. A
/// tagged value (`!reset`, `!override`) may change the type.
pub fn conflicts(base: &Node, over: &Node, path: &[&str], out: &mut Vec<(Pos, String, String)>) {
    if over.tag.is_some() || over.is_null() || base.is_null() {
        return;
    }
    let rule = rule_at(path);
    let lists = matches!(rule, Rule::AsMap(_) | Rule::ByName);
    let scalar_ok = matches!(rule, Rule::Unique(_) | Rule::Build | Rule::Replace);
    let refused = match (&base.kind, &over.kind) {
        _ if matches!(rule, Rule::Replace) => false,
        (Kind::Map(_), Kind::Seq(_)) | (Kind::Seq(_), Kind::Map(_)) => !lists,
        (Kind::Map(_) | Kind::Seq(_), Kind::Scalar { .. }) => !scalar_ok,
        _ => false,
    };
    let here = path.join(".");
    if refused {
        out.push((
            over.pos,
            here,
            format!(
                "cannot merge {}{} over {} set by an earlier file: write the same form, or \
                 tag it `!override` to replace it",
                over.type_name(),
                over.as_str().map(|v| format!(" {v:?}")).unwrap_or_default(),
                base.type_name()
            ),
        ));
        return;
    }
    if let (Rule::Plain | Rule::Logging | Rule::Build, Kind::Map(b), Kind::Map(o)) =
        (rule, &base.kind, &over.kind)
    {
        for (k, v) in o {
            let Some(key) = k.as_str().filter(|k| !k.starts_with("x-")) else {
                continue;
            };
            if let Some((_, old)) = b.iter().find(|(bk, _)| bk.as_str() == Some(key)) {
                let mut p = path.to_vec();
                p.push(key);
                conflicts(old, v, &p, out);
            }
        }
    }
}

/// A tree as one layer alone: entries tagged `!reset` dropped, tags removed.
pub fn clean(mut node: Node) -> Option<Node> {
    if node.tag == Some(Tag::Reset) {
        return None;
    }
    node.tag = None;
    node.kind = match node.kind {
        Kind::Map(m) => Kind::Map(
            m.into_iter()
                .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
                .collect(),
        ),
        Kind::Seq(s) => Kind::Seq(s.into_iter().filter_map(clean).collect()),
        other => other,
    };
    Some(node)
}

#[derive(Clone, Copy)]
enum Rule {
    Plain,
    /// Replaced whole by the later layer.
    Replace,
    /// `KEY=value` lists and `KEY: value` mappings, merged as mappings (the separator of
    /// the list form).
    AsMap(char),
    /// Lists of names or mappings by name (`networks`, `depends_on`), merged by name.
    ByName,
    /// The options merge only when both layers use the same driver (or one names none).
    Logging,
    /// A sequence with one entry per key.
    Unique(fn(&Node) -> Option<String>),
    /// `build: ./dir` is `build: {context: ./dir}`, so that a string and a mapping merge.
    Build,
}

fn rule_at(path: &[&str]) -> Rule {
    let (Some(&"services"), Some(_), rest) = (path.first(), path.get(1), path.get(2..)) else {
        return match path {
            [_, _, "labels"] => Rule::AsMap('='),
            _ => Rule::Plain,
        };
    };
    match rest.unwrap_or(&[]) {
        ["command"] | ["entrypoint"] | ["healthcheck", "test"] => Rule::Replace,
        ["build"] => Rule::Build,
        ["environment"] | ["labels"] | ["annotations"] | ["sysctls"] => Rule::AsMap('='),
        ["build", "args"] | ["build", "labels"] | ["deploy", "labels"] => Rule::AsMap('='),
        ["extra_hosts"] | ["build", "extra_hosts"] => Rule::Unique(whole),
        ["networks"] | ["depends_on"] => Rule::ByName,
        ["logging"] => Rule::Logging,
        ["ulimits", _] => Rule::Replace,
        ["ports"] => Rule::Unique(port_key),
        ["volumes"] | ["devices"] => Rule::Unique(mount_target),
        ["tmpfs"] => Rule::Unique(tmpfs_target),
        ["secrets"] => Rule::Unique(secret_target),
        ["configs"] => Rule::Unique(config_target),
        ["env_file"] | ["label_file"] => Rule::Unique(env_file_path),
        ["expose"]
        | ["dns"]
        | ["dns_search"]
        | ["dns_opt"]
        | ["cap_add"]
        | ["cap_drop"]
        | ["profiles"]
        | ["links"]
        | ["external_links"]
        | ["security_opt"]
        | ["group_add"] => Rule::Unique(whole),
        ["networks", _, "aliases"] => Rule::Unique(whole),
        _ => Rule::Plain,
    }
}

fn merge_entries(
    base: Vec<(Node, Node)>,
    over: Vec<(Node, Node)>,
    path: &[&str],
) -> Vec<(Node, Node)> {
    let mut out = base;
    for (k, v) in over {
        let key = k.as_str().unwrap_or("").to_string();
        let at = out
            .iter()
            .position(|(bk, _)| bk.as_str() == Some(key.as_str()));
        let merged = match at {
            // Extensions are replaced whole, as compose-go does.
            Some(i) if !key.starts_with("x-") => {
                let (_, old) = out.remove(i);
                let mut p = path.to_vec();
                p.push(&key);
                merge(old, v, &p).map(|m| (i, m))
            }
            Some(i) => {
                out.remove(i);
                clean(v).map(|m| (i, m))
            }
            None => clean(v).map(|m| (out.len(), m)),
        };
        if let Some((i, m)) = merged {
            out.insert(i, (k, m));
        }
    }
    out
}

fn scalar_node(value: String, pos: Pos) -> Node {
    Node::new(
        Kind::Scalar {
            value,
            plain: false,
        },
        pos,
    )
}

/// The entries of a `KEY: value` mapping or a `["KEY=value", "KEY"]` list, as mapping entries.
fn as_entries(node: Node, sep: char) -> Vec<(Node, Node)> {
    match node.kind {
        Kind::Map(m) => m,
        Kind::Seq(items) => items
            .into_iter()
            .map(|it| {
                let tag = it.tag;
                let (k, v) = match it.as_str().map(|s| s.split_once(sep)) {
                    Some(Some((k, v))) => (k.to_string(), Some(v.to_string())),
                    _ => (it.as_str().unwrap_or("").to_string(), None),
                };
                let mut value = match v {
                    Some(v) => scalar_node(v, it.pos),
                    None => Node::new(Kind::Null, it.pos),
                };
                value.tag = tag;
                (scalar_node(k, it.pos), value)
            })
            .collect(),
        // A lone string or null: nothing to merge by key; the loader reports the type.
        _ => Vec::new(),
    }
}

fn merge_as_map(base: Node, over: Node, sep: char) -> Node {
    let pos = over.pos;
    if !matches!(base.kind, Kind::Map(_) | Kind::Seq(_))
        || !matches!(over.kind, Kind::Map(_) | Kind::Seq(_))
    {
        return clean(over).unwrap_or(Node::new(Kind::Null, pos));
    }
    let mut out: Vec<(Node, Node)> = Vec::new();
    for (k, v) in as_entries(base, sep)
        .into_iter()
        .chain(as_entries(over, sep))
    {
        out.retain(|(bk, _)| bk.as_str() != k.as_str());
        if let Some(v) = clean(v) {
            out.push((k, v));
        }
    }
    Node::new(Kind::Map(out), pos)
}

/// `networks` and `depends_on`: two lists give their union; a list and a mapping are
/// merged as mappings (a listed name is the mapping entry `name: null`).
fn merge_by_name(base: Node, over: Node, path: &[&str]) -> Node {
    let pos = over.pos;
    match (base.kind, over.kind) {
        (Kind::Seq(b), Kind::Seq(o)) => {
            let seq = Node::new(Kind::Seq(b), pos);
            merge_unique(seq, Node::new(Kind::Seq(o), pos), whole)
        }
        (b @ (Kind::Seq(_) | Kind::Map(_)), o @ (Kind::Seq(_) | Kind::Map(_))) => {
            let to_map = |k: Kind| match k {
                Kind::Seq(items) => items
                    .into_iter()
                    .map(|it| {
                        let mut v = Node::new(Kind::Null, it.pos);
                        v.tag = it.tag;
                        (Node::new(it.kind, it.pos), v)
                    })
                    .collect(),
                Kind::Map(m) => m,
                _ => Vec::new(),
            };
            Node::new(Kind::Map(merge_entries(to_map(b), to_map(o), path)), pos)
        }
        (_, kind) => clean(Node::new(kind, pos)).unwrap_or(Node::new(Kind::Null, pos)),
    }
}

fn merge_logging(base: Node, over: Node, path: &[&str]) -> Node {
    let driver = |n: &Node| n.get("driver").and_then(Node::as_str).map(str::to_string);
    let (bd, od) = (driver(&base), driver(&over));
    let pos = over.pos;
    match (base.kind, over.kind) {
        (Kind::Map(b), Kind::Map(o)) if bd.is_none() || od.is_none() || bd == od => {
            Node::new(Kind::Map(merge_entries(b, o, path)), pos)
        }
        (_, kind) => clean(Node::new(kind, pos)).unwrap_or(Node::new(Kind::Null, pos)),
    }
}

/// Appends the later layer's entries; one that shares a key with an earlier entry takes
/// its place (compose-go's `EnforceUnicity`). `!reset` on an entry removes that key.
fn merge_unique(base: Node, over: Node, key: fn(&Node) -> Option<String>) -> Node {
    let pos = over.pos;
    let (Kind::Seq(b), Kind::Seq(o)) = (&base.kind, &over.kind) else {
        return clean(over).unwrap_or(Node::new(Kind::Null, pos));
    };
    let mut out: Vec<Node> = b.clone();
    for it in o.iter().cloned() {
        let k = key(&it);
        let at = k
            .as_ref()
            .and_then(|k| out.iter().position(|e| key(e).as_ref() == Some(k)));
        match (at, it.tag == Some(Tag::Reset)) {
            (Some(i), true) => {
                out.remove(i);
            }
            (_, true) => {}
            (Some(i), false) => out[i] = clean(it).unwrap_or(out[i].clone()),
            (None, false) => out.extend(clean(it)),
        }
    }
    Node::new(Kind::Seq(out), pos)
}

/// A lone string where a list is meant (`dns: 1.1.1.1`, `env_file: .env`) as that list.
fn one_item_seq(n: Node) -> Node {
    match n.kind {
        Kind::Scalar { .. } => {
            let pos = n.pos;
            let mut seq = Node::new(
                Kind::Seq(vec![Node {
                    tag: None,
                    ..n.clone()
                }]),
                pos,
            );
            seq.tag = n.tag;
            seq
        }
        _ => n,
    }
}

fn build_map(n: Node) -> Node {
    match n.kind {
        Kind::Scalar { .. } => {
            let key = Node::new(
                Kind::Scalar {
                    value: "context".into(),
                    plain: true,
                },
                n.pos,
            );
            let mut map = Node::new(
                Kind::Map(vec![(
                    key,
                    Node {
                        tag: None,
                        ..n.clone()
                    },
                )]),
                n.pos,
            );
            map.tag = n.tag;
            map
        }
        _ => n,
    }
}

fn whole(n: &Node) -> Option<String> {
    n.as_str().map(str::to_string)
}

fn field(n: &Node, key: &str) -> Option<String> {
    n.get(key).and_then(Node::as_str).map(str::to_string)
}

/// `[ip:][published:]target[/protocol]`, or the long form's fields.
fn port_key(n: &Node) -> Option<String> {
    if n.as_map().is_some() {
        let f = |k: &str| field(n, k).unwrap_or_default();
        let proto = field(n, "protocol").unwrap_or_else(|| "tcp".into());
        return Some(format!(
            "{}:{}:{}/{proto}",
            f("host_ip"),
            f("published"),
            f("target")
        ));
    }
    let s = n.as_str()?;
    let (addr, proto) = s.rsplit_once('/').unwrap_or((s, "tcp"));
    let mut parts: Vec<&str> = addr.rsplitn(3, ':').collect();
    parts.resize(3, "");
    Some(format!("{}:{}:{}/{proto}", parts[2], parts[1], parts[0]))
}

/// The container path of `source:target[:mode]`, `target`, or the long form's `target`.
fn mount_target(n: &Node) -> Option<String> {
    if n.as_map().is_some() {
        return field(n, "target");
    }
    let s = n.as_str()?;
    let parts: Vec<&str> = s.split(':').collect();
    Some(parts.get(1).unwrap_or(&parts[0]).to_string())
}

fn tmpfs_target(n: &Node) -> Option<String> {
    let s = n.as_str()?;
    Some(s.split(':').next().unwrap_or(s).to_string())
}

fn mount_of(n: &Node, default_dir: &str) -> Option<String> {
    if n.as_map().is_some() {
        if let Some(t) = field(n, "target") {
            return Some(t);
        }
        return field(n, "source").map(|s| format!("{default_dir}/{s}"));
    }
    n.as_str().map(|s| format!("{default_dir}/{s}"))
}

fn secret_target(n: &Node) -> Option<String> {
    mount_of(n, "/run/secrets")
}

fn config_target(n: &Node) -> Option<String> {
    mount_of(n, "")
}

fn env_file_path(n: &Node) -> Option<String> {
    if n.as_map().is_some() {
        return field(n, "path");
    }
    whole(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::compose::yaml::parse;

    /// Merges YAML texts in order and renders the result back as JSON-like text.
    fn merged(layers: &[&str]) -> Node {
        let mut acc = Node::new(Kind::Map(Vec::new()), Default::default());
        for l in layers {
            acc = merge(acc, parse(l).unwrap(), &[]).unwrap();
        }
        acc
    }

    fn show(n: &Node) -> String {
        match &n.kind {
            Kind::Null => "~".into(),
            Kind::Scalar { value, .. } => value.clone(),
            Kind::Seq(s) => format!("[{}]", s.iter().map(show).collect::<Vec<_>>().join(",")),
            Kind::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{}:{}", show(k), show(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    fn web(layers: &[&str], key: &str) -> String {
        let m = merged(layers);
        let w = m.get("services").and_then(|s| s.get("web")).unwrap();
        w.get(key).map(show).unwrap_or_else(|| "<absent>".into())
    }

    fn svc(body: &str) -> String {
        format!("services:\n  web:\n{body}")
    }

    #[test]
    fn mappings_merge_recursively_and_scalars_are_replaced() {
        let a = svc("    image: a\n    healthcheck: {interval: 5s, retries: 3}\n");
        let b = svc("    image: b\n    healthcheck: {retries: 5}\n    user: x\n");
        assert_eq!(web(&[&a, &b], "image"), "b");
        assert_eq!(web(&[&a, &b], "healthcheck"), "{interval:5s,retries:5}");
        assert_eq!(web(&[&a, &b], "user"), "x");
    }

    #[test]
    fn command_entrypoint_and_healthcheck_test_are_replaced() {
        let a =
            svc("    command: [a, b]\n    entrypoint: [x]\n    healthcheck: {test: [CMD, a]}\n");
        let b = svc("    command: [c]\n    entrypoint: [y]\n    healthcheck: {test: [CMD, b]}\n");
        assert_eq!(web(&[&a, &b], "command"), "[c]");
        assert_eq!(web(&[&a, &b], "entrypoint"), "[y]");
        assert_eq!(web(&[&a, &b], "healthcheck"), "{test:[CMD,b]}");
    }

    #[test]
    fn environment_labels_and_annotations_merge_as_maps_in_either_form() {
        let a =
            svc("    environment: [A=1, B=2, C]\n    labels: {x: '1'}\n    annotations: [p=1]\n");
        let b =
            svc("    environment: {B: 3, D: 4}\n    labels: [y=2, x=3]\n    annotations: {q: 2}\n");
        assert_eq!(web(&[&a, &b], "environment"), "{A:1,C:~,B:3,D:4}");
        assert_eq!(web(&[&a, &b], "labels"), "{y:2,x:3}");
        assert_eq!(web(&[&a, &b], "annotations"), "{p:1,q:2}");
    }

    #[test]
    fn ports_merge_by_ip_published_target_and_protocol() {
        let a = svc("    ports: ['8080:80', '53:53/udp', '127.0.0.1:9000:9000']\n");
        let b = svc(
            "    ports: ['8080:80', '53:53', {target: 9000, published: '9000', host_ip: 127.0.0.1}]\n",
        );
        assert_eq!(
            web(&[&a, &b], "ports"),
            "[8080:80,53:53/udp,{target:9000,published:9000,host_ip:127.0.0.1},53:53]"
        );
    }

    #[test]
    fn volumes_devices_tmpfs_secrets_and_configs_merge_by_target() {
        let a = svc(
            "    volumes: ['data:/data', './a:/a:ro']\n    tmpfs: ['/run:size=1m']\n    \
             secrets: [db, {source: api, target: /etc/api}]\n    configs: [c1]\n    \
             devices: ['/dev/a:/dev/x']\n",
        );
        let b = svc(
            "    volumes: [{type: volume, source: other, target: /data}, '/b:/b']\n    \
             tmpfs: ['/run:size=2m']\n    secrets: [{source: db2, target: db}, api]\n    \
             configs: [{source: c2, target: /c1}]\n    devices: ['/dev/b:/dev/x']\n",
        );
        assert_eq!(
            web(&[&a, &b], "volumes"),
            "[{type:volume,source:other,target:/data},./a:/a:ro,/b:/b]"
        );
        assert_eq!(web(&[&a, &b], "tmpfs"), "[/run:size=2m]");
        assert_eq!(
            web(&[&a, &b], "secrets"),
            "[db,{source:api,target:/etc/api},{source:db2,target:db},api]",
            "a short `db` targets /run/secrets/db, the long form's target `db` does not"
        );
        assert_eq!(web(&[&a, &b], "configs"), "[{source:c2,target:/c1}]");
        assert_eq!(web(&[&a, &b], "devices"), "[/dev/b:/dev/x]");
    }

    #[test]
    fn expose_dns_and_the_like_are_a_unique_union() {
        let a = svc(
            "    expose: ['80', '81']\n    dns: [1.1.1.1]\n    dns_search: [a]\n    \
                     extra_hosts: ['h:1.2.3.4']\n    cap_add: [NET_ADMIN]\n",
        );
        let b = svc(
            "    expose: ['81', '82']\n    dns: [8.8.8.8, 1.1.1.1]\n    dns_search: [a, b]\n    \
                     extra_hosts: ['h:1.2.3.4', 'g:5.6.7.8']\n    cap_add: [NET_ADMIN, SYS_TIME]\n",
        );
        assert_eq!(web(&[&a, &b], "expose"), "[80,81,82]");
        assert_eq!(web(&[&a, &b], "dns"), "[1.1.1.1,8.8.8.8]");
        assert_eq!(web(&[&a, &b], "dns_search"), "[a,b]");
        assert_eq!(web(&[&a, &b], "extra_hosts"), "[h:1.2.3.4,g:5.6.7.8]");
        assert_eq!(web(&[&a, &b], "cap_add"), "[NET_ADMIN,SYS_TIME]");
    }

    #[test]
    fn depends_on_and_networks_merge_by_name() {
        let a = svc("    depends_on: [db]\n    networks: [front]\n");
        let b = svc(
            "    depends_on: {cache: {condition: service_healthy}}\n    networks: [front, back]\n",
        );
        assert_eq!(
            web(&[&a, &b], "depends_on"),
            "{db:~,cache:{condition:service_healthy}}"
        );
        assert_eq!(web(&[&a, &b], "networks"), "[front,back]");
        let c = svc("    networks: {front: {aliases: [w]}}\n");
        let d = svc("    networks: {front: {aliases: [v, w]}}\n");
        assert_eq!(web(&[&a, &c, &d], "networks"), "{front:{aliases:[w,v]}}");
    }

    #[test]
    fn ulimits_by_name_and_logging_by_driver() {
        let a = svc("    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 10}\n    \
                     logging: {driver: json-file, options: {max-size: 1m}}\n");
        let b = svc("    ulimits: {nofile: {soft: 3, hard: 4}}\n    \
                     logging: {options: {max-file: '2'}}\n");
        assert_eq!(
            web(&[&a, &b], "ulimits"),
            "{nofile:{soft:3,hard:4},nproc:10}"
        );
        assert_eq!(
            web(&[&a, &b], "logging"),
            "{driver:json-file,options:{max-size:1m,max-file:2}}"
        );
        let c = svc("    logging: {driver: syslog}\n");
        assert_eq!(web(&[&a, &c], "logging"), "{driver:syslog}");
    }

    #[test]
    fn reset_drops_a_value_in_each_of_its_forms() {
        let a = svc(
            "    image: a\n    ports: ['80:80']\n    environment: {FOO: bar, KEEP: x}\n    \
                     labels: {a: b}\n    user: me\n",
        );
        let b = svc(
            "    ports: !reset []\n    environment:\n      FOO: !reset null\n    \
                     labels: !reset {}\n    user: !reset null\n",
        );
        assert_eq!(web(&[&a, &b], "ports"), "<absent>");
        assert_eq!(web(&[&a, &b], "environment"), "{KEEP:x}");
        assert_eq!(web(&[&a, &b], "labels"), "<absent>");
        assert_eq!(web(&[&a, &b], "user"), "<absent>");
        assert_eq!(web(&[&a, &b], "image"), "a");
        // In a list form too, and on one entry of a unique list.
        let c = svc("    environment: [!reset KEEP]\n    ports: [!reset '80:80', '81:81']\n");
        assert_eq!(web(&[&a, &c], "environment"), "{FOO:bar}");
        assert_eq!(web(&[&a, &c], "ports"), "[81:81]");
    }

    #[test]
    fn override_replaces_instead_of_merging() {
        let a = svc("    ports: ['8080:80']\n    environment: {A: '1'}\n    \
                     healthcheck: {interval: 5s, retries: 3}\n");
        let b = svc(
            "    ports: !override ['8443:443']\n    environment: !override {B: '2'}\n    \
                     healthcheck: !override {retries: 1}\n",
        );
        assert_eq!(web(&[&a, &b], "ports"), "[8443:443]");
        assert_eq!(web(&[&a, &b], "environment"), "{B:2}");
        assert_eq!(web(&[&a, &b], "healthcheck"), "{retries:1}");
    }

    #[test]
    fn a_build_string_merges_with_a_build_mapping_and_lone_strings_with_lists() {
        let a = svc("    build: ./app\n    dns: 1.1.1.1\n    env_file: a.env\n");
        let b = svc(
            "    build: {args: [X=1], target: dev}\n    dns: [8.8.8.8]\n    \
                     env_file: [a.env, b.env]\n",
        );
        assert_eq!(
            web(&[&a, &b], "build"),
            "{context:./app,args:[X=1],target:dev}"
        );
        let c = svc("    build: {args: {Y: 2}}\n");
        assert_eq!(
            web(&[&a, &b, &c], "build"),
            "{context:./app,args:{X:1,Y:2},target:dev}"
        );
        assert_eq!(web(&[&a, &b], "dns"), "[1.1.1.1,8.8.8.8]");
        assert_eq!(web(&[&a, &b], "env_file"), "[a.env,b.env]");
    }

    #[test]
    fn a_list_or_mapping_replaced_by_another_type_is_a_conflict() {
        let found = |a: &str, b: &str| {
            let mut out = Vec::new();
            conflicts(
                &parse(&svc(a)).unwrap(),
                &parse(&svc(b)).unwrap(),
                &[],
                &mut out,
            );
            out.into_iter()
                .map(|(p, path, _)| format!("{}:{path}", p.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            found("    healthcheck: {retries: 3}\n", "    healthcheck: [x]\n"),
            ["3:services.web.healthcheck"]
        );
        assert_eq!(
            found("    ports: ['80:80']\n", "    ports: {a: 1}\n"),
            ["3:services.web.ports"]
        );
        assert_eq!(
            found(
                "    deploy: {resources: {limits: {}}}\n",
                "    deploy: {resources: x}\n"
            ),
            ["3:services.web.deploy.resources"]
        );
        // Forms Compose merges, and tags, are no conflict.
        assert!(found("    environment: [A=1]\n", "    environment: {B: 2}\n").is_empty());
        assert!(found("    build: .\n", "    build: {target: x}\n").is_empty());
        assert!(found("    dns: [1.1.1.1]\n", "    dns: 8.8.8.8\n").is_empty());
        assert!(found("    command: [a]\n", "    command: b\n").is_empty());
        assert!(found("    ports: ['80:80']\n", "    ports: !override {}\n").is_empty());
    }

    #[test]
    fn a_tag_in_the_first_layer_means_nothing_to_merge() {
        let a = svc("    image: a\n    user: !reset x\n    ports: !override ['1:1']\n");
        assert_eq!(web(&[&a], "user"), "<absent>");
        assert_eq!(web(&[&a], "ports"), "[1:1]");
    }

    #[test]
    fn merged_nodes_keep_the_file_they_came_from() {
        let a = crate::stack::compose::yaml::parse_file(&svc("    image: a\n    user: u\n"), 0);
        let b = crate::stack::compose::yaml::parse_file(&svc("\n    user: v\n"), 1);
        let m = merge(a.unwrap(), b.unwrap(), &[]).unwrap();
        let w = m.get("services").and_then(|s| s.get("web")).unwrap();
        assert_eq!(w.get("image").unwrap().pos.file, 0);
        let user = w.get("user").unwrap();
        assert_eq!((user.pos.file, user.pos.line), (1, 4));
    }
}
