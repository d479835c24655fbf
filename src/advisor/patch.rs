//! The `docker-compose.yml` patches of the advisor's suggestions. A patch edits the key
//! the file already uses (a service-level `cpus:` or `mem_limit:` stays there, since
//! adding `deploy.resources.limits` beside it would lose the change), and a patch to a
//! `command:` keeps every other argument of it. Pure text; the form of the file comes
//! from the snapshot (`Snapshot::compose_forms`).

use crate::model::advice::ComposeForm;
use crate::model::secret::{MASK, is_secret_name};

/// New CPU and memory limits for `service`, under the keys its file uses.
pub fn limits(
    service: &str,
    cpus: Option<f64>,
    memory: Option<u64>,
    form: Option<&ComposeForm>,
) -> String {
    let at_service = |which: fn(&ComposeForm) -> bool| form.is_some_and(which);
    let mut top = String::new();
    let mut deploy = String::new();
    if let Some(c) = cpus {
        if at_service(|f| f.cpus_service_level) {
            top.push_str(&format!("    cpus: \"{c}\"\n"));
        } else {
            deploy.push_str(&format!("          cpus: \"{c}\"\n"));
        }
    }
    if let Some(m) = memory {
        if at_service(|f| f.memory_service_level) {
            top.push_str(&format!("    mem_limit: {}M\n", m >> 20));
        } else {
            deploy.push_str(&format!("          memory: {}M\n", m >> 20));
        }
    }
    let mut p = format!("services:\n  {service}:\n{top}");
    if !deploy.is_empty() {
        p.push_str("    deploy:\n      resources:\n        limits:\n");
        p.push_str(&deploy);
    }
    p
}

/// `    command: [...]` for a patch: the words quoted (a JSON array is a YAML flow
/// sequence); a literal value after a secret-looking flag is masked, with a note saying
/// so (a `${VAR}` reference is kept as it is).
pub fn command_lines(words: &[String]) -> String {
    let mut shown = Vec::with_capacity(words.len());
    let mut masked = false;
    let mut hide_next = false;
    for w in words {
        if hide_next && !w.starts_with("${") {
            shown.push(MASK.to_string());
            masked = true;
        } else {
            shown.push(w.clone());
        }
        hide_next = w.starts_with('-') && !w.contains('=') && is_secret_name(w);
    }
    // serde_json cannot fail on a list of strings.
    let list = serde_json::to_string(&shown).unwrap_or_default();
    let mut out = format!("    command: {list}\n");
    if masked {
        out.push_str(&format!(
            "    # {MASK} stands for the value your file has there (secrets are never shown)\n"
        ));
    }
    out
}

/// The command with `flag value` set: the value after an existing `flag` replaced, else
/// both appended (Redis: `--maxmemory 3072mb`). Without a command, `default` and the pair.
pub fn with_flag(
    command: Option<&[String]>,
    default: &str,
    flag: &str,
    value: &str,
) -> Vec<String> {
    let mut words: Vec<String> = match command {
        Some(c) => c.to_vec(),
        None => vec![default.to_string()],
    };
    match words.iter().position(|w| w == flag) {
        Some(i) if i + 1 < words.len() => words[i + 1] = value.to_string(),
        Some(_) => words.push(value.to_string()),
        None => {
            words.push(flag.to_string());
            words.push(value.to_string());
        }
    }
    words
}

/// The command with PostgreSQL's `-c name=value`: an existing setting of `name` (as
/// `-c name=x`, `-cname=x` or `--name=x`) replaced, else `-c name=value` appended.
/// Without a command, `postgres -c name=value`.
pub fn with_pg_setting(command: Option<&[String]>, name: &str, value: &str) -> Vec<String> {
    let mut words: Vec<String> = match command {
        Some(c) => c.to_vec(),
        None => vec!["postgres".to_string()],
    };
    let setting = format!("{name}={value}");
    let prefix = format!("{name}=");
    let dashed = format!("--{}=", name.replace('_', "-"));
    for i in 0..words.len() {
        let w = words[i].clone();
        if w == "-c" && words.get(i + 1).is_some_and(|n| n.starts_with(&prefix)) {
            words[i + 1] = setting;
            return words;
        }
        if w.strip_prefix("-c").is_some_and(|r| r.starts_with(&prefix)) {
            words[i] = format!("-c{setting}");
            return words;
        }
        if w.starts_with(&format!("--{prefix}")) || w.starts_with(&dashed) {
            words[i] = format!("--{setting}");
            return words;
        }
    }
    words.push("-c".into());
    words.push(setting);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn limits_stay_under_the_key_the_file_uses() {
        let svc = ComposeForm {
            cpus_service_level: true,
            memory_service_level: true,
            command: None,
        };
        let p = limits("api", Some(1.0), Some(512 << 20), Some(&svc));
        assert_eq!(
            p,
            "services:\n  api:\n    cpus: \"1\"\n    mem_limit: 512M\n"
        );
        let p = limits("api", Some(1.5), None, None);
        assert_eq!(
            p,
            "services:\n  api:\n    deploy:\n      resources:\n        limits:\n          \
             cpus: \"1.5\"\n"
        );
        let mixed = ComposeForm {
            memory_service_level: true,
            ..Default::default()
        };
        let p = limits("api", Some(2.0), Some(1 << 30), Some(&mixed));
        assert!(p.contains("    mem_limit: 1024M\n") && p.contains("          cpus: \"2\"\n"));
    }

    #[test]
    fn commands_keep_their_other_arguments() {
        let pg = words(&[
            "postgres",
            "-c",
            "shared_preload_libraries=pg_stat_statements",
        ]);
        assert_eq!(
            with_pg_setting(Some(&pg), "max_connections", "200"),
            words(&[
                "postgres",
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "max_connections=200"
            ])
        );
        let set = words(&["-c", "max_connections=20", "-c", "jit=off"]);
        assert_eq!(
            with_pg_setting(Some(&set), "max_connections", "40"),
            words(&["-c", "max_connections=40", "-c", "jit=off"])
        );
        assert_eq!(
            with_pg_setting(
                Some(&words(&["postgres", "--max-connections=5"])),
                "max_connections",
                "9"
            ),
            words(&["postgres", "--max_connections=9"])
        );
        assert_eq!(
            with_pg_setting(None, "max_connections", "200"),
            words(&["postgres", "-c", "max_connections=200"])
        );
        let redis = words(&[
            "redis-server",
            "--appendonly",
            "yes",
            "--maxmemory",
            "1536mb",
        ]);
        assert_eq!(
            with_flag(Some(&redis), "redis-server", "--maxmemory", "3072mb"),
            words(&[
                "redis-server",
                "--appendonly",
                "yes",
                "--maxmemory",
                "3072mb"
            ])
        );
        assert_eq!(
            with_flag(None, "redis-server", "--maxmemory", "4mb"),
            words(&["redis-server", "--maxmemory", "4mb"])
        );
    }

    #[test]
    fn a_literal_secret_in_a_command_is_masked_and_a_reference_kept() {
        let c = command_lines(&words(&[
            "redis-server",
            "--requirepass",
            "${REDIS_PASSWORD}",
        ]));
        assert_eq!(
            c,
            "    command: [\"redis-server\",\"--requirepass\",\"${REDIS_PASSWORD}\"]\n"
        );
        let c = command_lines(&words(&["redis-server", "--requirepass", "hunter2"]));
        assert!(
            !c.contains("hunter2") && c.contains(MASK) && c.contains("never shown"),
            "{c}"
        );
    }
}
