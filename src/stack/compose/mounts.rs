//! The options of a service's `volumes:` entry beyond source, target and read-only, as
//! compose-go reads them: the short syntax's modes (`ro`, `rw`, `z`, `Z`, `nocopy`, a
//! bind propagation, a macOS consistency) and the long syntax's `bind` (`propagation`,
//! `create_host_path`, `selinux`), `volume` (`nocopy`, `subpath`) and `tmpfs` (`size`,
//! `mode`). Each is applied by the engine adapter; an unknown key or mode is refused.

use serde::Serialize;

use super::parse::Ctx;
use super::yaml::Node;
use super::{Mount, MountKind};
use crate::model::units::parse_bytes;

const PROPAGATIONS: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];
const CONSISTENCIES: &[&str] = &["cached", "delegated", "consistent"];

/// `bind:` options.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BindOpts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host directory when nothing is there (the short syntax implies it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub create_host_path: bool,
    /// `z` (shared) or `Z` (private) SELinux relabel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

/// `volume:` options.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct VolumeOpts {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// `tmpfs:` options.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TmpfsOpts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// The short syntax's third part (`ro,z`, `rw,rshared`, `nocopy`), onto the mount.
pub(super) fn short_modes(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    raw: &str,
    modes: &str,
    m: &mut Mount,
) -> bool {
    for o in modes.split(',') {
        match o {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "z" | "Z" if m.kind == MountKind::Bind => {
                m.bind.get_or_insert_with(BindOpts::default).selinux = Some(o.to_string())
            }
            "nocopy" if m.kind == MountKind::Volume => {
                m.volume.get_or_insert_with(VolumeOpts::default).nocopy = true
            }
            p if PROPAGATIONS.contains(&p) && m.kind == MountKind::Bind => {
                m.bind.get_or_insert_with(BindOpts::default).propagation = Some(p.to_string())
            }
            c if CONSISTENCIES.contains(&c) => m.consistency = Some(c.to_string()),
            bad => {
                let kind = if m.kind == MountKind::Bind {
                    "a bind mount"
                } else {
                    "a volume"
                };
                ctx.err(
                    node.pos,
                    path,
                    format!(
                        "invalid volume mode {bad:?} in {raw:?} for {kind}: use ro, rw, z, Z, \
                         nocopy (volumes), a propagation ({}) for binds, or cached, delegated \
                         or consistent",
                        PROPAGATIONS.join(", ")
                    ),
                );
                return false;
            }
        }
    }
    true
}

/// The long syntax's option maps and `consistency`, onto the mount; unknown keys refused.
pub(super) fn long_options(ctx: &mut Ctx, node: &Node, path: &str, m: &mut Mount) {
    for (k, v) in node.as_map().unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{path}.{key}");
        match key {
            "type" | "source" | "target" | "read_only" => {}
            "consistency" => m.consistency = ctx.scalar(v, &kp, "cached, delegated or consistent"),
            "bind" if m.kind == MountKind::Bind => m.bind = Some(bind(ctx, v, &kp)),
            "volume" if m.kind == MountKind::Volume => m.volume = Some(volume(ctx, v, &kp)),
            "tmpfs" if m.kind == MountKind::Tmpfs => m.tmpfs = Some(tmpfs(ctx, v, &kp)),
            "bind" | "volume" | "tmpfs" => ctx.err(
                k.pos,
                &kp,
                format!(
                    "`{key}` options belong to a mount of type {key}; this one is another type"
                ),
            ),
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown volume key `{other}`; allowed: type, source, target, read_only, \
                     consistency, bind, volume, tmpfs"
                ),
            ),
        }
    }
}

fn bind(ctx: &mut Ctx, node: &Node, path: &str) -> BindOpts {
    let mut b = BindOpts::default();
    for (k, v) in ctx.map(node, path).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{path}.{key}");
        match key {
            "propagation" => match ctx.scalar(v, &kp, "a propagation") {
                Some(p) if PROPAGATIONS.contains(&p.as_str()) => b.propagation = Some(p),
                Some(p) => ctx.err(
                    v.pos,
                    &kp,
                    format!("invalid propagation {p:?}: use {}", PROPAGATIONS.join(", ")),
                ),
                None => {}
            },
            "create_host_path" => b.create_host_path = ctx.boolean(v, &kp).unwrap_or(false),
            "selinux" => match ctx.scalar(v, &kp, "z or Z") {
                Some(s) if s == "z" || s == "Z" => b.selinux = Some(s),
                Some(s) => ctx.err(v.pos, &kp, format!("invalid selinux {s:?}: use z or Z")),
                None => {}
            },
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!(
                    "unknown bind key `{other}`; allowed: propagation, create_host_path, selinux"
                ),
            ),
        }
    }
    b
}

fn volume(ctx: &mut Ctx, node: &Node, path: &str) -> VolumeOpts {
    let mut o = VolumeOpts::default();
    for (k, v) in ctx.map(node, path).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{path}.{key}");
        match key {
            "nocopy" => o.nocopy = ctx.boolean(v, &kp).unwrap_or(false),
            "subpath" => o.subpath = ctx.scalar(v, &kp, "a path inside the volume"),
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!("unknown volume option `{other}`; allowed: nocopy, subpath"),
            ),
        }
    }
    o
}

/// As go-yaml reads a number: a leading 0 (or 0o) is octal, else decimal.
fn octal_or_decimal(s: &str) -> Option<u32> {
    match s.strip_prefix("0o").or_else(|| s.strip_prefix('0')) {
        Some(oct) if !oct.is_empty() => u32::from_str_radix(oct, 8).ok(),
        _ => s.parse().ok(),
    }
}

fn tmpfs(ctx: &mut Ctx, node: &Node, path: &str) -> TmpfsOpts {
    let mut o = TmpfsOpts::default();
    for (k, v) in ctx.map(node, path).unwrap_or(&[]) {
        let key = k.as_str().unwrap_or("");
        let kp = format!("{path}.{key}");
        match key {
            "size" => match ctx
                .scalar(v, &kp, "a size such as 64m")
                .map(|s| parse_bytes(&s))
            {
                Some(Ok(n)) => o.size = i64::try_from(n).ok(),
                Some(Err(e)) => ctx.err(v.pos, &kp, e),
                None => {}
            },
            "mode" => {
                if let Some(s) = ctx.scalar(v, &kp, "an octal mode such as 1777") {
                    match octal_or_decimal(&s) {
                        Some(n) => o.mode = Some(n),
                        None => ctx.err(
                            v.pos,
                            &kp,
                            format!("invalid mode {s:?}: write octal such as 01777"),
                        ),
                    }
                }
            }
            other if other.starts_with("x-") => {}
            other => ctx.err(
                k.pos,
                &kp,
                format!("unknown tmpfs option `{other}`; allowed: size, mode"),
            ),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, MountKind, Project, load_str};

    fn load(volumes: &str) -> Result<Project, String> {
        let opts = LoadOptions {
            project_name: Some("m".into()),
            ..Default::default()
        };
        let src =
            format!("services:\n  a:\n    image: i\n    volumes:\n{volumes}volumes:\n  v: {{}}\n");
        load_str(&src, std::path::Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn short_modes_are_read_as_compose_go_reads_them() {
        let p = load(
            "      - ./d:/a:ro,z\n      - ./e:/b:rw,rshared\n      - v:/c:nocopy\n      \
             - ./f:/g:cached\n",
        )
        .unwrap();
        let m = &p.services["a"].volumes;
        let b = m[0].bind.as_ref().unwrap();
        assert!(m[0].read_only && b.create_host_path);
        assert_eq!(b.selinux.as_deref(), Some("z"));
        assert_eq!(
            m[1].bind.as_ref().unwrap().propagation.as_deref(),
            Some("rshared")
        );
        assert!(!m[1].read_only);
        assert_eq!(
            (m[2].kind.clone(), m[2].volume.as_ref().unwrap().nocopy),
            (MountKind::Volume, true)
        );
        assert_eq!(m[3].consistency.as_deref(), Some("cached"));
        for (bad, want) in [
            (
                "      - v:/c:rshared\n",
                "invalid volume mode \"rshared\" in \"v:/c:rshared\" for a volume",
            ),
            (
                "      - ./d:/c:nocopy\n",
                "invalid volume mode \"nocopy\" in \"./d:/c:nocopy\" for a bind mount",
            ),
            ("      - ./d:/c:rx\n", "invalid volume mode \"rx\""),
        ] {
            let e = load(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn long_options_are_read_and_unknown_ones_refused() {
        let p = load(
            "      - {type: tmpfs, target: /t, tmpfs: {size: 10m, mode: 0700}}\n      \
             - {type: bind, source: ./d, target: /e, bind: {propagation: rslave, \
             create_host_path: true, selinux: Z}}\n      \
             - {type: volume, source: v, target: /v2, volume: {nocopy: true, subpath: sub}}\n",
        )
        .unwrap();
        let m = &p.services["a"].volumes;
        let t = m[0].tmpfs.as_ref().unwrap();
        assert_eq!((t.size, t.mode), (Some(10 << 20), Some(0o700)));
        let b = m[1].bind.as_ref().unwrap();
        assert_eq!(
            (
                b.propagation.as_deref(),
                b.create_host_path,
                b.selinux.as_deref()
            ),
            (Some("rslave"), true, Some("Z"))
        );
        let v = m[2].volume.as_ref().unwrap();
        assert_eq!((v.nocopy, v.subpath.as_deref()), (true, Some("sub")));
        // The long syntax does not create a host path unless asked.
        let p = load("      - {type: bind, source: ./d, target: /e}\n").unwrap();
        assert!(!p.services["a"].volumes[0].creates_host_path());
        for (bad, want) in [
            (
                "      - {type: bind, source: ./d, target: /e, bind: {propagaton: rslave}}\n",
                "services.a.volumes[0].bind.propagaton: unknown bind key `propagaton`",
            ),
            (
                "      - {type: volume, source: v, target: /e, bind: {propagation: rslave}}\n",
                "services.a.volumes[0].bind: `bind` options belong to a mount of type bind",
            ),
            (
                "      - {type: tmpfs, target: /t, tmpfs: {size: lots}}\n",
                "services.a.volumes[0].tmpfs.size",
            ),
            (
                "      - {type: bind, target: /e}\n",
                "a bind mount needs `source:`",
            ),
            (
                "      - {type: volume, source: v, target: /e, consistncy: cached}\n",
                "unknown volume key `consistncy`",
            ),
        ] {
            let e = load(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
