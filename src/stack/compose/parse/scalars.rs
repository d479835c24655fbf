//! Small text helpers: shell splitting, and "did you mean" for an unknown key.

use super::*;

/// A command string with a quote left open (`quote` is "single" or "double"). The
/// command may carry a secret (`--password=x`): it is held as the views show it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unterminated {quote} quote in {shown:?}")]
pub struct SplitError {
    pub quote: &'static str,
    pub shown: String,
}

fn unterminated(quote: &'static str, s: &str) -> SplitError {
    SplitError {
        quote,
        shown: secret::mask_text(s),
    }
}

/// Splits a command string as a POSIX shell would (quotes and backslashes), without
/// expanding anything. The result goes to the engine as an argument vector.
pub fn shell_split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(unterminated("single", s)),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(unterminated("double", s)),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(unterminated("double", s)),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn did_you_mean(word: &str, known: &[&str]) -> String {
    // Two words whose lengths differ by more than 2 are more than 2 edits apart: skipping
    // them keeps a megabyte-long bad value from costing minutes of comparisons.
    let len = word.chars().count();
    known
        .iter()
        .filter(|k| !k.ends_with('-') && k.chars().count().abs_diff(len) <= 2)
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}
