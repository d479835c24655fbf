//! `post_start` and `pre_stop`: commands the Compose Specification runs in a service's
//! container after it starts (a failure stops the container) and before it stops (a
//! failure aborts the stop). Each is an exec with its own user, privileges, working
//! directory and environment, as `docker compose` runs them. `pre_start` (ephemeral
//! init containers) is refused by the key table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::parse::{Ctx, seq_or_err};
use super::yaml::Node;

/// One lifecycle hook.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hook {
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
}

/// A `post_start:` or `pre_stop:` list.
pub(super) fn parse(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<Hook> {
    let mut out = Vec::new();
    for (i, item) in seq_or_err(ctx, node, path)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let ip = format!("{path}[{i}]");
        let Some(m) = ctx.map(item, &ip) else {
            continue;
        };
        let mut hook = Hook {
            command: Vec::new(),
            user: None,
            privileged: false,
            working_dir: None,
            environment: BTreeMap::new(),
        };
        for (k, v) in m {
            let key = k.as_str().unwrap_or("");
            let kp = format!("{ip}.{key}");
            match key {
                "command" => hook.command = ctx.words(v, &kp).unwrap_or_default(),
                "user" => hook.user = ctx.scalar(v, &kp, "a user"),
                "privileged" => hook.privileged = ctx.boolean(v, &kp).unwrap_or(false),
                "working_dir" => hook.working_dir = ctx.scalar(v, &kp, "a path"),
                "environment" => hook.environment = ctx.kv(v, &kp, true),
                other if other.starts_with("x-") => {}
                other => ctx.err(
                    k.pos,
                    &kp,
                    format!(
                        "unknown hook key `{other}`; allowed: command, user, privileged, \
                         working_dir, environment"
                    ),
                ),
            }
        }
        if hook.command.is_empty() {
            ctx.err(
                item.pos,
                &ip,
                "a hook needs a `command` (`command: [chown, -R, \"1000\", /data]`)",
            );
            continue;
        }
        out.push(hook);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::stack::compose::{LoadOptions, Project, load_str};

    fn load(svc: &str) -> Result<Project, String> {
        let opts = LoadOptions {
            project_name: Some("h".into()),
            env: [("WHO".to_string(), "ops".to_string())].into(),
        };
        let src = format!("services:\n  a:\n    image: i\n{svc}");
        load_str(&src, std::path::Path::new("/x/compose.yml"), &opts).map_err(|e| e.to_string())
    }

    #[test]
    fn hooks_are_read_with_their_exec_settings() {
        let p = load(
            "    post_start:\n      - command: chown -R 1000 /data\n        user: root\n        \
             privileged: true\n        working_dir: /data\n        environment: [WHO]\n    \
             pre_stop:\n      - command: [nginx, -s, quit]\n",
        )
        .unwrap();
        let a = &p.services["a"];
        assert_eq!(a.post_start[0].command, ["chown", "-R", "1000", "/data"]);
        assert_eq!(a.post_start[0].user.as_deref(), Some("root"));
        assert!(a.post_start[0].privileged);
        assert_eq!(a.post_start[0].working_dir.as_deref(), Some("/data"));
        assert_eq!(a.post_start[0].environment["WHO"], "ops");
        assert_eq!(a.pre_stop[0].command, ["nginx", "-s", "quit"]);
    }

    #[test]
    fn bad_hooks_name_the_line_and_fix() {
        let e = load("    post_start:\n      - user: root\n").unwrap_err();
        assert!(
            e.contains("5:13: services.a.post_start[0]: a hook needs a `command`"),
            "{e}"
        );
        let e = load("    pre_stop:\n      - {command: x, image: y}\n").unwrap_err();
        assert!(
            e.contains("services.a.pre_stop[0].image: unknown hook key `image`"),
            "{e}"
        );
    }
}
