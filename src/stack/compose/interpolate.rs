//! Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$`.
//!
//! Defaults may themselves hold variables (`${A:-${B}}`), as in Compose v2.

use std::collections::BTreeMap;

/// The variables visible to a compose file: the process environment over the `.env` file.
pub type Vars = BTreeMap<String, String>;

pub fn interpolate(s: &str, vars: &Vars) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let end = matching_brace(&chars, i + 1).ok_or_else(|| {
                    format!("unterminated `${{` in {s:?}: close it with `}}` or write `$$`")
                })?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&braced(&inner, vars)?);
                i = end + 1;
            }
            Some(c2) if c2.is_ascii_alphabetic() || *c2 == '_' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
                i = j;
            }
            _ => {
                return Err(format!(
                    "invalid `$` in {s:?}: write `$$` for a literal dollar sign"
                ));
            }
        }
    }
    Ok(out)
}

fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn braced(inner: &str, vars: &Vars) -> Result<String, String> {
    let name_len = inner
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
        .map(|(k, _)| k)
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "invalid variable name in `${{{inner}}}`: names start with a letter or `_`"
        ));
    }
    let rest = &inner[name_len..];
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (op, arg) = if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else if rest.is_empty() {
        ("", "")
    } else {
        return Err(format!(
            "invalid substitution `${{{inner}}}`: use ${{VAR}}, ${{VAR:-default}}, \
             ${{VAR-default}}, ${{VAR:?message}} or ${{VAR:+alternative}}"
        ));
    };
    let current = || value.cloned().unwrap_or_default();
    Ok(match op {
        "" => current(),
        ":-" if set_nonempty => current(),
        ":-" => interpolate(arg, vars)?,
        "-" if value.is_some() => current(),
        "-" => interpolate(arg, vars)?,
        ":?" | "?" => {
            let ok = if op == ":?" {
                set_nonempty
            } else {
                value.is_some()
            };
            if !ok {
                let why = interpolate(arg, vars)?;
                let why = if why.is_empty() {
                    "is required".to_string()
                } else {
                    why
                };
                return Err(format!(
                    "required variable {name} is missing a value: {why} (set {name} in the \
                     environment or in the .env file beside the compose file)"
                ));
            }
            current()
        }
        ":+" if set_nonempty => interpolate(arg, vars)?,
        "+" if value.is_some() => interpolate(arg, vars)?,
        _ => String::new(),
    })
}

/// Reads a `.env` / `env_file`: `KEY=VALUE` lines, `#` comments, optional `export `,
/// single or double quotes. Returns the first bad line's number and text on error.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((k, v)) = line.split_once('=') else {
            return Err((n + 1, raw.to_string()));
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err((n + 1, raw.to_string()));
        }
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            let inner = &v[1..v.len() - 1];
            if v.starts_with('"') {
                inner.replace("\\n", "\n").replace("\\\"", "\"")
            } else {
                inner.to_string()
            }
        } else {
            // An unquoted value ends at ` #` (an inline comment).
            match v.find(" #") {
                Some(k) => v[..k].trim_end().to_string(),
                None => v.to_string(),
            }
        };
        out.push((k.to_string(), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("SET", "yes"), ("EMPTY", "")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn forms() {
        let v = vars();
        let cases = [
            ("$SET", "yes"),
            ("${SET}", "yes"),
            ("a${SET}b", "ayesb"),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("$$SET", "$SET"),
            ("${UNSET:-${SET}}", "yes"),
            ("${UNSET}", ""),
            ("cost $$5", "cost $5"),
        ];
        for (input, want) in cases {
            assert_eq!(interpolate(input, &v).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn required_and_invalid() {
        let v = vars();
        let e = interpolate("${PASS:?set a password}", &v).unwrap_err();
        assert!(e.contains("PASS") && e.contains("set a password"), "{e}");
        assert!(interpolate("${EMPTY:?}", &v).is_err());
        assert!(interpolate("${EMPTY?}", &v).is_ok());
        assert!(
            interpolate("${SET", &v)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(interpolate("a $ b", &v).unwrap_err().contains("$$"));
        assert!(interpolate("${1X}", &v).is_err());
    }

    #[test]
    fn env_file_lines() {
        let got =
            parse_env_file("# c\nA=1\nexport B = \"two words\"\nC='x y' \nD=v # note\n").unwrap();
        let want = [("A", "1"), ("B", "two words"), ("C", "x y"), ("D", "v")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(parse_env_file("A=1\nnonsense\n").unwrap_err().0, 2);
    }
}
