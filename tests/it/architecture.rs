//! The house rules that keep the layers apart, checked on the source tree.

use std::path::Path;

use crate::util::root;

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `src` that name one of `forbidden` outside comments.
fn offending(src: &str, forbidden: &[&str]) -> Vec<String> {
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| forbidden.iter().any(|f| l.contains(f)))
        .map(|l| l.trim().to_string())
        .collect()
}

fn check(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join(dir), &mut files);
    files
        .iter()
        .flat_map(|f| {
            let src = std::fs::read_to_string(f).unwrap();
            offending(&src, forbidden)
                .into_iter()
                .map(move |l| format!("{}: {l}", f.display()))
        })
        .collect()
}

const ENGINE_SIDE: &[&str] = &[
    "crate::stack",
    "crate::gateway",
    "crate::collect",
    "bollard",
];

#[test]
fn the_scanner_catches_what_it_must() {
    assert_eq!(
        offending("use crate::stack::engine;\n// crate::stack\n", ENGINE_SIDE).len(),
        1
    );
    assert!(offending("use crate::model::Snapshot;\n", ENGINE_SIDE).is_empty());
}

#[test]
fn tui_sees_only_model_types() {
    let mut forbidden = ENGINE_SIDE.to_vec();
    forbidden.extend(["crate::hub", "crate::commands"]);
    let bad = check("src/tui", &forbidden);
    assert!(
        bad.is_empty(),
        "src/tui imports engine-side code:\n{}",
        bad.join("\n")
    );
}

#[test]
fn model_is_plain_data() {
    let mut files = Vec::new();
    rust_files(&root().join("src/model"), &mut files);
    assert!(
        files.len() >= 3,
        "src/model should hold the shared data types"
    );
    let bad = check(
        "src/model",
        &[
            "tokio",
            "bollard",
            "ratatui",
            "crossterm",
            "std::fs",
            "crate::stack",
            "reqwest",
        ],
    );
    assert!(
        bad.is_empty(),
        "src/model must stay plain data:\n{}",
        bad.join("\n")
    );
}

/// Ways a program starts another one. osmen starts none: no user string can reach a shell.
const SPAWNING: &[&str] = &[
    "process::Command",
    "Command::new(",
    "tokio::process",
    "libc::exec",
    "libc::system",
    "libc::fork",
    "posix_spawn",
    "\"/bin/sh\"",
    "\"sh\", \"-c\"",
];

#[test]
fn osmen_starts_only_its_ssh_tunnel_so_no_string_reaches_a_shell() {
    assert_eq!(
        offending("let c = std::process::Command::new(\"sh\");\n", SPAWNING).len(),
        1,
        "the scanner must catch a spawn"
    );
    let mut bad = check("src", SPAWNING);
    // The Kubernetes exporter writes `/bin/sh -c` into a manifest's probe (run by the
    // kubelet, never by osmen); that file is held to the spawning calls alone.
    let exporter = "src/stack/k8s/probes.rs: ";
    bad.retain(|l| !(l.contains(exporter) && offending(l, &SPAWNING[..7]).is_empty()));
    // The console's `e` names the shell the engine runs inside the container (an exec
    // through the Engine API, `/bin/sh` then `sh`, fixed argument vectors); osmen starts
    // nothing itself there, so that file too is held to the spawning calls alone.
    let container_shell = "src/commands/console_shell.rs: ";
    bad.retain(|l| !(l.contains(container_shell) && offending(l, &SPAWNING[..7]).is_empty()));
    // The masking tables hold compose commands (`sh -c "mysql -p..."`) as data to mask;
    // that file too is held to the spawning calls alone.
    let masking = "src/model/secret.rs: ";
    bad.retain(|l| !(l.contains(masking) && offending(l, &SPAWNING[..7]).is_empty()));
    // The one process osmen starts: the ssh tunnel to a remote engine, the fixed program
    // `ssh`, its argument vector built from a parsed and checked ssh:// address (tested
    // there: a host that is an ssh option is refused) and closed by `--`.
    let tunnel = "src/stack/remote.rs: ";
    let allowed = [
        "let mut cmd = tokio::process::Command::new(\"ssh\");",
        "fn spawn_ssh(args: &[String], stderr: bool) -> std::io::Result<tokio::process::Child> {",
    ];
    bad.retain(|l| !(l.contains(tunnel) && allowed.iter().any(|a| l.ends_with(a))));
    assert!(
        bad.is_empty(),
        "osmen's source starts a process; if one is ever needed it takes a fixed program \
         and an argument vector, never a shell, and this list names it:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_gateway_never_reaches_the_engine() {
    let bad = check(
        "src/gateway",
        &["bollard", "crate::stack", "docker.sock", "DOCKER_HOST"],
    );
    assert!(
        bad.is_empty(),
        "the gateway must not touch the Docker engine (it would proxy it):\n{}",
        bad.join("\n")
    );
}

/// Strips string, char and comment text from one line, keeping code (and so its braces).
/// `in_str` carries a string literal (or a raw string's closing `"#..`) across lines.
pub(crate) fn code_of(line: &str, in_str: &mut Option<String>) -> String {
    let b: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if let Some(close) = in_str.as_ref() {
            if close == "\"" {
                match b[i] {
                    '\\' => i += 2,
                    '"' => {
                        *in_str = None;
                        i += 1;
                    }
                    _ => i += 1,
                }
            } else {
                let rest: String = b[i..].iter().collect();
                if rest.starts_with(close.as_str()) {
                    i += close.chars().count();
                    *in_str = None;
                } else {
                    i += 1;
                }
            }
            continue;
        }
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => break,
            '"' => {
                *in_str = Some("\"".into());
                i += 1;
            }
            'r' if (b.get(i + 1) == Some(&'#') || b.get(i + 1) == Some(&'"'))
                && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == '#').count();
                if b.get(i + 1 + hashes) == Some(&'"') {
                    *in_str = Some(format!("\"{}", "#".repeat(hashes)));
                    i += 2 + hashes;
                } else {
                    out.push('r');
                    i += 1;
                }
            }
            '\'' => {
                // A char literal ('{', '\n', '\''), else a lifetime.
                if b.get(i + 1) == Some(&'\\') {
                    let end = b[i + 2..].iter().position(|c| *c == '\'');
                    i = end.map_or(b.len(), |e| i + 3 + e);
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The name of the function a line of code opens, if it opens one.
fn fn_name(code: &str) -> Option<String> {
    let words: Vec<&str> = code.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let lead = &words[..at];
    let modifiers = [
        "pub", "async", "const", "unsafe", "extern", "\"C\"", "default",
    ];
    if !lead
        .iter()
        .all(|w| modifiers.contains(w) || w.starts_with("pub("))
    {
        return None;
    }
    let name = words.get(at + 1)?;
    let name: String = name
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every function outside test code in `src` and its length in lines, counted from its
/// `fn` line to its closing brace: (name, first line, lines).
fn function_lengths(src: &str) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut in_str = None;
    let mut depth: i64 = 0;
    // (name, first line, depth outside it) of the functions being read.
    let mut open: Vec<(String, usize, i64)> = Vec::new();
    // A `#[cfg(test)]` or `#[test]` item: skipped until depth falls back to this.
    let mut test_attr = false;
    let mut skip_until: Option<i64> = None;
    // A function whose signature spans lines: it opens at the first `{`.
    let mut pending: Option<(String, usize)> = None;
    // Open parentheses and brackets: a `;` inside them (`[u8; 4]`) ends nothing.
    let mut brackets: i64 = 0;
    for (n, line) in src.lines().enumerate() {
        let code = code_of(line, &mut in_str);
        let t = code.trim();
        if skip_until.is_none() && (t.starts_with("#[cfg(test)]") || t.starts_with("#[test]")) {
            test_attr = true;
        }
        if skip_until.is_none()
            && let Some(name) = fn_name(t)
        {
            pending = Some((name, n + 1));
        }
        for c in code.chars() {
            match c {
                '{' => {
                    if test_attr && skip_until.is_none() {
                        skip_until = Some(depth);
                        test_attr = false;
                        pending = None;
                    }
                    if let Some((name, first)) = pending.take() {
                        open.push((name, first, depth));
                    }
                    depth += 1;
                }
                '}' => {
                    depth -= 1;
                    if skip_until == Some(depth) {
                        skip_until = None;
                    }
                    if open.last().is_some_and(|o| o.2 == depth) {
                        let (name, first, _) = open.pop().unwrap();
                        found.push((name, first, n + 2 - first));
                    }
                }
                '(' | '[' => brackets += 1,
                ')' | ']' => brackets -= 1,
                // A declaration without a body (a trait's), or a test item's end.
                ';' if brackets == 0 => {
                    pending = None;
                    if test_attr && skip_until.is_none() {
                        test_attr = false;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// Functions outside tests longer than `max` lines under `dir`: "path:line name (n lines)".
fn long_functions(dir: &str, max: usize) -> Vec<(String, usize)> {
    let mut files = Vec::new();
    let path = root().join(dir);
    if path.is_file() {
        files.push(path);
    } else {
        rust_files(&path, &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        for (name, line, len) in function_lengths(&src) {
            if len > max {
                out.push((format!("{rel}:{line} {name}"), len));
            }
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    out
}

#[test]
fn the_function_measure_counts_from_fn_to_its_brace() {
    let src = "fn z(x: [u8; 4]) {\n}\nfn a() {\n    let s = \"}\";\n    let c = '{';\n}\n\
               #[cfg(test)]\nmod tests {\n    fn hidden() {\n    }\n}\n\
               trait T {\n    fn decl(&self);\n    fn body(&self) {\n        let r = r#\"{\"#;\n    }\n}\n\
               pub async fn b<'a>(\n    x: &'a str,\n) -> u8 {\n    0\n}\n";
    let got = function_lengths(src);
    assert_eq!(
        got,
        vec![
            ("z".to_string(), 1, 2),
            ("a".to_string(), 3, 4),
            ("body".to_string(), 14, 3),
            ("b".to_string(), 18, 5)
        ]
    );
}

/// The measure behind the 120-line rule, over the whole tree:
/// `cargo test --test it list_long_functions -- --ignored --nocapture`.
#[test]
#[ignore = "a listing, not a check"]
fn list_long_functions() {
    for (at, len) in long_functions("src", 120) {
        println!("{len:5} {at}");
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut sizes: Vec<(usize, String)> = files
        .iter()
        .map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n, f.strip_prefix(root()).unwrap().display().to_string())
        })
        .filter(|(n, _)| *n > 800)
        .collect();
    sizes.sort_by(|a, b| b.cmp(a));
    for (n, f) in sizes {
        println!("{n:5} {f} (file)");
    }
}

#[test]
fn only_the_engine_adapter_speaks_bollard() {
    let mut bad = check("src/stack", &["bollard::", ".api()"]);
    bad.retain(|l| !l.starts_with(&root().join("src/stack/engine/").display().to_string()));
    assert!(
        bad.is_empty(),
        "outside stack/engine/, the stack speaks to the engine through the adapter \
         (DockerEngine's methods, the Engine trait):\n{}",
        bad.join("\n")
    );
}

/// Where the 120-line rule holds: all of `src/`.
const SHORT_FUNCTIONS: &[&str] = &["src"];
const SHORT_FUNCTIONS_NOT_YET: &[&str] = &[];
/// Declarative tables, allowed past 120 lines by name ("path name"): a list of entries
/// reads as data, and splitting it would only scatter it.
const DECLARATIVE_TABLES: &[&str] = &["src/tui/keymap.rs default"];
const MAX_FUNCTION_LINES: usize = 120;
const MAX_FILE_LINES: usize = 800;

#[test]
fn a_function_fits_on_a_screen_or_two() {
    let mut long = Vec::new();
    for dir in SHORT_FUNCTIONS {
        long.extend(long_functions(dir, MAX_FUNCTION_LINES));
    }
    long.retain(|(at, _)| {
        !SHORT_FUNCTIONS_NOT_YET.iter().any(|p| at.starts_with(p))
            && !DECLARATIVE_TABLES.iter().any(|t| {
                let (path, name) = t.split_once(' ').unwrap();
                at.starts_with(&format!("{path}:")) && at.ends_with(&format!(" {name}"))
            })
    });
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them by step, as the house style \
         says, or name a declarative table in DECLARATIVE_TABLES):\n{}",
        long.iter()
            .map(|(at, n)| format!("{at} ({n} lines)"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_file_stays_under_800_lines() {
    let mut big = Vec::new();
    for dir in SHORT_FUNCTIONS {
        let path = root().join(dir);
        let mut files = Vec::new();
        if path.is_file() {
            files.push(path);
        } else {
            rust_files(&path, &mut files);
        }
        for f in files {
            let rel = f.strip_prefix(root()).unwrap().display().to_string();
            if SHORT_FUNCTIONS_NOT_YET.iter().any(|p| rel.starts_with(p)) {
                continue;
            }
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            if n > MAX_FILE_LINES {
                big.push(format!("{rel} ({n} lines)"));
            }
        }
    }
    assert!(
        big.is_empty(),
        "files over {MAX_FILE_LINES} lines (make the module a folder by concern):\n{}",
        big.join("\n")
    );
}

#[test]
fn the_length_rule_catches_a_long_function() {
    let body = "    let x = 1;\n".repeat(MAX_FUNCTION_LINES);
    let src = format!("fn long() {{\n{body}}}\nfn short() {{\n}}\n");
    let got = function_lengths(&src);
    assert_eq!(got[0], ("long".to_string(), 1, MAX_FUNCTION_LINES + 2));
    assert!(got[0].2 > MAX_FUNCTION_LINES && got[1].2 <= MAX_FUNCTION_LINES);
}

/// The lines of `src` outside test code, strings and comments (the module graph's reader):
/// (line number, code).
fn code_outside_tests(src: &str) -> Vec<(usize, String)> {
    crate::module_graph::non_test_code(src)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (n + 1, l.to_string()))
        .collect()
}

/// Whether `code` names a `Result<_, String>`: a plain `Result` (not an alias such as
/// `EResult<T>`) whose last type argument is `String`.
fn string_results(code: &str) -> usize {
    let mut found = 0;
    for (at, _) in code.match_indices("Result<") {
        let alias = code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if alias {
            continue;
        }
        let (mut depth, mut last_arg, mut two) = (0i32, at + "Result<".len(), false);
        for (i, c) in code[at + "Result".len()..].char_indices() {
            let i = i + at + "Result".len();
            match c {
                '<' | '(' => depth += 1,
                '>' | ')' => {
                    depth -= 1;
                    if depth == 0 {
                        found += usize::from(two && code[last_arg..i].trim() == "String");
                        break;
                    }
                }
                ',' if depth == 1 => {
                    last_arg = i + 1;
                    two = true;
                }
                _ => {}
            }
        }
    }
    found
}

/// Rooms whose errors are typed inside (thiserror, with fields): a `String` error is
/// allowed only where data meets the model and the hub's input (`Update::Source`,
/// `ProbeReport`), which carry what the console shows.
const TYPED_ERRORS: &[&str] = &["src/collect", "src/gateway", "src/stack", "src/bench"];

#[test]
fn errors_inside_are_typed_and_anyhow_stays_at_the_edge() {
    assert_eq!(
        string_results("fn a() -> Result<Vec<(u8, String)>, String> { EResult<String> }"),
        1
    );
    assert_eq!(string_results("x: SResult<BTreeMap<u32, String>>"), 0);
    assert_eq!(string_results("fn b() -> Result<String, Error>"), 0);
    assert_eq!(string_results("fn c() -> std::io::Result<String>"), 0);
    let test_code = "fn real() -> Result<(), String> {}\n#[cfg(test)]\nmod tests {\n    \
                     fn f() -> Result<(), String> {}\n}\n";
    assert_eq!(code_outside_tests(test_code).len(), 1);
    let mut found = Vec::new();
    for dir in TYPED_ERRORS {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for f in files {
            let rel = f.strip_prefix(root()).unwrap().display().to_string();
            if rel.ends_with("/tests.rs") {
                continue;
            }
            let src = std::fs::read_to_string(&f).unwrap();
            for (n, code) in code_outside_tests(&src) {
                if string_results(&code) > 0 {
                    found.push(format!("{rel}:{n}: {}", code.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Result<_, String> inside (give it a thiserror enum with fields, as bollard's \
         errors are):\n{}",
        found.join("\n")
    );
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let anyhow: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .filter(|rel| !rel.starts_with("src/commands/") && rel != "src/main.rs")
        .filter(|rel| {
            let src = std::fs::read_to_string(root().join(rel)).unwrap();
            code_outside_tests(&src)
                .iter()
                .any(|(_, c)| c.contains("anyhow"))
        })
        .collect();
    assert!(
        anyhow.is_empty(),
        "anyhow outside commands/ and main.rs: {anyhow:?}"
    );
}
