//! Secrets never leave osmen in clear: environment values whose names say they hold a
//! key, password or token, and values in the known forms of a secret (a URL password,
//! `--password=x`, `-pX` for a MySQL client, `Authorization: Bearer x`), are replaced by a
//! mask in every view, log line and JSON output.
//!
//! A name is judged by its words (`MYSQL_ROOT_PASSWORD` is `MYSQL ROOT PASSWORD`), not by
//! the letters it contains: `--default-authentication-plugin`, `MYSQL_ROOT_PASSWORD_FILE`
//! (a path), `POSTGRES_HOST_AUTH_METHOD` and `KEYCLOAK_URL` name no secret, and neither
//! an empty value nor a `${VAR}` reference is one.

pub const MASK: &str = "********";

/// Words that make a name secret wherever they stand (`SECRET_KEY_BASE`, `TOKEN_SECRET`).
const STRONG: [&str; 12] = [
    "PASSWORD",
    "PASSWORDS",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "TOKENS",
    "CREDENTIAL",
    "CREDENTIALS",
    "BASICAUTH",
    "PRIVATEKEY",
];

/// Words that make a name secret only as its last word (`OPENAI_API_KEY`, `DB_PASS`,
/// `REDIS_AUTH`), since elsewhere they are ordinary (`KEY_PREFIX`, `AUTH_METHOD`).
const WEAK: [&str; 12] = [
    "KEY",
    "KEYS",
    "APIKEY",
    "ACCESSKEY",
    "SECRETKEY",
    "MASTERKEY",
    "PASS",
    "PWD",
    "AUTH",
    "MASTERAUTH",
    "REQUIREPASS",
    "AUTHKEY",
];

/// Last words that say the value is about a secret, not the secret itself: where it is
/// (`*_FILE`, `*_PATH`, `*_URL`), who owns it, or how it is checked.
const NOT_A_VALUE: [&str; 44] = [
    "FILE",
    "FILES",
    "FILENAME",
    "PATH",
    "DIR",
    "DIRECTORY",
    "LOCATION",
    "URL",
    "URI",
    "ENDPOINT",
    "HOST",
    "PORT",
    "NAME",
    "USER",
    "USERNAME",
    "ID",
    "TYPE",
    "KIND",
    "METHOD",
    "MODE",
    "PLUGIN",
    "ALGORITHM",
    "ALG",
    "FORMAT",
    "HEADER",
    "PREFIX",
    "SUFFIX",
    "LENGTH",
    "LEN",
    "MIN",
    "MAX",
    "SIZE",
    "COUNT",
    "TTL",
    "EXPIRY",
    "EXPIRES",
    "EXPIRATION",
    "LIFETIME",
    "TIMEOUT",
    "ENABLED",
    "DISABLED",
    "REQUIRED",
    "POLICY",
    "ISSUER",
];

/// Words that make a name a switch (`MYSQL_ALLOW_EMPTY_PASSWORD=yes`): with a yes/no
/// value it is shown.
const SWITCHES: [&str; 8] = [
    "ALLOW", "EMPTY", "RANDOM", "SKIP", "DISABLE", "ENABLE", "REQUIRE", "NO",
];

/// Programs whose `-pSECRET` (attached) is a password; for most others `-p` is a port.
const MYSQL_CLIENTS: [&str; 7] = [
    "mysql",
    "mysqladmin",
    "mysqldump",
    "mysqlsh",
    "mariadb",
    "mariadb-admin",
    "mariadb-dump",
];

/// The upper-cased words of a name: split at `_`, `-`, `.`, `/`, `:` and at a lower to
/// upper case step (`dbPassword`).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_uppercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A compound word that ends in a secret word (`ROOTPASSWORD`, `CLIENTSECRET`,
/// `AUTHTOKEN`); `BYPASS` and `COMPASS` do not count.
fn ends_in_strong(word: &str) -> bool {
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN"]
        .iter()
        .any(|m| word.len() > m.len() && word.ends_with(m))
}

/// True when a variable, option or header name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let w = words(name);
    let Some(last) = w.last() else {
        return false;
    };
    // `--no-password` is a negation: it takes no value.
    if w[0] == "NO" && name.starts_with('-') {
        return false;
    }
    if NOT_A_VALUE.contains(&last.as_str()) {
        return false;
    }
    // `PWD` alone is the shell's working directory; `PUBLIC_KEY` is meant to be shown.
    if (last == "PWD" && w.len() == 1)
        || (w.len() >= 2 && w[w.len() - 2] == "PUBLIC" && last.starts_with("KEY"))
    {
        return false;
    }
    WEAK.contains(&last.as_str())
        || w.iter()
            .any(|x| STRONG.contains(&x.as_str()) || ends_in_strong(x))
}

/// When `v` is a reference to a variable (`${DB_PASSWORD}`, `$DB_PASSWORD`, `$(cat f)`),
/// the text to show for it: itself, with a literal default masked
/// (`${DB_PASSWORD:-hunter2}` shows `${DB_PASSWORD:-********}`).
fn reference_shown(v: &str) -> Option<String> {
    if v.starts_with("$(") && v.ends_with(')') {
        return Some(v.to_string());
    }
    if let Some(name) = v.strip_prefix('$')
        && !name.is_empty()
        && is_var_name(name)
    {
        return Some(v.to_string());
    }
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    let end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(end);
    if name.is_empty() {
        return None;
    }
    if rest.is_empty() || rest.starts_with('?') || rest.starts_with(":?") {
        return Some(v.to_string());
    }
    let op_len = ["-", ":-", "+", ":+"]
        .iter()
        .filter(|op| rest.starts_with(**op))
        .map(|op| op.len())
        .max()?;
    let (op, default) = rest.split_at(op_len);
    if default.is_empty() || reference_shown(default).is_some() {
        Some(v.to_string())
    } else {
        Some(format!("${{{name}{op}{MASK}}}"))
    }
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_yes_no(v: &str) -> bool {
    ["yes", "no", "true", "false", "on", "off", "0", "1"]
        .iter()
        .any(|b| v.eq_ignore_ascii_case(b))
}

/// The value to show for `name`: masked when the name says it is a secret (unless it is
/// empty, a reference, or a switch's yes/no), otherwise with any secret inside it
/// (`postgresql://user:pw@host`, `--password=x`) masked.
pub fn shown(name: &str, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if is_secret_name(name) {
        if let Some(r) = reference_shown(value) {
            return r;
        }
        let switch = words(name).iter().any(|w| SWITCHES.contains(&w.as_str()));
        if !(switch && is_yes_no(value)) {
            return MASK.to_string();
        }
    }
    mask_text(value)
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
                    Some((user, pw)) if !pw.is_empty() && reference_shown(pw).is_none() => {
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

/// Walks the words of a command (or of a shell line inside one) and masks what follows a
/// secret option, an `Authorization:` header or a MySQL client's `-p`.
#[derive(Default)]
struct Masker {
    /// The previous word was a secret option (`--requirepass`): this one is its value.
    hide_next: bool,
    /// The previous word was `Authorization:`: this one is a scheme or the credential.
    auth_next: bool,
    /// A MySQL client was named earlier: `-pX` is its password.
    mysql: bool,
    /// `redis-cli` was named earlier: `-a X` is its password.
    redis_cli: bool,
}

/// `'x'` -> (`'`, `x`, `'`): quotes around a word in a shell line stay where they are.
fn unquote(tok: &str) -> (&str, &str, &str) {
    let quote = |c: char| c == '\'' || c == '"';
    let core = tok.trim_start_matches(quote);
    let lead = &tok[..tok.len() - core.len()];
    let core2 = core.trim_end_matches(quote);
    let trail = &core[core2.len()..];
    (lead, core2, trail)
}

impl Masker {
    fn word(&mut self, tok: &str) -> String {
        let (lead, core, trail) = unquote(tok);
        let wrap = |s: &str| format!("{lead}{s}{trail}");
        if std::mem::take(&mut self.auth_next) && !core.is_empty() {
            let scheme = ["bearer", "basic", "token", "digest", "bot", "apikey"]
                .iter()
                .any(|s| core.eq_ignore_ascii_case(s));
            if scheme {
                self.hide_next = true;
                return tok.to_string();
            }
            return wrap(reference_shown(core).as_deref().unwrap_or(MASK));
        }
        if std::mem::take(&mut self.hide_next) && !core.is_empty() && !core.starts_with('-') {
            return wrap(reference_shown(core).as_deref().unwrap_or(MASK));
        }
        let program = core.rsplit('/').next().unwrap_or(core);
        self.mysql |= MYSQL_CLIENTS.contains(&program);
        self.redis_cli |= program == "redis-cli";
        if let Some(header) = core.strip_suffix(':') {
            if header.eq_ignore_ascii_case("authorization")
                || header.eq_ignore_ascii_case("proxy-authorization")
            {
                self.auth_next = true;
            } else if !header.contains(':') && !header.contains('/') && is_secret_name(header) {
                self.hide_next = true;
            }
            return tok.to_string();
        }
        if core.starts_with('-') {
            return wrap(&self.option(core));
        }
        if let Some((name, value)) = core.split_once('=')
            && is_var_name(name)
        {
            return wrap(&format!("{name}={}", shown(name, value)));
        }
        mask_url_credentials(tok)
    }

    /// One option: `--password=x`, `--password` (its value is the next word), `-pX` for a
    /// MySQL client, `-a` for redis-cli.
    fn option(&mut self, core: &str) -> String {
        if let Some((flag, value)) = core.split_once('=') {
            if is_secret_name(flag) && !value.is_empty() {
                let v = reference_shown(value).unwrap_or_else(|| MASK.to_string());
                return format!("{flag}={v}");
            }
            return format!("{flag}={}", mask_url_credentials(value));
        }
        if self.mysql
            && let Some(pw) = core.strip_prefix("-p")
            && !pw.is_empty()
        {
            let v = reference_shown(pw).unwrap_or_else(|| MASK.to_string());
            return format!("-p{v}");
        }
        if is_secret_name(core) || (self.redis_cli && core == "-a") {
            self.hide_next = true;
        }
        core.to_string()
    }

    /// A word that may itself be a shell line (`sh -c "mysql -uroot -pX"`): each of its
    /// space-separated parts is masked, the spacing kept.
    fn text(&mut self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while !rest.is_empty() {
            let ws = rest.len() - rest.trim_start().len();
            out.push_str(&rest[..ws]);
            rest = &rest[ws..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if end > 0 {
                out.push_str(&self.word(&rest[..end]));
            }
            rest = &rest[end..];
        }
        out
    }
}

/// A command's words with secrets masked, one output word for each input word: the
/// value after a secret option (`--requirepass x`), the value of `--password=x`,
/// `PASSWORD=x` assignments, `-pX` after a MySQL client, `Authorization: Bearer x`, and
/// URL passwords. An option that only contains the word (`--password-file=/run/x`,
/// `--default-authentication-plugin=mysql_native_password`, `--no-password`) is shown.
pub fn mask_command(words: &[String]) -> Vec<String> {
    let mut m = Masker::default();
    words.iter().map(|w| m.text(w)).collect()
}

/// Free text (a health check's shell line, a label, a log line) with the same forms
/// masked as in a command.
pub fn mask_text(s: &str) -> String {
    Masker::default().text(s)
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

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Environment name, value, what is shown.
    const ENV: &[(&str, &str, &str)] = &[
        ("POSTGRES_PASSWORD", "hunter2", MASK),
        ("MYSQL_ROOT_PASSWORD", "hunter2", MASK),
        ("OPENAI_API_KEY", "sk-1", MASK),
        ("AWS_SECRET_ACCESS_KEY", "abc", MASK),
        ("SECRET_KEY_BASE", "abc", MASK),
        ("GITHUB_TOKEN", "ghp_x", MASK),
        ("n8n_auth_token", "t", MASK),
        ("dbPassword", "hunter2", MASK),
        ("DB_PASS", "hunter2", MASK),
        ("DB_PWD", "hunter2", MASK),
        ("REDIS_AUTH", "hunter2", MASK),
        ("JWT_KEY", "k", MASK),
        ("GOOGLE_APPLICATION_CREDENTIALS_JSON", "{}", MASK),
        // The defect of issue 23: a `*_FILE` variable holds a path, not the secret.
        (
            "MYSQL_ROOT_PASSWORD_FILE",
            "/run/secrets/db",
            "/run/secrets/db",
        ),
        (
            "POSTGRES_PASSWORD_FILE",
            "/run/secrets/pg",
            "/run/secrets/pg",
        ),
        ("POSTGRES_HOST_AUTH_METHOD", "trust", "trust"),
        ("AWS_ACCESS_KEY_ID", "AKIA1", "AKIA1"),
        ("KEYCLOAK_URL", "http://kc:8080", "http://kc:8080"),
        ("TOKEN_TTL", "3600", "3600"),
        ("PASSWORD_MIN_LENGTH", "12", "12"),
        ("AUTHOR", "ann", "ann"),
        ("PASSTHROUGH", "on", "on"),
        ("PWD", "/app", "/app"),
        ("JWT_PUBLIC_KEY", "ssh-ed25519 AAA", "ssh-ed25519 AAA"),
        ("MYSQL_ALLOW_EMPTY_PASSWORD", "yes", "yes"),
        ("MYSQL_RANDOM_ROOT_PASSWORD", "yes", "yes"),
        ("POSTGRES_USER", "postgres", "postgres"),
        // Nothing to hide: an empty value, a reference.
        ("POSTGRES_PASSWORD", "", ""),
        ("POSTGRES_PASSWORD", "${PG_PW}", "${PG_PW}"),
        ("POSTGRES_PASSWORD", "$PG_PW", "$PG_PW"),
        ("POSTGRES_PASSWORD", "${PG_PW:?set it}", "${PG_PW:?set it}"),
        (
            "POSTGRES_PASSWORD",
            "${PG_PW:-hunter2}",
            "${PG_PW:-********}",
        ),
        // Secrets inside other values.
        (
            "DATABASE_URL",
            "postgresql://postgres:pw@db:5432/x and redis://:p@r:6379",
            "postgresql://postgres:********@db:5432/x and redis://:********@r:6379",
        ),
        (
            "DSN",
            "postgresql://u:ab/cd+ef@db:5432/x",
            "postgresql://u:********@db:5432/x",
        ),
        ("URL", "http://user@host/a", "http://user@host/a"),
        ("URL", "postgres://u:${PW}@db/x", "postgres://u:${PW}@db/x"),
        ("URL", "no url here", "no url here"),
        (
            "JAVA_OPTS",
            "-Xmx1g -Dspring.datasource.password=pw -Dlog=x",
            "-Xmx1g -Dspring.datasource.password=******** -Dlog=x",
        ),
    ];

    #[test]
    fn environment_values_are_masked_by_name_and_form() {
        let mut bad = Vec::new();
        for (name, value, want) in ENV {
            let got = shown(name, value);
            if got != *want {
                bad.push(format!("{name}={value:?}: shown {got:?}, want {want:?}"));
            }
        }
        assert!(bad.is_empty(), "\n{}", bad.join("\n"));
    }

    /// A command, and the words shown for it.
    const COMMANDS: &[(&[&str], &[&str])] = &[
        // The defect of issue 23: an option that only contains the word is shown.
        (
            &[
                "mysqld",
                "--default-authentication-plugin=mysql_native_password",
            ],
            &[
                "mysqld",
                "--default-authentication-plugin=mysql_native_password",
            ],
        ),
        (
            &["redis-server", "--requirepass", "cmd-secret", "--port", "1"],
            &["redis-server", "--requirepass", MASK, "--port", "1"],
        ),
        (
            &["redis-server", "--masterauth", "pw"],
            &["redis-server", "--masterauth", MASK],
        ),
        (
            &["app", "--db-password=hunter2", "postgres://u:pw@h/db"],
            &[
                "app",
                "--db-password=********",
                "postgres://u:********@h/db",
            ],
        ),
        (
            &["app", "--password", "hunter2"],
            &["app", "--password", MASK],
        ),
        (
            &["app", "--password", "${APP_PW}"],
            &["app", "--password", "${APP_PW}"],
        ),
        (&["app", "--password="], &["app", "--password="]),
        (
            &[
                "app",
                "--password-file=/run/secrets/x",
                "--no-password",
                "db",
            ],
            &[
                "app",
                "--password-file=/run/secrets/x",
                "--no-password",
                "db",
            ],
        ),
        (
            &["app", "--password-file", "/run/secrets/x"],
            &["app", "--password-file", "/run/secrets/x"],
        ),
        (
            &["mongod", "--auth", "--bind_ip_all"],
            &["mongod", "--auth", "--bind_ip_all"],
        ),
        (
            &["mysqladmin", "ping", "-uroot", "-phunter2"],
            &["mysqladmin", "ping", "-uroot", "-p********"],
        ),
        (
            &["mysqladmin", "ping", "-p$MYSQL_ROOT_PASSWORD"],
            &["mysqladmin", "ping", "-p$MYSQL_ROOT_PASSWORD"],
        ),
        // `-p` is a port for everyone else.
        (
            &["psql", "-p5432", "-h", "db"],
            &["psql", "-p5432", "-h", "db"],
        ),
        (
            &["redis-cli", "-a", "pw", "ping"],
            &["redis-cli", "-a", MASK, "ping"],
        ),
        (
            &["env", "PGPASSWORD=pw", "PGUSER=app", "psql"],
            &["env", "PGPASSWORD=********", "PGUSER=app", "psql"],
        ),
        (
            &["env", "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db", "mysqld"],
            &["env", "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db", "mysqld"],
        ),
        (
            &[
                "curl",
                "-H",
                "Authorization: Bearer abc.def",
                "http://api/x",
            ],
            &[
                "curl",
                "-H",
                "Authorization: Bearer ********",
                "http://api/x",
            ],
        ),
        (
            &["curl", "-H", "X-Api-Key: abc", "http://api/x"],
            &["curl", "-H", "X-Api-Key: ********", "http://api/x"],
        ),
        (
            &["sh", "-c", "mysql -uroot -phunter2 -e 'select 1'"],
            &["sh", "-c", "mysql -uroot -p******** -e 'select 1'"],
        ),
        (
            &[
                "sh",
                "-c",
                "curl -fsS -H 'Authorization: Bearer t0k' http://x/",
            ],
            &[
                "sh",
                "-c",
                "curl -fsS -H 'Authorization: Bearer ********' http://x/",
            ],
        ),
        (
            &["sh", "-c", "PGPASSWORD=pw  pg_isready --host db"],
            &["sh", "-c", "PGPASSWORD=********  pg_isready --host db"],
        ),
    ];

    #[test]
    fn command_words_hide_secret_values_and_only_those() {
        let mut bad = Vec::new();
        for (input, want) in COMMANDS {
            let got = mask_command(&w(input));
            if got != w(want) {
                bad.push(format!("{input:?}: shown {got:?}, want {want:?}"));
            }
        }
        assert!(bad.is_empty(), "\n{}", bad.join("\n"));
    }

    #[test]
    fn names_are_judged_by_their_words() {
        for name in [
            "--requirepass",
            "--db-password",
            "-Dspring.datasource.password",
            "OPENAI_API_KEY",
            "clientSecret",
            "traefik.http.middlewares.a.basicauth.users",
        ] {
            assert!(is_secret_name(name), "{name} should be secret");
        }
        for name in [
            "--default-authentication-plugin",
            "--password-file",
            "--no-password",
            "MYSQL_ROOT_PASSWORD_FILE",
            "KEY_PREFIX",
            "MONKEY",
            "BYPASS",
            "",
            "-p",
        ] {
            assert!(!is_secret_name(name), "{name} should not be secret");
        }
    }

    #[test]
    fn assignments_mask_only_secret_values() {
        assert_eq!(
            mask_assignment("REDIS_PASSWORD=x=y"),
            "REDIS_PASSWORD=********"
        );
        assert_eq!(mask_assignment("PORT=80"), "PORT=80");
        assert_eq!(
            mask_assignment("MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db"),
            "MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db"
        );
        assert_eq!(mask_assignment("NOEQUALS"), "NOEQUALS");
    }
}
