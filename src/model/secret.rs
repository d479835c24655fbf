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

/// The value to show for `name`: masked when the name looks secret.
pub fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) && !value.is_empty() {
        MASK
    } else {
        value
    }
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
    }
}
