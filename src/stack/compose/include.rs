//! Top-level `include:`: other compose files loaded as their own models (each with its
//! project directory, for relative paths, and its own `.env` or `env_file` for
//! interpolation) and their services, networks, volumes, secrets and configs copied in.
//! Recursive, paths relative to the including file; a cycle is refused with its chain
//! named. As compose-go does, an included resource that has the name of one the
//! including file defines is an error, not a silent override.

use std::path::{Path, PathBuf};

use super::envfile::{self, Format};
use super::interpolate::Vars;
use super::load::{Loader, parent_dir};
use super::merge::merge;
use super::yaml::{Kind, Node, Pos};

const SECTIONS: &[(&str, &str)] = &[
    ("services", "service"),
    ("networks", "network"),
    ("volumes", "volume"),
    ("secrets", "secret"),
    ("configs", "config"),
];

/// One `include` entry: the files (merged in order) and where they resolve.
struct Entry {
    paths: Vec<(String, Pos)>,
    project_directory: Option<(String, Pos)>,
    env_files: Vec<(String, Pos)>,
}

/// Resolves the `include:` of `root` (one file's tree) in place; `chain` is the files
/// that include this one, this one last.
pub(super) fn apply(l: &mut Loader, root: &mut Node, chain: &[PathBuf]) {
    let Kind::Map(m) = &mut root.kind else {
        return;
    };
    let Some(i) = m.iter().position(|(k, _)| k.as_str() == Some("include")) else {
        return;
    };
    let (_, inc) = m.remove(i);
    let items = match inc.kind {
        Kind::Seq(items) => items,
        Kind::Null => Vec::new(),
        _ => {
            let found = inc.type_name();
            l.ctx.err(
                inc.pos,
                "include",
                format!("expected a list of files, found {found}"),
            );
            return;
        }
    };
    for (n, item) in items.iter().enumerate() {
        let p = format!("include[{n}]");
        let Some(entry) = entry(l, item, &p) else {
            continue;
        };
        if let Some(included) = load_entry(l, &entry, item.pos, &p, chain) {
            import(l, root, included, &p);
        }
    }
}

fn entry(l: &mut Loader, item: &Node, p: &str) -> Option<Entry> {
    let mut e = Entry {
        paths: Vec::new(),
        project_directory: None,
        env_files: Vec::new(),
    };
    match &item.kind {
        Kind::Scalar { value, .. } => e.paths.push((value.clone(), item.pos)),
        Kind::Map(m) => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or("");
                let kp = format!("{p}.{key}");
                match key {
                    "path" => e.paths = strings(l, v, &kp),
                    "env_file" => e.env_files = strings(l, v, &kp),
                    "project_directory" => {
                        e.project_directory =
                            l.ctx.scalar(v, &kp, "a directory").map(|d| (d, v.pos))
                    }
                    other => l.ctx.err(
                        k.pos,
                        &kp,
                        format!(
                            "unknown include key `{other}`: allowed are path, project_directory \
                             and env_file"
                        ),
                    ),
                }
            }
            if e.paths.is_empty() {
                l.ctx.err(
                    item.pos,
                    p,
                    "an include entry needs `path:` (a file or a list of files)",
                );
                return None;
            }
        }
        _ => {
            let found = item.type_name();
            l.ctx.err(
                item.pos,
                p,
                format!("expected a file path or {{path, ...}}, found {found}"),
            );
            return None;
        }
    }
    Some(e)
}

fn strings(l: &mut Loader, v: &Node, p: &str) -> Vec<(String, Pos)> {
    match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| {
                l.ctx
                    .scalar(it, &format!("{p}[{i}]"), "a path")
                    .map(|s| (s, it.pos))
            })
            .collect(),
        _ => l
            .ctx
            .scalar(v, p, "a path")
            .map(|s| vec![(s, v.pos)])
            .unwrap_or_default(),
    }
}

/// The variables an included file is interpolated with: the project's, and for names
/// they do not define, its env files' (default: the `.env` of its project directory), as
/// compose-go merges them.
fn include_vars(l: &mut Loader, e: &Entry, base: &Path, project_dir: &Path, p: &str) -> Vars {
    let mut files: Vec<(PathBuf, Option<Pos>)> = e
        .env_files
        .iter()
        .map(|(f, at)| (base.join(f), Some(*at)))
        .collect();
    if files.is_empty() {
        files.push((project_dir.join(".env"), None));
    }
    let mut vars = l.ctx.vars.clone();
    for (f, at) in files {
        match std::fs::read_to_string(&f) {
            Ok(t) => match envfile::parse(&t, Format::Compose, &|k| l.opts.env.get(k).cloned()) {
                Ok(pairs) => {
                    for (k, v) in pairs {
                        vars.entry(k).or_insert(v);
                    }
                }
                Err(err) => {
                    let at = at.unwrap_or_default();
                    let msg = format!("{}: line {}: {}", f.display(), err.line, err.message);
                    l.ctx.err(at, p, msg);
                }
            },
            Err(err) => {
                if let Some(at) = at {
                    l.ctx.err(
                        at,
                        p,
                        format!("cannot read env_file {}: {err}", f.display()),
                    );
                }
            }
        }
    }
    vars
}

fn load_entry(l: &mut Loader, e: &Entry, at: Pos, p: &str, chain: &[PathBuf]) -> Option<Node> {
    let base = l.ctx.dir_of(at).to_path_buf();
    let first = base.join(&e.paths[0].0);
    let project_dir = match &e.project_directory {
        Some((d, _)) => base.join(d),
        None => parent_dir(&first),
    };
    let vars = include_vars(l, e, &base, &project_dir, p);
    let mut included = Node::new(Kind::Map(Vec::new()), at);
    for (f, fpos) in &e.paths {
        let full = base.join(f);
        let key = std::fs::canonicalize(&full).unwrap_or(full.clone());
        if chain.contains(&key) {
            let top = chain.first().map(|f| parent_dir(f)).unwrap_or_default();
            let names: Vec<String> = chain
                .iter()
                .chain([&key])
                .map(|c| relative(&top, c))
                .collect();
            l.ctx.err(
                *fpos,
                p,
                format!(
                    "include cycle: {}; remove one of these includes",
                    names.join(" -> ")
                ),
            );
            return None;
        }
        let mut tree = l.read(&full, &project_dir, Some(vars.clone()), *fpos, p)?;
        let mut next = chain.to_vec();
        next.push(key);
        apply(l, &mut tree, &next);
        super::extends::apply(l, &mut tree);
        super::load::merge_checked(&mut l.ctx, &included, &tree, &[]);
        included = merge(included, tree, &[])?;
    }
    Some(included)
}

/// `p` relative to the project directory `top` (`sub/compose.yaml`, `../x.yml`), so
/// that two files of the same name in a cycle's chain differ.
fn relative(top: &Path, p: &Path) -> String {
    for (up, dir) in top.ancestors().enumerate() {
        if let Ok(rest) = p.strip_prefix(dir)
            && !dir.as_os_str().is_empty()
        {
            return format!("{}{}", "../".repeat(up), rest.display());
        }
    }
    p.display().to_string()
}

/// Copies the included model's resources into `root`; a name both define is an error.
fn import(l: &mut Loader, root: &mut Node, included: Node, p: &str) {
    let Kind::Map(sections) = included.kind else {
        return;
    };
    for (k, v) in sections {
        let Some(&(section, what)) = SECTIONS.iter().find(|(s, _)| k.as_str() == Some(s)) else {
            continue;
        };
        let Kind::Map(entries) = v.kind else { continue };
        let Some(Node {
            kind: Kind::Map(own),
            ..
        }) = section_mut(root, section, k.pos)
        else {
            continue;
        };
        let mut conflicts = Vec::new();
        for (name, def) in entries {
            let n = name.as_str().unwrap_or("").to_string();
            match own.iter().find(|(ok, _)| ok.as_str() == Some(&n)) {
                // The same definition twice (a file included by two others) is no conflict.
                Some((_, mine)) if same(mine, &def) => {}
                Some((ok, _)) => conflicts.push((ok.pos, n, name.pos)),
                None => own.push((name, def)),
            }
        }
        for (pos, n, from) in conflicts {
            let file = l.ctx.file_of(from);
            l.ctx.err(
                pos,
                &format!("{section}.{n}"),
                format!(
                    "{what} `{n}` conflicts with the {what} of that name imported by {p} from {} \
                     (line {}); rename one of them",
                    file.display(),
                    from.line
                ),
            );
        }
    }
}

/// Equal trees, wherever they were written.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (Kind::Null, Kind::Null) => true,
        (Kind::Scalar { value: x, .. }, Kind::Scalar { value: y, .. }) => x == y,
        (Kind::Seq(x), Kind::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Kind::Map(x), Kind::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => false,
    }
}

fn section_mut<'r>(root: &'r mut Node, section: &str, at: Pos) -> Option<&'r mut Node> {
    let Kind::Map(m) = &mut root.kind else {
        return None;
    };
    let i = match m.iter().position(|(k, _)| k.as_str() == Some(section)) {
        Some(i) => i,
        None => {
            let key = Node::new(
                Kind::Scalar {
                    value: section.to_string(),
                    plain: true,
                },
                at,
            );
            m.push((key, Node::new(Kind::Map(Vec::new()), at)));
            m.len() - 1
        }
    };
    if m[i].1.is_null() {
        m[i].1 = Node::new(Kind::Map(Vec::new()), at);
    }
    Some(&mut m[i].1)
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, Project, load_files};

    fn project(tag: &str, files: &[(&str, &str)]) -> Result<Project, String> {
        let d = std::env::temp_dir().join(format!("osmen-include-{tag}-{}", std::process::id()));
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
        let _ = std::fs::remove_dir_all(&d);
        r
    }

    #[test]
    fn an_included_files_secret_is_read_from_its_own_directory() {
        let p = project(
            "secret",
            &[
                ("compose.yml", "include: [db/compose.yml]\nservices: {}\n"),
                (
                    "db/compose.yml",
                    "services:\n  db:\n    image: i\n    secrets: [pw]\n\
                     secrets:\n  pw:\n    file: ./pw.txt\n",
                ),
                ("db/pw.txt", "s3cret"),
            ],
        )
        .unwrap();
        let f = p.secrets["pw"].file.as_ref().expect("a file secret");
        assert!(f.ends_with("db/pw.txt"), "{}", f.display());
        // A watcher follows the included file too.
        assert_eq!(p.files.len(), 1);
        assert!(p.sources[1].ends_with("db/compose.yml"), "{:?}", p.sources);
    }

    #[test]
    fn the_long_form_merges_its_paths_and_interpolates_with_its_env_file() {
        let p = project(
            "long",
            &[
                (
                    "compose.yml",
                    "include:\n  - path: [sub/a.yml, sub/b.yml]\n    env_file: sub/vars.env\n\
                     services:\n  web:\n    image: w\n",
                ),
                (
                    "sub/a.yml",
                    "services:\n  db:\n    image: pg:${PG}\n    user: a\n",
                ),
                ("sub/b.yml", "services:\n  db:\n    user: b\n"),
                ("sub/vars.env", "PG=16\n"),
            ],
        )
        .unwrap();
        assert_eq!(p.services["db"].image.as_deref(), Some("pg:16"));
        assert_eq!(p.services["db"].user.as_deref(), Some("b"));
        assert!(p.services.contains_key("web"));
    }

    #[test]
    fn include_errors_name_the_file_and_line() {
        let err = project(
            "missing",
            &[(
                "compose.yml",
                "include:\n  - nope.yml\nservices:\n  web:\n    image: w\n",
            )],
        )
        .unwrap_err();
        assert!(
            err.contains("compose.yml:2:") && err.contains("nope.yml"),
            "{err}"
        );
        let err = project(
            "badkey",
            &[
                (
                    "compose.yml",
                    "include:\n  - {path: a.yml, project_dir: x}\nservices: {}\n",
                ),
                ("a.yml", "services: {}\n"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("unknown include key `project_dir`"), "{err}");
        let err = project(
            "notlist",
            &[("compose.yml", "include: a.yml\nservices: {}\n")],
        )
        .unwrap_err();
        assert!(
            err.contains("compose.yml:1:") && err.contains("expected a list"),
            "{err}"
        );
    }

    #[test]
    fn an_include_cycle_names_paths_relative_to_the_project_directory() {
        // Two files named compose.yaml: the chain must tell them apart.
        // Expected: "include cycle: compose.yaml -> sub/compose.yaml -> compose.yaml".
        let err = project(
            "cycle-paths",
            &[
                (
                    "compose.yaml",
                    "include:\n  - sub/compose.yaml\nservices: {}\n",
                ),
                (
                    "sub/compose.yaml",
                    "include:\n  - ../compose.yaml\nservices: {}\n",
                ),
            ],
        )
        .unwrap_err();
        assert!(
            err.contains("include cycle: compose.yaml -> sub/compose.yaml -> compose.yaml"),
            "{err}"
        );
    }

    #[test]
    fn an_identical_resource_is_no_conflict_and_a_different_one_is() {
        let ok = project(
            "same",
            &[
                (
                    "compose.yml",
                    "include: [a.yml]\nnetworks:\n  n: {}\nservices:\n  w: {image: i}\n",
                ),
                ("a.yml", "networks:\n  n: {}\nservices:\n  v: {image: i}\n"),
            ],
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = project(
            "diff",
            &[
                (
                    "compose.yml",
                    "include: [a.yml]\nvolumes:\n  d: {}\nservices:\n  w: {image: i}\n",
                ),
                ("a.yml", "volumes:\n  d: {external: true}\nservices: {}\n"),
            ],
        )
        .unwrap_err();
        assert!(err.contains("volume `d` conflicts"), "{err}");
    }
}
