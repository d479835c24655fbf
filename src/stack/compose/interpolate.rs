//! Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$`.
//!
//! Defaults may themselves hold variables (`${A:-${B}}`), as in Compose v2.

use std::collections::BTreeMap;

/// The variables visible to a compose file: the process environment over the `.env` file.
pub type Vars = BTreeMap<String, String>;

/// Interpolates `s` with `vars`.
pub fn interpolate(s: &str, vars: &Vars) -> Result<String, InterpolateError> {
    interpolate_with(s, &|name: &str| vars.get(name).cloned())
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Interpolates `s`, resolving each name with `lookup` (`None`: not set). As in
/// compose-go's template package, a `$` that starts none of `$$`, `$NAME` or `${` (a lone
/// `$` before a space, a digit or the end) is kept as written; a malformed `${...}` is an
/// error.
pub fn interpolate_with(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    interpolate_shown(s, lookup, s)
}

/// As `interpolate_with`, for a value that an error may quote only as `shown` (a secret's
/// value masked, see `model::secret::shown`): when `shown` differs from `s`, no part of
/// `s` appears in the message.
pub fn interpolate_shown(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    shown: &str,
) -> Result<String, InterpolateError> {
    expand(s, lookup).map_err(|fault| InterpolateError {
        fault,
        shown: shown.to_string(),
        quote_parts: shown == s,
    })
}

/// A template that does not interpolate: the fault, and the value as an error may show
/// it (masked when it is a secret's; then no part of it is quoted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", fault.message(shown, *quote_parts))]
pub struct InterpolateError {
    pub fault: Fault,
    shown: String,
    quote_parts: bool,
}

/// What went wrong in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Unterminated,
    BadName(String),
    BadOp(String),
    Required { name: String, why: String },
}

impl Fault {
    fn message(&self, shown: &str, quote_parts: bool) -> String {
        let part = |inner: &str| {
            if quote_parts {
                format!("`${{{inner}}}`")
            } else {
                format!("a `${{...}}` of {shown:?}")
            }
        };
        match self {
            Fault::Unterminated => {
                format!("unterminated `${{` in {shown:?}: close it with `}}` or write `$$`")
            }
            Fault::BadName(inner) => format!(
                "invalid variable name in {}: names start with a letter or `_`",
                part(inner)
            ),
            Fault::BadOp(inner) => format!(
                "invalid substitution {}: use ${{VAR}}, ${{VAR:-default}}, \
                 ${{VAR-default}}, ${{VAR:?message}} or ${{VAR:+alternative}}",
                part(inner)
            ),
            Fault::Required { name, why } => format!(
                "required variable {name} is missing a value: {why} (set {name} in the \
                 environment or in the .env file beside the compose file)"
            ),
        }
    }
}

fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Fault> {
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
                let end = matching_brace(&chars, i + 1).ok_or(Fault::Unterminated)?;
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&braced(&inner, lookup)?);
                i = end + 1;
            }
            Some(c2) if is_name_start(*c2) => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_name_char(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                out.push_str(&lookup(&name).unwrap_or_default());
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
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

fn braced(inner: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Fault> {
    let name_len = inner
        .char_indices()
        .find(|(_, c)| !is_name_char(*c))
        .map(|(k, _)| k)
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(Fault::BadName(inner.to_string()));
    }
    let rest = &inner[name_len..];
    let value = lookup(name);
    let set_nonempty = value.as_ref().is_some_and(|v| !v.is_empty());
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
        return Err(Fault::BadOp(inner.to_string()));
    };
    let current = || value.clone().unwrap_or_default();
    Ok(match op {
        "" => current(),
        ":-" if set_nonempty => current(),
        ":-" => expand(arg, lookup)?,
        "-" if value.is_some() => current(),
        "-" => expand(arg, lookup)?,
        ":?" | "?" => {
            let ok = if op == ":?" {
                set_nonempty
            } else {
                value.is_some()
            };
            if !ok {
                let why = expand(arg, lookup)?;
                let why = if why.is_empty() {
                    "is required".to_string()
                } else {
                    why
                };
                return Err(Fault::Required {
                    name: name.to_string(),
                    why,
                });
            }
            current()
        }
        ":+" if set_nonempty => expand(arg, lookup)?,
        "+" if value.is_some() => expand(arg, lookup)?,
        _ => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// compose-go template_test.go's mapping: `FOO=first`, `BAR=` (set, empty).
    fn vars() -> Vars {
        [("FOO", "first"), ("BAR", "")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// (compose-go template_test.go case, template, result).
    const FORMS: &[(&str, &str, &str)] = &[
        ("TestEscaped", "$${foo}", "${foo}"),
        ("TestSubstituteNoMatch", "foo", "foo"),
        ("TestNonBraced", "$FOO-bar", "first-bar"),
        ("TestNoValueNoDefault", "This ${missing} var", "This  var"),
        ("TestNoValueNoDefault", "This ${BAR} var", "This  var"),
        ("TestValueNoDefault", "This $FOO var", "This first var"),
        ("TestValueNoDefault", "This ${FOO} var", "This first var"),
        ("TestNoValueWithDefault", "ok ${missing:-def}", "ok def"),
        ("TestNoValueWithDefault", "ok ${missing-def}", "ok def"),
        ("TestEmptyValueWithSoftDefault", "ok ${BAR:-def}", "ok def"),
        ("TestValueWithSoftDefault", "ok ${FOO:-def}", "ok first"),
        ("TestEmptyValueWithHardDefault", "ok ${BAR-def}", "ok "),
        (
            "TestNonAlphanumericDefault",
            "ok ${BAR:-/non:-alphanumeric}",
            "ok /non:-alphanumeric",
        ),
        (
            "TestDefaultsWithNestedExpansion",
            "ok ${UNSET_VAR-$FOO}",
            "ok first",
        ),
        (
            "TestDefaultsWithNestedExpansion",
            "ok ${UNSET_VAR-${FOO}}",
            "ok first",
        ),
        (
            "TestDefaultsWithNestedExpansion",
            "ok ${UNSET_VAR-${FOO} ${FOO}}",
            "ok first first",
        ),
        (
            "TestDefaultsWithNestedExpansion",
            "ok ${BAR:-${FOO}}",
            "ok first",
        ),
        (
            "TestDefaultsForMandatoryVariables",
            "ok ${FOO:?err}",
            "ok first",
        ),
        (
            "TestDefaultsForMandatoryVariables",
            "ok ${FOO?err}",
            "ok first",
        ),
        ("TestDefaultsForMandatoryVariables", "ok ${BAR?err}", "ok "),
        ("TestPrecedence", "${UNSET_VAR-myerror?msg}", "myerror?msg"),
        ("TestPrecedence", "${FOO?bar-baz}", "first"),
        ("withDefaultWhenPresence :+ set", "${FOO:+alt}", "alt"),
        ("withDefaultWhenPresence :+ empty", "${BAR:+alt}", ""),
        ("withDefaultWhenPresence + empty", "${BAR+alt}", "alt"),
        ("withDefaultWhenPresence + unset", "${NOPE+alt}", ""),
        ("pattern: a lone $ before a space", "a $ b", "a $ b"),
        ("pattern: a lone $ at the end", "cost 5$", "cost 5$"),
        ("pattern: $ before a digit", "$1 and $-", "$1 and $-"),
        ("pattern: $} is not a substitution", "$}", "$}"),
        (
            "pattern: lower-case names, looked up as written",
            "$foo${Foo}",
            "",
        ),
        ("escaped", "cost $$5", "cost $5"),
    ];

    #[test]
    fn forms_as_compose_go_template_tests() {
        let v = vars();
        for (case, input, want) in FORMS {
            assert_eq!(
                interpolate(input, &v).as_deref(),
                Ok(*want),
                "{case}: {input}"
            );
        }
    }

    #[test]
    fn required_and_invalid_as_compose_go_template_tests() {
        let v = vars();
        // TestMandatoryVariableErrors and ...WithNestedExpansion.
        for (input, want) in [
            (
                "not ok ${UNSET_VAR:?Mandatory Variable Unset}",
                "Mandatory Variable Unset",
            ),
            (
                "not ok ${BAR:?Mandatory Variable Empty}",
                "Mandatory Variable Empty",
            ),
            (
                "not ok ${UNSET_VAR?Mandatory Variable Unset}",
                "Mandatory Variable Unset",
            ),
            (
                "not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}",
                "Mandatory Variable first",
            ),
            ("${UNSET_VAR?bar-baz}", "bar-baz"),
        ] {
            let e = interpolate(input, &v).unwrap_err().to_string();
            assert!(
                e.contains("required variable") && e.contains(want),
                "{input}: {e}"
            );
        }
        assert!(interpolate("${BAR:?}", &v).is_err());
        assert!(interpolate("${BAR?}", &v).is_ok());
        // TestInvalid, less `$}` (a substitution only starts at `$$`, `$NAME` or `${`).
        for input in [
            "${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}", "${1X}",
        ] {
            assert!(interpolate(input, &v).is_err(), "{input}");
        }
        assert!(
            interpolate("${FOO", &v)
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
    }
}
