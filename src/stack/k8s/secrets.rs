//! Secrets in the export: which environment entries and command-line arguments are
//! secret, and the Secret key each becomes (no secret value is ever written).

use super::*;

/// Which environment entries of a service are secret, and the Secret key each maps to.
pub(super) struct SecretScan {
    /// Environment variable -> key in the Secret.
    pub(super) env: BTreeMap<String, String>,
    /// Literal secret value -> the variable that carries it in the pod.
    pub(super) literals: Vec<(String, String)>,
}

/// The Secret key for a variable: its own name when every service that sets it sets the
/// same value (one `POSTGRES_PASSWORD` for the database and its clients), else prefixed
/// with the service so that two different values cannot collide.
pub(super) fn env_key(svc: &Service, var: &str, ambiguous: &BTreeSet<String>) -> String {
    if ambiguous.contains(var) {
        format!("{}_{}", dns_name(&svc.name).replace('-', "_"), var).to_ascii_uppercase()
    } else {
        var.to_string()
    }
}

pub(super) fn scan_secrets(
    project: &Project,
    svc: &Service,
    ambiguous: &BTreeSet<String>,
) -> SecretScan {
    let mut env = BTreeMap::new();
    let mut literals: Vec<(String, String)> = Vec::new();
    for (k, v) in &svc.environment {
        if is_secret_name(k) && !v.is_empty() {
            env.insert(k.clone(), env_key(svc, k, ambiguous));
            if v.len() >= 4 {
                literals.push((v.clone(), k.clone()));
            }
        }
    }
    // A secret the file interpolated into a command or a health check: the pod gets it
    // from the Secret under the variable's own name.
    let words = svc
        .command
        .iter()
        .chain(svc.entrypoint.iter())
        .flatten()
        .map(String::as_str)
        .chain(svc.healthcheck.iter().flat_map(|h| match &h.test {
            Some(HealthTest::Exec(w)) => w.iter().map(String::as_str).collect::<Vec<_>>(),
            Some(HealthTest::Shell(s)) => vec![s.as_str()],
            _ => Vec::new(),
        }))
        .collect::<Vec<_>>();
    for (k, v) in &project.secret_vars {
        if v.len() >= 4
            && !literals.iter().any(|(lit, _)| lit == v)
            && words.iter().any(|w| w.contains(v.as_str()))
        {
            let var = if svc.environment.contains_key(k) {
                format!("OSMEN_{k}")
            } else {
                k.clone()
            };
            env.insert(var.clone(), k.clone());
            literals.push((v.clone(), var));
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    literals.sort_by_key(|(lit, _)| std::cmp::Reverse(lit.len()));
    for (k, v) in &svc.environment {
        if env.contains_key(k) || v.is_empty() {
            continue;
        }
        let holds_literal = literals.iter().any(|(lit, _)| v.contains(lit.as_str()));
        if holds_literal || mask_url_credentials(v) != *v {
            env.insert(k.clone(), env_key(svc, k, ambiguous));
        }
    }
    SecretScan { env, literals }
}

/// Command words with secrets replaced by `$(VAR)` (expanded by the kubelet), and the
/// variables that must then come from the Secret. A known secret value becomes its own
/// variable; any other secret is what the masker of every view hides (`--requirepass x`,
/// `--password=x`, `-pX` after a MySQL client, a URL password), so the export and the
/// views agree on what is a secret (`--default-authentication-plugin=mysql_native_password`
/// is none).
pub(super) fn scrub_words(
    svc: &Service,
    words: &[String],
    scan: &SecretScan,
    extra: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let masked = mask_command(words);
    let mut out = Vec::with_capacity(words.len());
    for (i, (w, m)) in words.iter().zip(&masked).enumerate() {
        let mut word = w.clone();
        for (lit, var) in &scan.literals {
            if word.contains(lit.as_str()) {
                word = word.replace(lit.as_str(), &format!("$({var})"));
            }
        }
        if word != *w || m == w {
            out.push(word);
            continue;
        }
        // One hidden part: keep what surrounds it; else the whole word is the secret.
        let (pre, post) = match m.split_once(MASK) {
            Some((pre, post))
                if !post.contains(MASK)
                    && w.len() > pre.len() + post.len()
                    && w.starts_with(pre)
                    && w.ends_with(post) =>
            {
                (pre, post)
            }
            _ => ("", ""),
        };
        let flag = match (pre.strip_suffix('='), i.checked_sub(1).map(|j| &words[j])) {
            (Some(opt), _) if opt.starts_with('-') => opt.to_string(),
            (None, Some(prev)) if pre.is_empty() && prev.starts_with('-') => prev.clone(),
            _ if pre.starts_with('-') => pre.to_string(),
            _ => format!("arg{i}"),
        };
        let var = format!("OSMEN_ARG_{}", flag_var(&flag));
        extra.insert(var.clone(), arg_key(svc, &flag));
        out.push(format!("{pre}$({var}){post}"));
    }
    out
}

/// The Secret key for a secret command-line argument: the service and the flag.
pub(super) fn arg_key(svc: &Service, flag: &str) -> String {
    format!(
        "{}_{}",
        dns_name(&svc.name).replace('-', "_").to_ascii_uppercase(),
        flag_var(flag)
    )
}

pub(super) fn flag_var(flag: &str) -> String {
    flag.trim_start_matches('-')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
