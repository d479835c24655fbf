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
