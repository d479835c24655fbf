//! The `.env`, `env_file` and `label_file` format as Compose reads it (compose-go's
//! `dotenv` package): `KEY=value` or `KEY: value` statements, `#` comments, an optional
//! `export ` prefix, single quotes taken literally, double quotes with escapes and
//! interpolation, values over several lines inside quotes, a bare `KEY` that takes the
//! environment's value, a UTF-8 BOM and CRLF line ends. The `raw` format (`env_file:
//! {format: raw}`) takes every value exactly as written.
//!
//! Each problem is reported with its line, so a message can name `file:line`.

use super::interpolate::interpolate_shown;
use crate::model::secret::shown;

/// How an `env_file` entry is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Compose's rules: quotes, escapes, comments, interpolation.
    #[default]
    Compose,
    /// `format: raw`: `KEY=VALUE` lines, the value taken literally.
    Raw,
}

impl Format {
    /// The `format:` value of an `env_file` entry.
    pub fn parse(s: &str) -> Result<Format, UnknownFormat> {
        match s {
            "" => Ok(Format::Compose),
            "raw" => Ok(Format::Raw),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// An `env_file` entry's `format:` that is neither left out nor `raw`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported env_file format {0:?}: leave `format` out for Compose's rules \
     or write `format: raw` to take values literally"
)]
pub struct UnknownFormat(pub String);

/// A malformed statement: the line it starts on and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// The `KEY=value` pairs of `text`, in file order (a later one wins). `environment` resolves
/// bare `KEY` lines and variables inside values; it takes precedence over the values set
/// earlier in the same file, as in compose-go.
pub fn parse(
    text: &str,
    format: Format,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Compose => Parser::new(text).run(environment),
        Format::Raw => Ok(parse_raw(text, environment)),
    }
}

/// `format: raw`: blank lines and `#` lines skipped, everything after the first `=` is the
/// value; a line without `=` takes the environment's value.
fn parse_raw(text: &str, environment: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => {
                if let Some(v) = environment(line) {
                    out.push((line.to_string(), v));
                }
            }
        }
    }
    out
}

/// Spaces that do not end a line (compose-go's `isSpace`): `\r` is one, so CRLF files read
/// as LF ones.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    out: Vec<(String, String)>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            pos: 0,
            line: 1,
            out: Vec::new(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn err(&self, line: usize, message: String) -> EnvFileError {
        EnvFileError { line, message }
    }

    /// Moves past whitespace, newlines and comment lines to the next statement.
    fn skip_to_statement(&mut self) {
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else { return };
            if c == '\n' {
                self.line += 1;
                self.pos += 1;
            } else if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '#' {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else {
                return;
            }
        }
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        let n = rest.find(|c: char| !is_space(c)).unwrap_or(rest.len());
        self.pos += n;
    }

    fn run(
        mut self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, EnvFileError> {
        loop {
            self.skip_to_statement();
            if self.pos >= self.text.len() {
                return Ok(self.out);
            }
            self.statement(environment)?;
        }
    }

    fn statement(
        &mut self,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), EnvFileError> {
        let line = self.line;
        let whole_line = self.rest().split('\n').next().unwrap_or("");
        let whole_line = whole_line.strip_suffix('\r').unwrap_or(whole_line);
        if let Some(after) = self.rest().strip_prefix("export")
            && after.starts_with(is_space)
        {
            self.pos += "export".len();
            self.skip_spaces();
        }
        // The key ends at `=`, at `:` (compose-go's YAML-style `KEY: value`), or at the
        // end of the line (a bare `KEY`, taken from the environment).
        let start = self.pos;
        let mut end = None;
        for (i, c) in self.rest().char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                c if is_key_char(c) => {}
                c => {
                    return Err(self.err(
                        line,
                        format!(
                            "unexpected character {c:?} in variable name {:?}: names are \
                             letters, digits, `_`, `.` and `-`, then `=` and the value",
                            without_value(whole_line)
                        ),
                    ));
                }
            }
        }
        let (len, sep) = end.unwrap_or((self.rest().len(), '\n'));
        let key = self.text[start..start + len]
            .trim_end_matches(is_space)
            .to_string();
        if key.contains(char::is_whitespace) {
            return Err(self.err(
                line,
                format!(
                    "variable name {key:?} contains a space: write KEY=value ({:?})",
                    without_value(whole_line)
                ),
            ));
        }
        if key.is_empty() {
            return Err(self.err(
                line,
                format!(
                    "{:?} has no variable name before `{sep}`: write KEY=value",
                    without_value(whole_line)
                ),
            ));
        }
        if sep == '\n' {
            // A bare KEY: the environment's value, or not set at all.
            self.pos = start + len;
            if let Some(v) = environment(&key) {
                self.out.push((key, v));
            }
            return Ok(());
        }
        self.pos = start + len + 1;
        self.skip_spaces();
        let value = self.value(&key, line, environment)?;
        self.out.push((key, value));
        Ok(())
    }

    /// The value after `=`, through its closing quote or the end of the line.
    fn value(
        &mut self,
        key: &str,
        line: usize,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, EnvFileError> {
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => {
                // Unquoted: up to the end of the line; ` #` starts a comment, `a#b` stays.
                let raw = rest.split('\n').next().unwrap_or("");
                self.pos += raw.len();
                let raw = raw.split(" #").next().unwrap_or("");
                let raw = raw.trim_end();
                return self.expand(raw, key, line, environment);
            }
        };
        let mut chars = String::new();
        let mut escaped = false;
        let mut close = None;
        for (i, c) in rest.char_indices().skip(1) {
            if c == '\n' {
                self.line += 1;
            }
            if escaped {
                escaped = false;
                // An escaped quote loses its backslash; any other escape keeps it for now.
                if c != quote {
                    chars.push('\\');
                }
                chars.push(c);
            } else if c == '\\' {
                escaped = true;
            } else if c == quote {
                close = Some(i);
                break;
            } else {
                chars.push(c);
            }
        }
        let Some(close) = close else {
            let first = rest.split('\n').next().unwrap_or("");
            return Err(self.err(
                line,
                format!(
                    "{key}: unterminated quoted value {:?}: close it with {quote}, or \
                     escape a quote inside it as \\{quote}",
                    shown(key, first)
                ),
            ));
        };
        self.pos += close + 1;
        // After the closing quote only spaces and a `#` comment may follow on the line.
        let tail = self.rest().split('\n').next().unwrap_or("");
        let t = tail.trim_matches(is_space);
        if !t.is_empty() && !t.starts_with('#') {
            return Err(self.err(
                self.line,
                format!(
                    "{key}: unexpected {:?} after the closing quote: put it inside the quotes \
                     or start a comment with `#`",
                    shown(key, t)
                ),
            ));
        }
        self.pos += tail.len();
        if quote == '\'' {
            return Ok(chars);
        }
        self.expand(&expand_escapes(&chars), key, line, environment)
    }

    /// Interpolates a value: the environment first, then the values set above it.
    fn expand(
        &self,
        raw: &str,
        key: &str,
        line: usize,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, EnvFileError> {
        let lookup = |name: &str| {
            environment(name).or_else(|| {
                self.out
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        interpolate_shown(raw, &lookup, &shown(key, raw))
            .map_err(|m| self.err(line, format!("{key}: {m}")))
    }
}

/// A line whose name is malformed, quoted without its value: the name cannot say
/// whether the value is a secret (`DB_PASS!WORD=x`), so it is never shown.
fn without_value(line: &str) -> String {
    match line.find(['=', ':']) {
        Some(i) => format!("{}...", &line[..=i]),
        None => line.to_string(),
    }
}

/// Double-quoted escapes as compose-go decodes them: `\a \b \f \n \r \t \v \" \\`, `\0ooo`
/// octal, and `\$` for a literal dollar sign; any other backslash stays as written.
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut take = 1;
        match after.chars().next() {
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            // Escaped for the interpolation that follows: `$$` is a literal `$`.
            Some('$') => out.push_str("$$"),
            Some('0') => {
                let digits: String = after[1..].chars().take(3).collect();
                match (digits.len() == 3)
                    .then(|| u8::from_str_radix(&digits, 8).ok())
                    .flatten()
                {
                    Some(b) => {
                        out.push(char::from(b));
                        take = 4;
                    }
                    None => {
                        out.push('\\');
                        take = 0;
                    }
                }
            }
            _ => {
                out.push('\\');
                take = 0;
            }
        }
        rest = &after[take..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row = (
        &'static str,
        &'static str,
        Result<&'static [(&'static str, &'static str)], &'static str>,
    );

    /// The environment of the table: `ENV_SET=from-env`, `EMPTY=` and nothing else.
    fn environment(name: &str) -> Option<String> {
        match name {
            "ENV_SET" => Some("from-env".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// Each row: where the expected result comes from in compose-go (dotenv/godotenv_test.go
    /// `TestParsing`/`TestExpanding`, dotenv/parser_test.go, dotenv/parser.go), the input,
    /// and the pairs or the error text expected.
    const TABLE: &[Row] = &[
        ("TestParsing: unquoted", "FOO=bar", Ok(&[("FOO", "bar")])),
        (
            "TestParsing: spaces around =",
            "FOO = bar ",
            Ok(&[("FOO", "bar")]),
        ),
        (
            "TestParsing: double quotes",
            "FOO=\"bar\"",
            Ok(&[("FOO", "bar")]),
        ),
        (
            "TestParsing: single quotes",
            "FOO='bar'",
            Ok(&[("FOO", "bar")]),
        ),
        (
            "TestParsing: escaped quote",
            r#"FOO="escaped\"bar""#,
            Ok(&[("FOO", "escaped\"bar")]),
        ),
        (
            "TestParsing: ' inside \"",
            r#"FOO="'d'""#,
            Ok(&[("FOO", "'d'")]),
        ),
        (
            "TestParsing: yaml style",
            "OPTION_A: 1",
            Ok(&[("OPTION_A", "1")]),
        ),
        (
            "TestParsing: yaml style with =",
            "OPTION_A: Foo=bar",
            Ok(&[("OPTION_A", "Foo=bar")]),
        ),
        (
            "TestParsing: colon in value",
            "OPTION_A=1:B",
            Ok(&[("OPTION_A", "1:B")]),
        ),
        (
            "TestParsing: export",
            "export OPTION_A=2",
            Ok(&[("OPTION_A", "2")]),
        ),
        (
            "TestParsing: export<TAB>",
            "export\tOPTION_A=2",
            Ok(&[("OPTION_A", "2")]),
        ),
        (
            "TestParsing: exportFOO is a name",
            "exportFOO=2",
            Ok(&[("exportFOO", "2")]),
        ),
        (
            "TestParsing: export.FOO is a name",
            "export.FOO= 2",
            Ok(&[("export.FOO", "2")]),
        ),
        (
            "TestParsing: indented export",
            "\texport OPTION_A=2",
            Ok(&[("OPTION_A", "2")]),
        ),
        (
            "TestParsing: '\\n' literal",
            r"export OPTION_B='\n'",
            Ok(&[("OPTION_B", r"\n")]),
        ),
        (
            "TestParsing: \"\\n\" decoded",
            r#"FOO="bar\nbaz""#,
            Ok(&[("FOO", "bar\nbaz")]),
        ),
        (
            "TestParsing: dot in name",
            "FOO.BAR=foobar",
            Ok(&[("FOO.BAR", "foobar")]),
        ),
        (
            "TestParsing: = in value",
            "FOO=foobar=",
            Ok(&[("FOO", "foobar=")]),
        ),
        (
            "TestParsing: inline comment",
            "FOO=bar # this is foo",
            Ok(&[("FOO", "bar")]),
        ),
        (
            "TestParsing: # in quotes + comment",
            "FOO=\"bar#baz\" # note",
            Ok(&[("FOO", "bar#baz")]),
        ),
        (
            "TestParsing: # in single quotes",
            "FOO='bar#baz' # c",
            Ok(&[("FOO", "bar#baz")]),
        ),
        (
            "parser.go: ` #` starts a comment",
            "FOO=a #c",
            Ok(&[("FOO", "a")]),
        ),
        (
            "parser.go: `a#b` is a value",
            "FOO=a#b",
            Ok(&[("FOO", "a#b")]),
        ),
        (
            "TestParsing: leading whitespace",
            " KEY =value",
            Ok(&[("KEY", "value")]),
        ),
        (
            "TestLinesToIgnore",
            "\n\r\n\t\t \n# Comment\n\t # comment\n",
            Ok(&[]),
        ),
        (
            "parser_test: names",
            "a[1]=c\na.propertyKey=d\nárvíz-TÜKÖR=x",
            Ok(&[("a[1]", "c"), ("a.propertyKey", "d"), ("árvíz-TÜKÖR", "x")]),
        ),
        (
            "parser.go expandEscapes: \\t \\r \\\\ \\\"",
            r#"E="a\tb\rc\\d\"e""#,
            Ok(&[("E", "a\tb\rc\\d\"e")]),
        ),
        (
            "parser.go expandEscapes: \\0ooo octal",
            r#"E="\0123""#,
            Ok(&[("E", "S")]),
        ),
        (
            "parser.go expandEscapes: unknown stays",
            r#"E="a\qb""#,
            Ok(&[("E", r"a\qb")]),
        ),
        (
            "TestExpanding: \\$ not expanded",
            r#"FOO="foo\$BAR""#,
            Ok(&[("FOO", "foo$BAR")]),
        ),
        (
            "TestExpanding: \\${} not expanded",
            "FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"",
            Ok(&[("FOO", "test"), ("BAR", "foo${FOO} test")]),
        ),
        (
            "TestLoadQuotedEnv: multi-line",
            "J=\"first line\nsecond line\"\nZ=last",
            Ok(&[("J", "first line\nsecond line"), ("Z", "last")]),
        ),
        (
            "TestVariableStringValueSeparator",
            "U=\"a:1\\nb:2\"",
            Ok(&[("U", "a:1\nb:2")]),
        ),
        (
            "TestExpanding: $FOO",
            "FOO=test\nBAR=$FOO",
            Ok(&[("FOO", "test"), ("BAR", "test")]),
        ),
        (
            "TestExpanding: ${FOO}bar",
            "FOO=test\nBAR=${FOO}bar",
            Ok(&[("FOO", "test"), ("BAR", "testbar")]),
        ),
        (
            "TestExpanding: undefined → empty",
            "BAR=$FOO",
            Ok(&[("BAR", "")]),
        ),
        (
            "TestExpanding: in double quotes",
            "FOO=test\nBAR=\"quote $FOO\"",
            Ok(&[("FOO", "test"), ("BAR", "quote test")]),
        ),
        (
            "TestExpanding: not in single quotes",
            "BAR='quote $FOO'",
            Ok(&[("BAR", "quote $FOO")]),
        ),
        (
            "godotenv.go ExpandVariables: environment",
            "A=${ENV_SET}-x",
            Ok(&[("A", "from-env-x")]),
        ),
        (
            "godotenv.go ExpandVariables: env before file",
            "ENV_SET=file\nA=$ENV_SET",
            Ok(&[("ENV_SET", "file"), ("A", "from-env")]),
        ),
        (
            "template: defaults in values",
            "A=${NOPE:-dflt}",
            Ok(&[("A", "dflt")]),
        ),
        (
            "TestInheritedEnvVariable: bare KEY",
            "ENV_SET\nfoo=bar",
            Ok(&[("ENV_SET", "from-env"), ("foo", "bar")]),
        ),
        (
            "TestInheritedEnvVariableNotFound: absent",
            "NOT_THERE\n",
            Ok(&[]),
        ),
        (
            "TestInherited: bare KEY at the end",
            "EMPTY",
            Ok(&[("EMPTY", "")]),
        ),
        ("godotenv.go: UTF-8 BOM", "\u{feff}A=1", Ok(&[("A", "1")])),
        (
            "TestLinesToIgnore: CRLF",
            "A=1\r\nB=\"2\"\r\nC\r\n",
            Ok(&[("A", "1"), ("B", "2")]),
        ),
        ("later wins", "A=1\nA=2", Ok(&[("A", "1"), ("A", "2")])),
        (
            "TestParsing: lol$wut is an error",
            "lol$wut",
            Err("line 1: unexpected character '$'"),
        ),
        (
            "TestParseVariable",
            "\n%!(EXTRA string)=foo",
            Err("line 2: unexpected character '%'"),
        ),
        (
            "parser.go: key with a space",
            "MY KEY=1",
            Err("line 1: variable name \"MY KEY\" contains a space"),
        ),
        (
            "parser.go: unterminated",
            "A=1\nB=\"open\nC=2",
            Err("line 2: B: unterminated quoted value"),
        ),
        (
            "template: required",
            "A=${NOPE:?set NOPE}",
            Err("line 1: A: required variable NOPE"),
        ),
        (
            "osmen: text after the quote",
            "A=\"x\" y",
            Err("line 1: A: unexpected \"y\" after the closing quote"),
        ),
    ];

    #[test]
    fn env_file_forms_read_as_compose_go_reads_them() {
        for (source, input, want) in TABLE {
            let got = parse(input, Format::Compose, &environment)
                .map_err(|e| format!("line {}: {}", e.line, e.message));
            match (want, &got) {
                (Ok(pairs), Ok(g)) => {
                    let pairs: Vec<(String, String)> = pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    assert_eq!(g, &pairs, "{source}: {input:?}");
                }
                (Err(text), Err(e)) => assert!(e.starts_with(text), "{source}: {input:?}: {e}"),
                _ => panic!("{source}: {input:?}: expected {want:?}, got {got:?}"),
            }
        }
    }

    /// Each row: an env file whose value is a secret, and the text its error must keep
    /// (name and line). No error may quote the secret itself.
    const SECRETS: &[(&str, &str)] = &[
        (
            "DB_PASSWORD=\"unterminated-s3cretVal",
            "line 1: DB_PASSWORD: unterminated quoted",
        ),
        (
            "A=1\nAPI_TOKEN=\"s3cretE",
            "line 2: API_TOKEN: unterminated quoted value",
        ),
        (
            "API_TOKEN='s3cretE",
            "line 1: API_TOKEN: unterminated quoted value",
        ),
        (
            "DB_PASSWORD=s3cretA${oops",
            "line 1: DB_PASSWORD: unterminated `${`",
        ),
        (
            "DB_PASSWORD=\"s3cretA${oops\"",
            "line 1: DB_PASSWORD: unterminated `${`",
        ),
        (
            "DB_PASSWORD=s3cretA${1x}",
            "line 1: DB_PASSWORD: invalid variable name",
        ),
        (
            "DB_PASSWORD=s3cretA${X!s3cret}",
            "line 1: DB_PASSWORD: invalid substitution",
        ),
        ("API_TOKEN=\"x\"s3cret", "line 1: API_TOKEN: unexpected"),
        (
            "DB PASSWORD=s3cret",
            "line 1: variable name \"DB PASSWORD\" contains a space",
        ),
        ("DB_PASS!WORD=s3cret", "line 1: unexpected character '!'"),
    ];

    #[test]
    fn errors_about_a_secret_value_mask_it() {
        for (input, want) in SECRETS {
            let e = parse(input, Format::Compose, &environment)
                .map(|_| ())
                .map_err(|e| format!("line {}: {}", e.line, e.message))
                .unwrap_err();
            assert!(
                e.starts_with(want),
                "{input:?}: expected {want:?}..., got {e}"
            );
            assert!(
                !e.contains("s3cret"),
                "{input:?}: the secret is quoted: {e}"
            );
        }
        // A value that is not a secret is still quoted, to help find it.
        let e = parse("GREETING=\"hello", Format::Compose, &environment).unwrap_err();
        assert!(e.message.contains("\"\\\"hello\""), "{e:?}");
    }

    #[test]
    fn every_cut_of_a_tricky_file_is_read_or_refused_without_panicking() {
        let tricky = "\u{feff}export\tA=\"x\\\"y\\0101\\0\\é\" # c\r\nB='a\nb'\nC=${A:-${D}}$\n\
                      É-ü.k[0]: v #x\nE\n\"F=1\n=2\nG=\"\\$H\\\\\" tail\n";
        for (i, _) in tricky.char_indices().chain([(tricky.len(), ' ')]) {
            for format in [Format::Compose, Format::Raw] {
                let _ = parse(&tricky[..i], format, &environment);
                let _ = parse(&tricky[i..], format, &environment);
            }
        }
    }

    #[test]
    fn raw_takes_values_literally() {
        let got = parse(
            "# c\nA=\"quoted\" # not a comment\nB=${ENV_SET}\\n\r\nENV_SET\nC='x'\n",
            Format::Raw,
            &environment,
        )
        .unwrap();
        let want = [
            ("A", "\"quoted\" # not a comment"),
            ("B", "${ENV_SET}\\n"),
            ("ENV_SET", "from-env"),
            ("C", "'x'"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(Format::parse("raw"), Ok(Format::Raw));
        assert!(
            Format::parse("json")
                .unwrap_err()
                .to_string()
                .contains("\"json\"")
        );
    }
}
