//! Images for the stack: reference parsing, registry credentials from the Docker config
//! file, `.dockerignore`-aware build contexts, and the pull policy that decides, per
//! service, whether `up` pulls, builds or uses what the engine has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Compose's `pull_policy`, also `osmen up --pull POLICY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull when the engine does not have the image (the default).
    Missing,
    /// Never pull: a missing image is an error.
    Never,
    /// Build from the `build:` section every time.
    Build,
    /// `daily`, `weekly`, `every_<duration>`: pull when the engine's image was tagged
    /// longer ago than this (or is missing).
    Refresh(std::time::Duration),
}

/// A pull policy or a registry credential osmen cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "unknown pull policy {policy:?}: use always, missing, never, build, daily, \
         weekly or every_<duration> (every_12h, every_1w2d)"
    )]
    UnknownPullPolicy { policy: String },
    #[error("the Docker config file is not valid JSON: {0}")]
    ConfigJson(#[source] serde_json::Error),
    /// An `auths` entry whose `auth` is not base64 of `user:password` (`why` says which).
    #[error("the auth entry for {server} is not {why}")]
    BadAuth { server: String, why: &'static str },
}

impl PullPolicy {
    pub fn parse(s: &str) -> Result<PullPolicy, ImageError> {
        const DAY: u64 = 86_400;
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" | "if_not_present" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            "build" => Ok(PullPolicy::Build),
            "daily" => Ok(PullPolicy::Refresh(std::time::Duration::from_secs(DAY))),
            "weekly" => Ok(PullPolicy::Refresh(std::time::Duration::from_secs(7 * DAY))),
            other => match other.strip_prefix("every_").map(every) {
                Some(Some(d)) => Ok(PullPolicy::Refresh(d)),
                _ => Err(ImageError::UnknownPullPolicy {
                    policy: other.to_string(),
                }),
            },
        }
    }
}

/// The `<duration>` of `every_<duration>`: numbers with w, d, h, m or s (`1w2d`, `90m`).
fn every(spec: &str) -> Option<std::time::Duration> {
    let (mut total, mut n, mut any) = (0u64, String::new(), false);
    for c in spec.chars() {
        if c.is_ascii_digit() {
            n.push(c);
            continue;
        }
        let unit = match c {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let v: u64 = std::mem::take(&mut n).parse().ok()?;
        total = total.checked_add(v.checked_mul(unit)?)?;
        any = true;
    }
    (any && n.is_empty() && total > 0).then(|| std::time::Duration::from_secs(total))
}

/// An image reference split the way the registry needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host as written (`127.0.0.1:5000`), or `docker.io`.
    pub registry: String,
    /// Repository path including the registry prefix as written (what `fromImage` takes).
    pub repository: String,
    /// Tag or digest (`latest` when none is written).
    pub tag: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> ImageRef {
        let (name, tag) = if let Some((n, d)) = image.split_once('@') {
            (n.to_string(), d.to_string())
        } else {
            let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
            match image[slash..].rfind(':') {
                Some(c) => (
                    image[..slash + c].to_string(),
                    image[slash + c + 1..].to_string(),
                ),
                None => (image.to_string(), "latest".to_string()),
            }
        };
        let first = name.split('/').next().unwrap_or("");
        let registry = if name.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost")
        {
            first.to_string()
        } else {
            "docker.io".to_string()
        };
        ImageRef {
            registry,
            repository: name,
            tag,
        }
    }

    /// `repository:tag` (or `repository@digest`).
    pub fn full(&self) -> String {
        if self.tag.starts_with("sha256:") {
            format!("{}@{}", self.repository, self.tag)
        } else {
            format!("{}:{}", self.repository, self.tag)
        }
    }
}

/// Registry credentials from the Docker config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialLookup {
    Found(Credentials),
    None,
    /// The config names a credential helper for this registry; osmen does not run helpers.
    Helper(String),
}

/// Where the Docker config file lives: `$DOCKER_CONFIG/config.json` or
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Looks the registry up in a Docker config file's text (`auths` with base64 `auth`, or
/// `username`/`password`; `credHelpers`/`credsStore` are reported, not run).
pub fn lookup_credentials(
    config_json: &str,
    registry: &str,
) -> Result<CredentialLookup, ImageError> {
    let v: Value = serde_json::from_str(config_json).map_err(ImageError::ConfigJson)?;
    let keys: Vec<String> = if registry == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
            format!("https://{registry}/v1/"),
            format!("https://{registry}/v2/"),
        ]
    };
    if let Some(auths) = v.get("auths").and_then(Value::as_object) {
        for k in &keys {
            let Some(entry) = auths.get(k) else { continue };
            if let Some(auth) = entry.get("auth").and_then(Value::as_str)
                && !auth.is_empty()
            {
                let bad = |why| ImageError::BadAuth {
                    server: k.clone(),
                    why,
                };
                let raw = base64_decode(auth).ok_or_else(|| bad("valid base64"))?;
                let text = String::from_utf8(raw).map_err(|_| bad("UTF-8"))?;
                let (u, p) = text.split_once(':').ok_or_else(|| bad("user:password"))?;
                return Ok(CredentialLookup::Found(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                    server: k.clone(),
                }));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(CredentialLookup::Found(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                    server: k.clone(),
                }));
            }
        }
    }
    if let Some(helpers) = v.get("credHelpers").and_then(Value::as_object) {
        for k in &keys {
            if let Some(h) = helpers.get(k).and_then(Value::as_str) {
                return Ok(CredentialLookup::Helper(h.to_string()));
            }
        }
    }
    if let Some(store) = v.get("credsStore").and_then(Value::as_str) {
        return Ok(CredentialLookup::Helper(store.to_string()));
    }
    Ok(CredentialLookup::None)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 => out.extend_from_slice(&bytes[..2]),
            2 => out.push(bytes[0]),
            _ => return None,
        }
    }
    Some(out)
}

/// `.dockerignore` rules: later rules win; `!` re-includes; a rule that matches a
/// directory excludes everything below it.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let (neg, pat) = match t.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, t),
            };
            let segs: Vec<String> = pat
                .trim_start_matches("./")
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_string)
                .collect();
            if !segs.is_empty() {
                rules.push((neg, segs));
            }
        }
        DockerIgnore { rules }
    }

    /// True when the relative path (with `/` separators) is excluded from the context.
    pub fn excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = false;
        for (neg, pat) in &self.rules {
            // A rule matches the path itself or any directory above it.
            let hit = (1..=parts.len()).any(|n| match_segments(pat, &parts[..n]));
            if hit {
                out = !neg;
            }
        }
        out
    }
}

fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|k| match_segments(&pat[1..], &path[k..])),
        Some(p) => {
            !path.is_empty()
                && glob(p.as_bytes(), path[0].as_bytes())
                && match_segments(&pat[1..], &path[1..])
        }
    }
}

/// Go's filepath.Match for one segment: `*`, `?`, `[a-z]`, `[^x]`, `\` escapes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|k| glob(&p[1..], &s[k..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|c| *c == b']') else {
                return !s.is_empty() && s[0] == b'[' && glob(&p[1..], &s[1..]);
            };
            if s.is_empty() {
                return false;
            }
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some(b'^') | Some(b'!') => (true, &class[1..]),
                _ => (false, class),
            };
            let c = s[0];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != neg && glob(&p[end + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob(&p[2..], &s[1..]),
        Some(c) => !s.is_empty() && s[0] == *c && glob(&p[1..], &s[1..]),
    }
}

/// What a build context tar holds, for the operator and the tests.
#[derive(Debug, Clone, Default)]
pub struct ContextSummary {
    pub files: usize,
    pub bytes: u64,
    pub excluded: Vec<String>,
}

/// Tars the build context, leaving out what `.dockerignore` excludes (the Dockerfile and
/// `.dockerignore` always go, as Docker sends them too).
pub fn context_tar(dir: &Path, dockerfile: &str) -> std::io::Result<(Vec<u8>, ContextSummary)> {
    let ignore = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| DockerIgnore::parse(&t))
        .unwrap_or_default();
    let mut summary = ContextSummary::default();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let rel_path = rel.join(entry.file_name());
            let rel_str = rel_path.to_string_lossy().replace('\\', "/");
            let always = rel_str == dockerfile || rel_str == ".dockerignore";
            let ft = entry.file_type()?;
            if !always && ignore.excluded(&rel_str) {
                // A negated rule may still re-include something below an excluded dir.
                if !(ft.is_dir() && ignore.rules.iter().any(|(neg, _)| *neg)) {
                    summary.excluded.push(rel_str);
                    continue;
                }
                if ft.is_dir() {
                    stack.push(rel_path);
                    continue;
                }
            }
            if ft.is_dir() {
                stack.push(rel_path);
            } else {
                files.insert(rel_str, entry.path());
            }
        }
    }
    for (rel, path) in files {
        let meta = std::fs::symlink_metadata(&path)?;
        summary.files += 1;
        summary.bytes += meta.len();
        builder.append_path_with_name(&path, &rel)?;
    }
    let data = builder.into_inner()?;
    summary.excluded.sort();
    Ok((data, summary))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_based_pull_policies_read_as_compose_writes_them() {
        use std::time::Duration;
        let secs = |p: &str| match PullPolicy::parse(p) {
            Ok(PullPolicy::Refresh(d)) => Some(d),
            _ => None,
        };
        assert_eq!(secs("daily"), Some(Duration::from_secs(86_400)));
        assert_eq!(secs("weekly"), Some(Duration::from_secs(604_800)));
        assert_eq!(secs("every_12h"), Some(Duration::from_secs(43_200)));
        assert_eq!(secs("every_1w2d"), Some(Duration::from_secs(777_600)));
        assert_eq!(secs("every_90m30s"), Some(Duration::from_secs(5_430)));
        for bad in [
            "every_", "every_12", "every_h", "every_0s", "every_1y", "hourly",
        ] {
            let e = PullPolicy::parse(bad).unwrap_err().to_string();
            assert!(e.contains("every_<duration>"), "{bad}: {e}");
        }
    }

    use super::*;

    #[test]
    fn references() {
        let r = ImageRef::parse("127.0.0.1:5000/osmen/standin:v1");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "127.0.0.1:5000/osmen/standin");
        assert_eq!(r.tag, "v1");
        let r = ImageRef::parse("postgres:15-alpine");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_str()),
            ("docker.io", "15-alpine")
        );
        let r = ImageRef::parse("localhost:5000/x");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_str()),
            ("localhost:5000", "latest")
        );
        let r = ImageRef::parse("ghcr.io/a/b@sha256:abc");
        assert_eq!(r.full(), "ghcr.io/a/b@sha256:abc");
        assert_eq!(ImageRef::parse("langflowai/langflow").registry, "docker.io");
    }

    #[test]
    fn credentials_from_config() {
        let cfg = r#"{"auths":{"127.0.0.1:5000":{"auth":"b3NtZW46czNjcmV0"},
                      "https://index.docker.io/v1/":{"username":"u","password":"p"}},
                      "credHelpers":{"gcr.io":"gcloud"}}"#;
        match lookup_credentials(cfg, "127.0.0.1:5000").unwrap() {
            CredentialLookup::Found(c) => {
                assert_eq!((c.username, c.password), ("osmen".into(), "s3cret".into()))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            lookup_credentials(cfg, "docker.io").unwrap(),
            CredentialLookup::Found(_)
        ));
        assert_eq!(
            lookup_credentials(cfg, "gcr.io").unwrap(),
            CredentialLookup::Helper("gcloud".into())
        );
        assert_eq!(
            lookup_credentials(cfg, "quay.io").unwrap(),
            CredentialLookup::None
        );
        assert!(lookup_credentials("{", "x").is_err());
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    }

    #[test]
    fn dockerignore_rules() {
        let ig = DockerIgnore::parse(
            "# c\n*.log\nbig/\n**/*.tmp\n!keep.log\n/target\ndocs/**/draft?.md\n",
        );
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("sub/a.log"), "*.log only matches at the top");
        assert!(ig.excluded("big/blob.bin"));
        assert!(ig.excluded("x/y/z.tmp"));
        assert!(ig.excluded("target/debug/osmen"));
        assert!(ig.excluded("docs/a/b/draft1.md"));
        assert!(!ig.excluded("docs/a/b/draft10.md"));
        assert!(!ig.excluded("src/main.rs"));
        assert!(glob(b"[a-c]x", b"bx") && !glob(b"[^a-c]x", b"bx"));
    }
}
