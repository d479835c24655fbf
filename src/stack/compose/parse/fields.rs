//! A service's structured keys: build, env files, mounts, depends_on, healthcheck,
//! restart.

use super::*;

pub(super) fn parse_build(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Build> {
    match &node.kind {
        Kind::Scalar { value, .. } => Some(Build {
            context: ctx.dir_of(node.pos).join(value),
            target: None,
            labels: BTreeMap::new(),
            dockerfile: None,
            args: BTreeMap::new(),
        }),
        Kind::Map(_) => {
            let context = node
                .get("context")
                .and_then(|c| ctx.scalar(c, &format!("{path}.context"), "a path"))
                .unwrap_or_else(|| ".".into());
            let dockerfile = node
                .get("dockerfile")
                .and_then(|d| ctx.scalar(d, &format!("{path}.dockerfile"), "a file name"));
            let args = node
                .get("args")
                .map(|a| ctx.kv(a, &format!("{path}.args"), true))
                .unwrap_or_default();
            let target = node
                .get("target")
                .and_then(|t| ctx.scalar(t, &format!("{path}.target"), "a stage name"));
            let labels = node
                .get("labels")
                .map(|l| ctx.kv(l, &format!("{path}.labels"), false))
                .unwrap_or_default();
            for (k, _) in node.as_map().unwrap_or(&[]) {
                let key = k.as_str().unwrap_or("");
                let known = [
                    "context",
                    "dockerfile",
                    "args",
                    "target",
                    "labels",
                    "cache_from",
                    "cache_to",
                    "network",
                    "shm_size",
                    "extra_hosts",
                    "platforms",
                    "tags",
                    "no_cache",
                    "pull",
                    "secrets",
                    "ssh",
                    "additional_contexts",
                    "isolation",
                    "privileged",
                    "ulimits",
                    "dockerfile_inline",
                ];
                if !known.contains(&key) && !key.starts_with("x-") {
                    let hint = did_you_mean(key, &known);
                    ctx.err(
                        k.pos,
                        &format!("{path}.{key}"),
                        format!("unknown build key `{key}`{hint}"),
                    );
                }
            }
            Some(Build {
                context: ctx
                    .dir_of(node.get("context").map_or(node.pos, |c| c.pos))
                    .join(context),
                target,
                labels,
                dockerfile,
                args,
            })
        }
        _ => {
            ctx.err(
                node.pos,
                path,
                "expected a context path or a mapping with `context:`",
            );
            None
        }
    }
}

/// One `env_file` entry: a path, or `{path, required, format}`; `label_file` entries are
/// paths only.
pub(super) fn env_file_entry(
    ctx: &mut Ctx,
    it: &Node,
    p: &str,
    long_form: bool,
) -> Option<(String, bool, Format)> {
    let Kind::Map(m) = &it.kind else {
        return ctx
            .scalar(it, p, "a path")
            .map(|f| (f, true, Format::Compose));
    };
    if !long_form {
        ctx.err(
            it.pos,
            p,
            "expected a path: label_file entries are file paths",
        );
        return None;
    }
    let (mut file, mut required, mut format) = (None, true, Format::Compose);
    for (k, v) in m {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{p}.{key}");
        match key {
            "path" => file = ctx.scalar(v, &kp, "a path"),
            "required" => required = ctx.boolean(v, &kp).unwrap_or(true),
            "format" => match ctx.scalar(v, &kp, "a format").map(|f| Format::parse(&f)) {
                Some(Ok(f)) => format = f,
                Some(Err(m)) => ctx.err(v.pos, &kp, m.to_string()),
                None => {}
            },
            other => ctx.err(
                k.pos,
                &kp,
                format!("unknown env_file key `{other}`: allowed are path, required and format"),
            ),
        }
    }
    if file.is_none() {
        ctx.err(it.pos, p, "an env_file entry needs `path:`");
    }
    Some((file?, required, format))
}

/// `env_file` (or `label_file`): each file read in order, a later one winning. A value may
/// refer to those set by an earlier file and, in an env_file, to the project's variables.
/// A `required: false` file is skipped only when it does not exist.
/// The bare names of an `environment:` (`[PGDATA]`, `{PGDATA: }`) that no variable sets.
pub(super) fn unset_names(ctx: &Ctx, node: &Node) -> Vec<String> {
    let bare: Vec<&str> = match &node.kind {
        Kind::Map(m) => m
            .iter()
            .filter(|(_, v)| v.is_null())
            .filter_map(|(k, _)| k.as_str())
            .collect(),
        Kind::Seq(items) => items
            .iter()
            .filter_map(Node::as_str)
            .filter(|s| !s.contains('='))
            .collect(),
        _ => Vec::new(),
    };
    bare.into_iter()
        .filter(|n| !ctx.vars.contains_key(*n))
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_env_files(ctx: &mut Ctx, node: &Node, path: &str) -> BTreeMap<String, String> {
    let long_form = path.ends_with(".env_file");
    let what = if long_form { "env_file" } else { "label_file" };
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let items: Vec<&Node> = match &node.kind {
        Kind::Seq(s) => s.iter().collect(),
        _ => vec![node],
    };
    for (i, it) in items.into_iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some((file, required, format)) = env_file_entry(ctx, it, &p, long_form) else {
            continue;
        };
        let full = ctx.dir_of(it.pos).join(&file);
        match std::fs::read_to_string(&full) {
            Ok(t) => {
                // As compose-go: the earlier files' values, then (env_file only) the
                // project's variables.
                let lookup = |k: &str| {
                    out.get(k)
                        .or_else(|| if long_form { ctx.vars.get(k) } else { None })
                        .cloned()
                };
                match envfile::parse(&t, format, &lookup) {
                    Ok(pairs) => out.extend(pairs),
                    Err(e) => ctx.errors.push(ComposeError {
                        file: full.clone(),
                        pos: Some(Pos {
                            line: e.line,
                            col: 1,
                            ..Pos::default()
                        }),
                        path: String::new(),
                        message: format!("{} ({what} of {path})", e.message),
                    }),
                }
            }
            Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => ctx.err(
                it.pos,
                &p,
                format!(
                    "cannot read {what} {:?}: {e} ({})",
                    full.display(),
                    match (e.kind() == std::io::ErrorKind::NotFound, long_form) {
                        (true, true) => "create it, or mark it `required: false`",
                        (true, false) => "create it, or remove it from label_file",
                        (false, _) => "make it a readable file",
                    }
                ),
            ),
            Err(_) => {}
        }
    }
    out
}

pub(super) fn parse_mount(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Mount> {
    if let Kind::Map(_) = node.kind {
        let typ = node
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("volume");
        let kind = match typ {
            "volume" => MountKind::Volume,
            "bind" => MountKind::Bind,
            "tmpfs" => MountKind::Tmpfs,
            other => {
                ctx.err(
                    node.pos,
                    &format!("{path}.type"),
                    format!("unsupported mount type {other:?}: use volume, bind or tmpfs"),
                );
                return None;
            }
        };
        let Some(target) = node.get("target").and_then(|t| t.as_str()) else {
            ctx.err(
                node.pos,
                path,
                "a long-syntax volume needs `target:` (the container path)",
            );
            return None;
        };
        let mut source = node
            .get("source")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        if kind == MountKind::Bind {
            source = source.map(|s| resolve_bind(ctx, &s, node.pos));
        }
        let read_only = node
            .get("read_only")
            .and_then(|r| ctx.boolean(r, &format!("{path}.read_only")))
            .unwrap_or(false);
        let mut m = Mount::new(kind, source, target.to_string(), read_only);
        crate::stack::compose::mounts::long_options(ctx, node, path, &mut m);
        if m.kind == MountKind::Bind && m.source.is_none() {
            ctx.err(
                node.pos,
                path,
                "a bind mount needs `source:` (the host path)",
            );
            return None;
        }
        return Some(m);
    }
    let raw = ctx.scalar(node, path, "a volume such as \"data:/var/lib/data\"")?;
    let parts: Vec<&str> = raw.split(':').collect();
    let (src, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => {
            ctx.err(
                node.pos,
                path,
                format!("invalid volume {raw:?}: write \"SOURCE:TARGET[:ro|rw]\""),
            );
            return None;
        }
    };
    if !target.starts_with('/') {
        ctx.err(
            node.pos,
            path,
            format!("invalid volume {raw:?}: the container path {target:?} must be absolute"),
        );
        return None;
    }
    let (kind, source) = match src {
        None => (MountKind::Volume, None),
        Some(s) if s.starts_with('.') || s.starts_with('/') || s.starts_with('~') => {
            (MountKind::Bind, Some(resolve_bind(ctx, s, node.pos)))
        }
        Some(s) => (MountKind::Volume, Some(s.to_string())),
    };
    let mut m = Mount::new(kind, source, target.to_string(), false);
    if m.kind == MountKind::Bind {
        // The short syntax creates a missing host directory, as docker-compose always did.
        m.bind = Some(crate::stack::compose::mounts::BindOpts {
            create_host_path: true,
            ..Default::default()
        });
    }
    if let Some(modes) = mode
        && !crate::stack::compose::mounts::short_modes(ctx, node, path, &raw, modes, &mut m)
    {
        return None;
    }
    Some(m)
}

pub(super) fn resolve_bind(ctx: &Ctx, s: &str, at: Pos) -> String {
    if let Some(rest) = s.strip_prefix("~/")
        && let Some(home) = ctx.vars.get("HOME")
    {
        return format!("{home}/{rest}");
    }
    let p = ctx.dir_of(at).join(s);
    let abs = if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|c| c.join(&p)).unwrap_or(p)
    };
    // Normalise `.` and `..` without touching the file system (the path may not exist yet).
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

pub(super) fn parse_depends(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> BTreeMap<String, Dependency> {
    let mut out = BTreeMap::new();
    match &node.kind {
        Kind::Seq(items) => {
            for (i, it) in items.iter().enumerate() {
                if let Some(n) = ctx.scalar(it, &format!("{path}[{i}]"), "a service name") {
                    out.insert(
                        n,
                        Dependency {
                            condition: Condition::ServiceStarted,
                            required: true,
                        },
                    );
                }
            }
        }
        Kind::Map(m) => {
            for (k, v) in m {
                let Some(n) = ctx.scalar(k, path, "a service name") else {
                    continue;
                };
                let p = format!("{path}.{n}");
                let condition = match v.get("condition").and_then(|c| c.as_str()) {
                    None => Condition::ServiceStarted,
                    Some("service_started") => Condition::ServiceStarted,
                    Some("service_healthy") => Condition::ServiceHealthy,
                    Some("service_completed_successfully") => {
                        Condition::ServiceCompletedSuccessfully
                    }
                    Some(other) => {
                        let pos = v.get("condition").map(|c| c.pos).unwrap_or(v.pos);
                        ctx.err(
                            pos,
                            &format!("{p}.condition"),
                            format!(
                                "unknown condition {other:?}: use service_started, \
                                 service_healthy or service_completed_successfully"
                            ),
                        );
                        continue;
                    }
                };
                let required = v
                    .get("required")
                    .and_then(|r| ctx.boolean(r, &format!("{p}.required")))
                    .unwrap_or(true);
                out.insert(
                    n,
                    Dependency {
                        condition,
                        required,
                    },
                );
            }
        }
        _ => ctx.err(node.pos, path, "expected a list of services or a mapping"),
    }
    out
}

pub(super) fn parse_healthcheck(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Healthcheck> {
    ctx.map(node, path)?;
    let mut hc = Healthcheck {
        test: None,
        interval: None,
        timeout: None,
        retries: None,
        start_period: None,
        start_interval: None,
    };
    for (k, v) in node.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let p = format!("{path}.{key}");
        match key {
            "test" => {
                hc.test = match &v.kind {
                    Kind::Scalar { value, .. } if value == "NONE" => Some(HealthTest::Disabled),
                    Kind::Scalar { value, .. } => Some(HealthTest::Shell(value.clone())),
                    Kind::Seq(items) => {
                        let words: Vec<String> = items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect();
                        match words.first().map(String::as_str) {
                            Some("NONE") => Some(HealthTest::Disabled),
                            Some("CMD") if words.len() > 1 => {
                                Some(HealthTest::Exec(words[1..].to_vec()))
                            }
                            Some("CMD-SHELL") if words.len() == 2 => {
                                Some(HealthTest::Shell(words[1].clone()))
                            }
                            _ => {
                                ctx.err(
                                    v.pos,
                                    &p,
                                    format!(
                                        "invalid health check test {words:?}: start the list \
                                         with \"CMD\" (then the program and its arguments), \
                                         \"CMD-SHELL\" (then one shell command) or \"NONE\""
                                    ),
                                );
                                None
                            }
                        }
                    }
                    _ => {
                        ctx.err(v.pos, &p, "expected a command string or list");
                        None
                    }
                }
            }
            "interval" => hc.interval = ctx.duration(v, &p),
            "timeout" => hc.timeout = ctx.duration(v, &p),
            "start_period" => hc.start_period = ctx.duration(v, &p),
            "start_interval" => hc.start_interval = ctx.duration(v, &p),
            "retries" => hc.retries = ctx.uint(v, &p),
            "disable" => {
                if ctx.boolean(v, &p) == Some(true) {
                    hc.test = Some(HealthTest::Disabled);
                }
            }
            other => {
                let known = [
                    "test",
                    "interval",
                    "timeout",
                    "retries",
                    "start_period",
                    "start_interval",
                    "disable",
                ];
                let hint = did_you_mean(other, &known);
                ctx.err(
                    k.pos,
                    &p,
                    format!("unknown healthcheck key `{other}`{hint}"),
                );
            }
        }
    }
    Some(hc)
}

pub(super) fn parse_restart(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Restart> {
    let s = ctx.scalar(node, path, "a restart policy")?;
    let r = match s.as_str() {
        "no" | "false" => Restart::No,
        "always" => Restart::Always,
        "unless-stopped" => Restart::UnlessStopped,
        "on-failure" => Restart::OnFailure(None),
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => Restart::OnFailure(Some(n)),
            _ => {
                ctx.err(
                    node.pos,
                    path,
                    format!(
                        "invalid restart policy {s:?}: use \"no\", always, unless-stopped, \
                         on-failure or on-failure:N"
                    ),
                );
                return None;
            }
        },
    };
    Some(r)
}
