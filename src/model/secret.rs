//! Secrets never leave osmen in clear: environment values whose names look like keys,
//! passwords or tokens are replaced by a mask in every view, log line and JSON output.

pub const MASK: &str = "********";

const MARKERS: [&str; 9] = [
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "CREDENTIAL",
    "AUTH",
];

/// True when a variable or option name suggests it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    MARKERS.iter().any(|m| up.contains(m))
}

/// The value to show for `name`: masked when the name looks secret, and with any
/// password inside a URL (`postgresql://user:pw@host`) masked otherwise.
pub fn shown(name: &str, value: &str) -> String {
    if is_secret_name(name) && !value.is_empty() {
        MASK.to_string()
    } else {
        mask_url_credentials(value)
    }
}

/// Replaces the password of every `scheme://user:password@host` in `s`. The userinfo
/// runs from `://` to the last `@` of the token, so a password holding `/`, `?` or `#`
/// is masked whole.
pub fn mask_url_credentials(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let token = &tail[..end];
        match token.rfind('@') {
            Some(at) => {
                let userinfo = &token[..at];
                match userinfo.split_once(':') {
                    Some((user, pw)) if !pw.is_empty() => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    _ => out.push_str(userinfo),
                }
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A command's words with secrets masked: the value after a secret-named option
/// (`--requirepass x`, `-p x` is not one), the value of `--password=x`, and URL passwords.
pub fn mask_command(words: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut hide_next = false;
    for w in words {
        if hide_next {
            out.push(MASK.to_string());
            hide_next = false;
            continue;
        }
        if let Some((flag, val)) = w.split_once('=')
            && flag.starts_with('-')
            && is_secret_name(flag)
            && !val.is_empty()
        {
            out.push(format!("{flag}={MASK}"));
            continue;
        }
        if w.starts_with('-') && is_secret_name(w) {
            hide_next = true;
        }
        out.push(mask_url_credentials(w));
    }
    out
}

/// Masks the value of a `KEY=value` string when KEY looks secret.
pub fn mask_assignment(kv: &str) -> String {
    match kv.split_once('=') {
        Some((k, v)) => format!("{k}={}", shown(k, v)),
        None => kv.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words_hide_the_values_of_secret_options() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mask_command(&w(&[
                "redis-server",
                "--requirepass",
                "cmd-secret",
                "--port",
                "1"
            ])),
            w(&["redis-server", "--requirepass", MASK, "--port", "1"])
        );
        assert_eq!(
            mask_command(&w(&[
                "app",
                "--db-password=hunter2",
                "postgres://u:pw@h/db"
            ])),
            w(&[
                "app",
                &format!("--db-password={MASK}"),
                &format!("postgres://u:{MASK}@h/db")
            ])
        );
    }

    #[test]
    fn masks_secret_names_only() {
        assert_eq!(shown("POSTGRES_PASSWORD", "hunter2"), MASK);
        assert_eq!(shown("OPENAI_API_KEY", "sk-1"), MASK);
        assert_eq!(shown("n8n_auth_token", "t"), MASK);
        assert_eq!(shown("POSTGRES_USER", "postgres"), "postgres");
        assert_eq!(
            mask_assignment("REDIS_PASSWORD=x=y"),
            "REDIS_PASSWORD=********"
        );
        assert_eq!(mask_assignment("PORT=80"), "PORT=80");
        assert_eq!(
            shown(
                "DATABASE_URL",
                "postgresql://postgres:pw@db:5432/x and redis://:p@r:6379"
            ),
            "postgresql://postgres:********@db:5432/x and redis://:********@r:6379"
        );
        assert_eq!(shown("URL", "http://user@host/a"), "http://user@host/a");
        assert_eq!(shown("URL", "no url here"), "no url here");
        assert_eq!(
            shown("DSN", "postgresql://u:ab/cd+ef@db:5432/x"),
            "postgresql://u:********@db:5432/x"
        );
    }
}
