//! `extends:` a service in the same file (`extends: base`, `{service: base}`) or in
//! another (`{file: common.yml, service: base}`): the base is the lower layer and the
//! service is merged over it with the multi-file rules. A base from another file keeps
//! that file's positions, so its relative paths (build context, env_file, bind sources)
//! resolve against that file's directory and its errors name that file. Chains are
//! followed; a cycle is refused with its chain named.

use std::path::PathBuf;

use super::load::{Loader, parent_dir};
use super::merge::merge;
use super::yaml::{Kind, Node, Pos};

/// One link of a chain: which file (by path) and which service.
type Link = (PathBuf, String);

/// Resolves every `extends` in the services of `root` (one file's tree), in place.
pub(super) fn apply(l: &mut Loader, root: &mut Node) {
    let Some(names) = service_names(root) else {
        return;
    };
    let file = root_file(l, root);
    let snapshot = root.clone();
    let mut done = Vec::new();
    for name in names {
        let chain = vec![(file.clone(), name.clone())];
        if let Some(svc) = resolve(l, &snapshot, &name, chain) {
            done.push((name, svc));
        }
    }
    let Some(Kind::Map(services)) = services_mut(root).map(|s| &mut s.kind) else {
        return;
    };
    for (name, svc) in done {
        if let Some((_, v)) = services.iter_mut().find(|(k, _)| k.as_str() == Some(&name)) {
            *v = svc;
        }
    }
}

fn root_file(l: &Loader, root: &Node) -> PathBuf {
    let f = l.ctx.file_of(root.pos);
    std::fs::canonicalize(&f).unwrap_or(f)
}

fn service_names(root: &Node) -> Option<Vec<String>> {
    let m = root.get("services")?.as_map()?;
    Some(
        m.iter()
            .filter(|(_, v)| v.get("extends").is_some())
            .filter_map(|(k, _)| k.as_str().map(str::to_string))
            .collect(),
    )
}

fn services_mut(root: &mut Node) -> Option<&mut Node> {
    let Kind::Map(m) = &mut root.kind else {
        return None;
    };
    m.iter_mut()
        .find(|(k, _)| k.as_str() == Some("services"))
        .map(|(_, v)| v)
}

/// `extends` as (service, file): a name, or `{service, file}`.
fn reference(l: &mut Loader, ext: &Node, path: &str) -> Option<(String, Option<(String, Pos)>)> {
    match &ext.kind {
        Kind::Scalar { value, .. } => Some((value.clone(), None)),
        Kind::Map(m) => {
            let mut service = None;
            let mut file = None;
            for (k, v) in m {
                let key = k.as_str().unwrap_or("");
                let kp = format!("{path}.{key}");
                match key {
                    "service" => service = l.ctx.scalar(v, &kp, "a service name"),
                    "file" => file = l.ctx.scalar(v, &kp, "a file path").map(|f| (f, v.pos)),
                    other => l.ctx.err(
                        k.pos,
                        &kp,
                        format!("unknown extends key `{other}`: allowed are service and file"),
                    ),
                }
            }
            if service.is_none() {
                l.ctx.err(
                    ext.pos,
                    path,
                    "`extends` needs `service:` (the service to extend)",
                );
            }
            Some((service?, file))
        }
        _ => {
            let found = ext.type_name();
            l.ctx.err(
                ext.pos,
                path,
                format!("expected a service name or {{service, file}}, found {found}"),
            );
            None
        }
    }
}

/// The service `name` of `root` with its `extends` chain merged under it.
fn resolve(l: &mut Loader, root: &Node, name: &str, chain: Vec<Link>) -> Option<Node> {
    let svc = root.get("services")?.get(name)?.clone();
    let Some(ext) = svc.get("extends").cloned() else {
        return Some(svc);
    };
    let path = format!("services.{name}.extends");
    let (base_name, file) = reference(l, &ext, &path)?;
    let (base_root, base_file) = match file {
        None => (
            root.clone(),
            chain.last().map(|c| c.0.clone()).unwrap_or_default(),
        ),
        Some((f, at)) => {
            let full = l.ctx.dir_of(at).join(&f);
            let key = std::fs::canonicalize(&full).unwrap_or(full.clone());
            if let Some(r) = loaded(l, &key, &full, at, &path) {
                (r, key)
            } else {
                return None;
            }
        }
    };
    let link = (base_file.clone(), base_name.clone());
    if chain.contains(&link) {
        let mut names: Vec<String> = chain.iter().map(show).collect();
        names.push(show(&link));
        l.ctx.err(
            ext.pos,
            &path,
            format!("extends cycle: {}; break the chain", names.join(" -> ")),
        );
        return None;
    }
    if base_root
        .get("services")
        .and_then(|s| s.get(&base_name))
        .is_none()
    {
        let known = base_root
            .get("services")
            .and_then(Node::as_map)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        l.ctx.err(
            ext.pos,
            &path,
            format!(
                "no service `{base_name}` in {} to extend (services there: {known})",
                base_file.display()
            ),
        );
        return None;
    }
    let mut chain = chain;
    chain.push(link);
    let base = resolve(l, &base_root, &base_name, chain)?;
    let local = without_extends(svc);
    super::load::merge_checked(&mut l.ctx, &base, &local, &["services", name]);
    merge(base, local, &["services", name])
}

/// Another file's tree, read once per reference (a small file, in practice).
fn loaded(
    l: &mut Loader,
    key: &std::path::Path,
    full: &std::path::Path,
    at: Pos,
    path: &str,
) -> Option<Node> {
    // As compose-go: a base file's own `include:` is not read (only its services are).
    l.read(full, &parent_dir(key), None, at, path)
}

fn show(link: &Link) -> String {
    let file = link.0.file_name().map(|f| f.to_string_lossy().into_owned());
    format!("{}:{}", file.unwrap_or_default(), link.1)
}

fn without_extends(mut svc: Node) -> Node {
    if let Kind::Map(m) = &mut svc.kind {
        m.retain(|(k, _)| k.as_str() != Some("extends"));
    }
    svc
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, Project, load_files};
    use std::path::PathBuf;

    fn project(files: &[(&str, &str)]) -> (PathBuf, Result<Project, String>) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "osmen-extends-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        for (name, body) in files {
            let p = d.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let opts = LoadOptions {
            project_name: Some("x".into()),
            ..Default::default()
        };
        let r = load_files(&[d.join(files[0].0)], &opts).map_err(|e| e.to_string());
        (d, r)
    }

    #[test]
    fn a_chain_of_three_merges_in_order_and_reset_drops_an_inherited_value() {
        let (d, p) = project(&[(
            "compose.yml",
            "services:\n  a:\n    image: i\n    user: u\n    environment: {A: '1'}\n  \
             b:\n    extends: {service: a}\n    environment: {B: '2'}\n  \
             c:\n    extends: b\n    user: !reset null\n    environment: {A: '3'}\n",
        )]);
        let _ = std::fs::remove_dir_all(&d);
        let p = p.unwrap();
        let c = &p.services["c"];
        assert_eq!(c.image.as_deref(), Some("i"));
        assert_eq!(c.user, None);
        assert_eq!(c.environment["A"], "3");
        assert_eq!(c.environment["B"], "2");
        assert_eq!(p.services["b"].user.as_deref(), Some("u"));
    }

    #[test]
    fn a_base_in_another_file_resolves_paths_there_and_names_its_errors() {
        let (d, p) = project(&[
            (
                "compose.yml",
                "services:\n  web:\n    extends: {file: lib/base.yml, service: base}\n",
            ),
            (
                "lib/base.yml",
                "services:\n  base:\n    image: i\n    volumes: ['./data:/data']\n    \
                 restart: sometimes\n",
            ),
        ]);
        let err = p.unwrap_err();
        assert!(err.contains("lib/base.yml:5:"), "{err}");
        let (d2, p) = project(&[
            (
                "compose.yml",
                "services:\n  web:\n    extends: {file: lib/base.yml, service: base}\n",
            ),
            (
                "lib/base.yml",
                "services:\n  base:\n    image: i\n    volumes: ['./data:/data']\n",
            ),
        ]);
        let p = p.unwrap();
        let src = p.services["web"].volumes[0].source.clone().unwrap();
        assert!(src.ends_with("lib/data"), "{src}");
        for dir in [d, d2] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[test]
    fn a_cycle_across_files_is_named_and_unknown_keys_are_refused() {
        let (d, p) = project(&[
            (
                "compose.yml",
                "services:\n  web:\n    extends: {file: other.yml, service: base}\n",
            ),
            (
                "other.yml",
                "services:\n  base:\n    extends: {file: compose.yml, service: web}\n",
            ),
        ]);
        let err = p.unwrap_err();
        assert!(
            err.contains("extends cycle: compose.yml:web -> other.yml:base -> compose.yml:web"),
            "{err}"
        );
        let (d2, p) = project(&[(
            "compose.yml",
            "services:\n  a:\n    image: i\n  web:\n    extends: {service: a, files: x}\n",
        )]);
        let err = p.unwrap_err();
        assert!(
            err.contains("compose.yml:5:") && err.contains("unknown extends key `files`"),
            "{err}"
        );
        for dir in [d, d2] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
