//! From the compose files a command names to one merged tree, then to a [`Project`].
//!
//! As compose-go does: the files come from `-f` (repeatable), else `COMPOSE_FILE`, else
//! the first of `compose.yaml`, `compose.yml`, `docker-compose.yml`,
//! `docker-compose.yaml` found in the working directory or above it, with its
//! `*.override.*` file. The project directory (`.env`, relative paths, the default
//! project name) is the first file's. Each file is read with a bounded read, parsed,
//! interpolated, has its `include:` and `extends:` resolved, and is then laid over the
//! files before it with the merge rules of [`super::merge`].

use std::io::Read;
use std::path::{Path, PathBuf};

use super::envfile::{self, Format};
use super::interpolate::{Vars, interpolate};
use super::parse::{Ctx, build_project, interpolate_tree};
use super::yaml::{self, Kind, Node, Pos};
use super::{ComposeError, ComposeErrors, LoadOptions, Project, normalize_project_name};

/// The names Compose looks for, in its order of preference (compose-go `DefaultFileNames`).
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
/// The override files merged over a discovered file (compose-go `DefaultOverrideFileNames`).
pub const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// One file a project was read from.
#[derive(Debug, Clone)]
pub struct Source {
    /// What errors name.
    pub path: PathBuf,
    /// Where relative paths in its values resolve: the project directory for the `-f`
    /// files, the file's own directory for an `extends` file, the `project_directory` of
    /// an included one.
    pub dir: PathBuf,
    /// One of the project's own files (not an `extends` or `include` source).
    pub top: bool,
}

/// What discovery found: the files, and a warning when more than one name matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// No compose file to load: none found upwards of `dir`, or no working directory.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{0}")]
    Cwd(#[from] std::io::Error),
    #[error(
        "no compose file in {} or any parent directory (looked for {}): pass one \
         with -f, or set COMPOSE_FILE",
        dir.display(),
        DEFAULT_FILES.join(", ")
    )]
    NotFound { dir: PathBuf },
}

/// Why a compose file's text could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error(
        "refused: the file is {bytes} bytes or more, over the limit of {} MiB for a compose \
         file",
        limit / (1024 * 1024)
    )]
    TooBig { bytes: u64, limit: usize },
    /// Shared so that standard input, read once, can answer every load the same.
    #[error("{0}")]
    Io(std::sync::Arc<std::io::Error>),
    #[error("the file is not UTF-8 text")]
    NotUtf8,
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> ReadError {
        ReadError::Io(std::sync::Arc::new(e))
    }
}

/// Finds the compose file in `dir` or the nearest parent directory that has one, as
/// Compose does, and the override file beside it.
pub fn discover(dir: &Path) -> Result<Discovered, DiscoverError> {
    let mut here = dir.to_path_buf();
    loop {
        let found = existing(&here, DEFAULT_FILES);
        if let Some(first) = found.first() {
            let mut warnings = many(&found);
            let mut files = vec![first.clone()];
            let overrides = existing(&here, OVERRIDE_FILES);
            warnings.extend(many(&overrides));
            files.extend(overrides.into_iter().take(1));
            return Ok(Discovered { files, warnings });
        }
        if here.as_os_str().is_empty() {
            here = std::env::current_dir()?;
        }
        if !here.pop() {
            return Err(DiscoverError::NotFound {
                dir: if dir.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    dir.to_path_buf()
                },
            });
        }
    }
}

fn existing(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect()
}

fn many(found: &[PathBuf]) -> Vec<String> {
    if found.len() < 2 {
        return Vec::new();
    }
    let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    vec![format!(
        "found several compose files with supported names: {}; using {}",
        names.join(", "),
        names[0]
    )]
}

/// Reads a file of at most [`yaml::MAX_FILE_BYTES`]: the size is checked before anything
/// is read, and the read stops past the limit (a pipe or a growing file has no size).
pub fn read_bounded(path: &Path) -> Result<String, ReadError> {
    let limit = yaml::MAX_FILE_BYTES;
    if path == Path::new("-") {
        // Read once: a command may load the project twice (a first run's trial load).
        static STDIN: std::sync::OnceLock<Result<String, ReadError>> = std::sync::OnceLock::new();
        return STDIN
            .get_or_init(|| read_limited(std::io::stdin(), limit))
            .clone();
    }
    let meta = std::fs::metadata(path)?;
    if meta.len() > limit as u64 {
        return Err(ReadError::TooBig {
            bytes: meta.len(),
            limit,
        });
    }
    let f = std::fs::File::open(path)?;
    read_limited(f, limit)
}

/// Up to `limit` bytes as UTF-8 text; past the limit, how many bytes were read.
fn read_limited(f: impl Read, limit: usize) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(ReadError::TooBig {
            bytes: buf.len() as u64,
            limit,
        });
    }
    String::from_utf8(buf).map_err(|_| ReadError::NotUtf8)
}

/// Reads, merges and validates the project's compose files, in order.
pub fn load_files(files: &[PathBuf], opts: &LoadOptions) -> Result<Project, ComposeErrors> {
    let mut inputs = Vec::new();
    for f in files {
        let text = read_bounded(f).map_err(|e| {
            one(
                f,
                None,
                format!(
                    "cannot read the compose file: {e} (pass another with -f or set \
                     COMPOSE_FILE)"
                ),
            )
        })?;
        inputs.push((f.clone(), text));
    }
    load_texts(inputs, opts)
}

fn one(file: &Path, pos: Option<Pos>, message: String) -> ComposeErrors {
    ComposeErrors(vec![ComposeError {
        file: file.to_path_buf(),
        pos,
        path: String::new(),
        message,
    }])
}

/// The directory a file's relative paths resolve against: its parent, or `.`.
pub fn parent_dir(file: &Path) -> PathBuf {
    if file == Path::new("-") {
        return PathBuf::from(".");
    }
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The project's variables: its `.env`, then the process environment over it.
fn project_vars(dir: &Path, opts: &LoadOptions) -> Result<Vars, ComposeErrors> {
    let mut vars = Vars::new();
    let dotenv = dir.join(".env");
    if let Ok(t) = std::fs::read_to_string(&dotenv) {
        let pairs =
            envfile::parse(&t, Format::Compose, &|k| opts.env.get(k).cloned()).map_err(|e| {
                one(
                    &dotenv,
                    Some(Pos {
                        line: e.line,
                        col: 1,
                        file: 0,
                    }),
                    e.message,
                )
            })?;
        vars.extend(pairs);
    }
    vars.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(vars)
}

/// The loader's state while files are read: the context errors go to, and every file's
/// text (secret variables are those the files name).
pub(super) struct Loader<'o> {
    pub(super) ctx: Ctx,
    pub(super) opts: &'o LoadOptions,
    pub(super) text: String,
}

impl Loader<'_> {
    /// Reads, parses and interpolates one more file (an `extends` or `include` source),
    /// `at` being the reference to it. None (and the error recorded there) if it fails.
    pub(super) fn read(
        &mut self,
        path: &Path,
        dir: &Path,
        vars: Option<Vars>,
        at: Pos,
        what: &str,
    ) -> Option<Node> {
        let text = match read_bounded(path) {
            Ok(t) => t,
            Err(e) => {
                self.ctx
                    .err(at, what, format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        let Ok(idx) = u16::try_from(self.ctx.sources.len()) else {
            self.ctx
                .err(at, what, "refused: more than 65535 files in one project");
            return None;
        };
        self.ctx.sources.push(Source {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            top: false,
        });
        let mut root = match yaml::parse_file(&text, idx) {
            Ok(r) => r,
            Err(e) => {
                let p = e.pos;
                self.ctx.err(p, "", format!("invalid YAML: {}", e.message));
                return None;
            }
        };
        self.text.push_str(&text);
        if !matches!(root.kind, Kind::Map(_)) {
            let found = root.type_name();
            self.ctx.err(
                root.pos,
                "",
                format!("a compose file is a mapping, found {found}"),
            );
            return None;
        }
        match vars {
            Some(v) => {
                let saved = std::mem::replace(&mut self.ctx.vars, v);
                interpolate_tree(&mut root, "", &mut self.ctx);
                self.ctx.vars = saved;
            }
            None => interpolate_tree(&mut root, "", &mut self.ctx),
        }
        Some(root)
    }
}

/// The project name: `-p`/COMPOSE_PROJECT_NAME, else the last file's `name:`, else the
/// project directory's name. Returns the name as written and where it was written.
fn project_name(opts: &LoadOptions, ctx: &mut Ctx, trees: &[Node]) -> (String, Pos) {
    let named = trees.iter().rev().find_map(|t| t.get("name"));
    let pos = named.or(trees.first()).map(|n| n.pos).unwrap_or_default();
    let raw = match (
        &opts.project_name,
        ctx.vars.get("COMPOSE_PROJECT_NAME"),
        named,
    ) {
        (Some(n), _, _) => n.clone(),
        (None, Some(n), _) if !n.is_empty() => n.clone(),
        (None, _, Some(n)) => match ctx.scalar(n, "name", "a project name") {
            Some(v) => interpolate(&v, &ctx.vars).unwrap_or(v),
            None => String::new(),
        },
        (None, _, None) => std::fs::canonicalize(&ctx.dir)
            .ok()
            .and_then(|d| d.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    (raw, pos)
}

/// Records, as errors at the later value, what [`super::merge::conflicts`] finds.
pub(super) fn merge_checked(ctx: &mut Ctx, base: &Node, over: &Node, path: &[&str]) {
    let mut found = Vec::new();
    super::merge::conflicts(base, over, path, &mut found);
    for (pos, p, message) in found {
        ctx.err(pos, &p, message);
    }
}

/// Loads compose texts as the files they were read from, the first one's directory
/// being the project directory.
pub(super) fn load_texts(
    inputs: Vec<(PathBuf, String)>,
    opts: &LoadOptions,
) -> Result<Project, ComposeErrors> {
    let first = inputs.first().map(|(p, _)| p.clone()).unwrap_or_default();
    // Absolute, as compose-go makes it: `config` prints build contexts and bind sources
    // the way `docker compose config` does, whatever the working directory is later.
    let dir = std::path::absolute(parent_dir(&first)).unwrap_or_else(|_| parent_dir(&first));
    let vars = project_vars(&dir, opts)?;
    let mut ctx = Ctx {
        sources: Vec::new(),
        dir: dir.clone(),
        vars,
        errors: Vec::new(),
    };
    let mut trees = Vec::new();
    let mut text = String::new();
    for (i, (path, t)) in inputs.iter().enumerate() {
        let idx = u16::try_from(i).map_err(|_| one(path, None, "too many files".into()))?;
        ctx.sources.push(Source {
            path: path.clone(),
            dir: dir.clone(),
            top: true,
        });
        let root = yaml::parse_file(t, idx)
            .map_err(|e| one(path, Some(e.pos), format!("invalid YAML: {}", e.message)))?;
        if !matches!(root.kind, Kind::Map(_)) {
            let found = root.type_name();
            return Err(one(
                path,
                Some(root.pos),
                format!("a compose file is a mapping with a `services:` key, found {found}"),
            ));
        }
        text.push_str(t);
        trees.push(root);
    }
    // The project name first, then offered to interpolation as COMPOSE_PROJECT_NAME, as
    // compose-go does.
    let (raw_name, name_pos) = project_name(opts, &mut ctx, &trees);
    let name = normalize_project_name(&raw_name);
    ctx.vars.insert("COMPOSE_PROJECT_NAME".into(), name.clone());
    let mut loader = Loader { ctx, opts, text };
    let mut merged = Node::new(Kind::Map(Vec::new()), Pos::default());
    let mut refs_failed = false;
    for (i, mut tree) in trees.into_iter().enumerate() {
        interpolate_tree(&mut tree, "", &mut loader.ctx);
        super::unique::check(&mut loader.ctx, &tree);
        let before = loader.ctx.errors.len();
        let path = &inputs[i].0;
        let key = std::fs::canonicalize(path).unwrap_or(path.clone());
        super::include::apply(&mut loader, &mut tree, &[key]);
        super::extends::apply(&mut loader, &mut tree);
        refs_failed |= loader.ctx.errors.len() > before;
        merge_checked(&mut loader.ctx, &merged, &tree, &[]);
        merged = super::merge::merge(merged, tree, &[])
            .unwrap_or(Node::new(Kind::Map(Vec::new()), Pos::default()));
    }
    // A missing include or extends base would only add "unknown service" noise.
    if refs_failed {
        return Err(ComposeErrors(loader.ctx.errors));
    }
    let Loader { ctx, text, .. } = loader;
    build_project(ctx, merged, name, name_pos, &raw_name, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("osmen-load-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A sparse file over the limit is refused from its size, before a byte is read.
    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let d = tmp("big");
        let f = d.join("compose.yml");
        let file = std::fs::File::create(&f).unwrap();
        file.set_len(yaml::MAX_FILE_BYTES as u64 + 1).unwrap();
        let err = load_files(std::slice::from_ref(&f), &LoadOptions::default())
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_dir_all(&d);
        assert!(err.contains("over the limit of 10 MiB"), "{err}");
        assert!(err.starts_with(&f.display().to_string()), "{err}");
    }

    #[test]
    fn discovery_prefers_compose_yaml_and_takes_one_override() {
        let d = tmp("disc");
        for f in [
            "docker-compose.yml",
            "compose.yaml",
            "docker-compose.override.yml",
        ] {
            std::fs::write(d.join(f), "services: {}\n").unwrap();
        }
        let found = discover(&d).unwrap();
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(
            found.files,
            vec![
                d.join("compose.yaml"),
                d.join("docker-compose.override.yml")
            ]
        );
        assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
        assert!(found.warnings[0].contains("using"), "{:?}", found.warnings);
    }

    #[test]
    fn discovery_walks_up_and_says_what_it_looked_for() {
        let d = tmp("up");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("compose.yml"), "services: {}\n").unwrap();
        let found = discover(&d.join("a/b")).unwrap();
        assert_eq!(found.files, vec![d.join("compose.yml")]);
        std::fs::remove_file(d.join("compose.yml")).unwrap();
        let err = discover(&d.join("a/b"));
        let _ = std::fs::remove_dir_all(&d);
        // A parent of the temp dir may hold one; if not, the message names the names.
        if let Err(e) = err {
            let e = e.to_string();
            assert!(e.contains("compose.yaml, compose.yml"), "{e}");
        }
    }

    /// compose-go interpolates each file before merging: a later file's `${X}` is its own.
    #[test]
    fn each_file_is_interpolated_before_the_merge() {
        let mut opts = LoadOptions {
            project_name: Some("m".into()),
            ..Default::default()
        };
        opts.env.insert("TAG".into(), "1.27".into());
        let a = "services:\n  web:\n    image: nginx:${TAG}\n".to_string();
        let b = "services:\n  web:\n    environment: [\"IMG=nginx:${TAG}\"]\n".to_string();
        let p = load_texts(
            vec![
                (PathBuf::from("/nonexistent/m/compose.yml"), a),
                (PathBuf::from("/nonexistent/m/over.yml"), b),
            ],
            &opts,
        )
        .unwrap();
        assert_eq!(p.services["web"].image.as_deref(), Some("nginx:1.27"));
        assert_eq!(p.services["web"].environment["IMG"], "nginx:1.27");
        assert_eq!(p.files.len(), 2);
    }
}
