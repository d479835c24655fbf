//! The module graph, read from the source: every `crate::` and `super::` path in code
//! outside tests, resolved to the module it names. The house rules are checked on it: no
//! two rooms (`src/<room>`) import each other, no two modules inside a room import each
//! other, and the arrows the house style forbids are absent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::architecture::code_of;
use crate::util::root;

/// The code of `src` outside comments, strings and test items (`#[cfg(test)]`, `#[test]`).
pub(crate) fn non_test_code(src: &str) -> String {
    let mut out = String::new();
    let mut in_str = None;
    let mut depth: i64 = 0;
    let mut test_attr = false;
    let mut skip_until: Option<i64> = None;
    for line in src.lines() {
        let code = code_of(line, &mut in_str);
        let t = code.trim();
        if skip_until.is_none() && (t.starts_with("#[cfg(test)]") || t.starts_with("#[test]")) {
            test_attr = true;
        }
        let mut kept = String::new();
        for c in code.chars() {
            match c {
                '{' => {
                    if test_attr && skip_until.is_none() {
                        skip_until = Some(depth);
                        test_attr = false;
                    }
                    depth += 1;
                }
                '}' => {
                    depth -= 1;
                    if skip_until == Some(depth) {
                        skip_until = None;
                        continue;
                    }
                }
                // `#[cfg(test)] mod tests;` or `#[cfg(test)] use ...;`
                ';' if test_attr && skip_until.is_none() => {
                    test_attr = false;
                    kept.clear();
                    continue;
                }
                _ => {}
            }
            if skip_until.is_none() && !test_attr {
                kept.push(c);
            }
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The paths a piece of code names from `prefix` (`crate::` or `super::`), each as its
/// segments: `crate::a::b::{c, d::e}` gives `[a, b, c]` and `[a, b, d, e]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        // `super::` inside `super::super::`, or a longer word ending in `crate`.
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut lead = Vec::new();
        if prefix == "super::" {
            lead.push("super".to_string());
        }
        tree(&code[from..], lead, &mut out);
    }
    out
}

/// Reads one use-tree (`a::b`, `a::{b, c::d}`, `self`) into paths, each prefixed by `lead`.
fn tree(s: &str, lead: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = lead;
    let mut i = 0;
    loop {
        let rest = &s[i..];
        if let Some(group) = rest.strip_prefix('{') {
            // Each member of the group, split at top-level commas.
            let mut j = 0;
            loop {
                let member = &group[j..];
                let trimmed = member.trim_start();
                j += member.len() - trimmed.len();
                if trimmed.starts_with('}') {
                    return i + 1 + j + 1;
                }
                let used = tree(&group[j..], path.clone(), out);
                j += used.max(1);
                let after = &group[j..];
                let t = after.trim_start();
                j += after.len() - t.len();
                if let Some(stripped) = t.strip_prefix(',') {
                    let _ = stripped;
                    j += 1;
                } else if t.starts_with('}') {
                    return i + 1 + j + 1;
                } else if t.is_empty() {
                    return s.len();
                }
            }
        }
        let name = ident_at(rest);
        if name.is_empty() {
            break;
        }
        i += name.len();
        if name != "self" {
            path.push(name);
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

/// The module path of a file under `src/`: `src/a/b.rs` is `[a, b]`, `src/a/mod.rs`
/// `[a]`; `lib.rs` and `main.rs` are the crate's root.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        // main.rs is its own crate: its `crate::` is the binary's; it only wires.
        return vec![];
    }
    parts
}

/// Resolves one named path to an absolute module path (`super::` climbs from `module`).
fn resolve(module: &[String], path: &[String]) -> Vec<String> {
    let ups = path.iter().take_while(|p| *p == "super").count();
    if ups == 0 {
        return path.to_vec();
    }
    let base = &module[..module.len().saturating_sub(ups)];
    base.iter()
        .cloned()
        .chain(path[ups..].iter().cloned())
        .collect()
}

/// Every file of `src/` (tests' files aside) with its module path and what it names.
struct Graph {
    /// (file, module, named absolute paths)
    files: Vec<(String, Vec<String>, Vec<Vec<String>>)>,
}

fn is_test_file(rel: &Path) -> bool {
    rel.iter().any(|p| p == "tests" || p == "tests.rs")
}

impl Graph {
    fn of(files: Vec<(String, String)>) -> Graph {
        let mut out = Vec::new();
        for (rel, src) in files {
            let relp = Path::new(&rel);
            if is_test_file(relp) || rel == "main.rs" {
                continue;
            }
            let module = module_of(relp);
            let code = non_test_code(&src);
            let mut named: Vec<Vec<String>> = paths_after(&code, "crate::");
            named.extend(
                paths_after(&code, "super::")
                    .into_iter()
                    .map(|p| resolve(&module, &p)),
            );
            out.push((rel, module, named));
        }
        Graph { files: out }
    }

    fn read() -> Graph {
        let mut paths = Vec::new();
        crate::architecture::rust_files(&root().join("src"), &mut paths);
        let src_root = root().join("src");
        let files = paths
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&src_root).unwrap().display().to_string();
                (rel, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        Graph::of(files)
    }

    /// Arrows between modules at `level` (1: rooms; 2: modules of one room), with a file
    /// and the path that makes each: (from, to) -> "file: path".
    fn arrows(&self, level: usize) -> BTreeMap<(String, String), String> {
        let mut out = BTreeMap::new();
        for (file, module, named) in &self.files {
            if module.len() < level {
                continue;
            }
            for p in named {
                if p.len() < level || p[..level - 1] != module[..level - 1] {
                    continue;
                }
                let (from, to) = (module[..level].join("::"), p[..level].join("::"));
                if from != to {
                    out.entry((from, to))
                        .or_insert_with(|| format!("{file}: crate::{}", p.join("::")));
                }
            }
        }
        out
    }

    /// Pairs of modules that import each other, with the evidence both ways.
    fn mutual(&self, level: usize) -> Vec<String> {
        let arrows = self.arrows(level);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for ((a, b), why) in &arrows {
            if let Some(back) = arrows.get(&(b.clone(), a.clone()))
                && seen.insert((a.min(b).clone(), a.max(b).clone()))
            {
                out.push(format!("{a} <-> {b}: {why} / {back}"));
            }
        }
        out
    }

    /// A circle of arrows at `level`, if there is one: `a -> b -> c -> a`.
    fn circle(&self, level: usize) -> Option<String> {
        let arrows = self.arrows(level);
        let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in arrows.keys() {
            next.entry(a).or_default().push(b);
        }
        // Depth-first, colouring each module: on the path (1) or finished (2).
        fn visit<'a>(
            m: &'a str,
            next: &BTreeMap<&'a str, Vec<&'a str>>,
            colour: &mut BTreeMap<&'a str, u8>,
            path: &mut Vec<&'a str>,
        ) -> Option<String> {
            colour.insert(m, 1);
            path.push(m);
            for n in next.get(m).into_iter().flatten() {
                match colour.get(n) {
                    Some(1) => {
                        let from = path.iter().position(|p| p == n).unwrap();
                        let mut c: Vec<&str> = path[from..].to_vec();
                        c.push(n);
                        return Some(c.join(" -> "));
                    }
                    Some(_) => {}
                    None => {
                        if let Some(c) = visit(n, next, colour, path) {
                            return Some(c);
                        }
                    }
                }
            }
            path.pop();
            colour.insert(m, 2);
            None
        }
        let mut colour = BTreeMap::new();
        for m in next.keys() {
            if !colour.contains_key(m)
                && let Some(c) = visit(m, &next, &mut colour, &mut Vec::new())
            {
                return Some(c);
            }
        }
        None
    }

    /// Paths named from `room` that start with `target` (`["collect"]`, ...), except
    /// those starting with one of `allowed`.
    fn names(&self, room: &str, target: &[&str], allowed: &[&[&str]]) -> Vec<String> {
        let starts = |p: &[String], with: &[&str]| {
            p.len() >= with.len() && p.iter().zip(with).all(|(a, b)| a == b)
        };
        let mut out = Vec::new();
        for (file, module, named) in &self.files {
            if module.first().map(String::as_str) != Some(room) {
                continue;
            }
            for p in named {
                if starts(p, target) && !allowed.iter().any(|a| starts(p, a)) {
                    out.push(format!("{file}: crate::{}", p.join("::")));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[test]
fn the_graph_reader_resolves_paths_groups_and_super() {
    let g = Graph::of(vec![
        (
            "a/x.rs".into(),
            "use crate::{b::One, c::{self, d::Two}};\nuse super::y::Z;\n\
             fn f() { crate::e::g(); let s = \"crate::h\"; } // crate::i\n\
             #[cfg(test)]\nmod tests {\n    use crate::j::K;\n}\n"
                .into(),
        ),
        (
            "a/y/z.rs".into(),
            "use super::super::x::F;\nuse super::w;\n".into(),
        ),
    ]);
    let x = &g.files[0].2;
    let firsts: BTreeSet<&str> = x.iter().map(|p| p[0].as_str()).collect();
    assert_eq!(
        firsts,
        BTreeSet::from(["a", "b", "c", "e"]),
        "strings, comments and tests name nothing: {x:?}"
    );
    assert!(x.contains(&vec!["c".to_string(), "d".into(), "Two".into()]));
    assert!(x.contains(&vec!["a".to_string(), "y".into(), "Z".into()]));
    let rooms = g.arrows(1);
    assert!(rooms.contains_key(&("a".into(), "b".into())));
    let inner = g.arrows(2);
    assert!(inner.contains_key(&("a::x".into(), "a::y".into())));
    assert!(inner.contains_key(&("a::y".into(), "a::x".into())));
    assert_eq!(g.mutual(2).len(), 1, "{:?}", g.mutual(2));
    assert!(g.mutual(1).is_empty());
    assert!(g.circle(2).is_some_and(|c| c.contains("a::x")));
    assert_eq!(g.circle(1), None);
    let three = Graph::of(vec![
        ("p/m.rs".into(), "use crate::q::A;\n".into()),
        ("q/m.rs".into(), "use crate::r::B;\n".into()),
        ("r/m.rs".into(), "fn f() { crate::p::m::g() }\n".into()),
    ]);
    assert!(three.mutual(1).is_empty());
    assert_eq!(three.circle(1).as_deref(), Some("p -> q -> r -> p"));
}

#[test]
fn no_two_rooms_import_each_other_nor_any_circle_of_rooms() {
    let g = Graph::read();
    let mutual = g.mutual(1);
    assert!(
        mutual.is_empty(),
        "rooms importing each other:\n{}",
        mutual.join("\n")
    );
    assert_eq!(g.circle(1), None, "a circle of rooms");
}

#[test]
fn no_two_modules_of_a_room_import_each_other() {
    let g = Graph::read();
    let mutual = g.mutual(2);
    assert!(
        mutual.is_empty(),
        "modules importing each other:\n{}",
        mutual.join("\n")
    );
}

#[test]
fn the_forbidden_arrows_are_absent() {
    let g = Graph::read();
    let mut bad = Vec::new();
    bad.extend(g.names("gateway", &["collect"], &[]));
    bad.extend(g.names("collect", &["stack"], &[]));
    // The update type and its GPU payload are what a collector sends; nothing else of the
    // hub is a collector's business.
    bad.extend(g.names(
        "collect",
        &["hub"],
        &[
            &["hub", "Update"],
            &["hub", "GpuSample"],
            &["hub", "update"],
        ],
    ));
    bad.extend(g.names("hub", &["gateway"], &[]));
    assert!(bad.is_empty(), "forbidden arrows:\n{}", bad.join("\n"));
}

/// The whole graph of rooms, for a reader: `cargo test --test it print_module_graph --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn print_module_graph() {
    let g = Graph::read();
    for ((a, b), why) in g.arrows(1) {
        println!("{a} -> {b}   ({why})");
    }
    println!("\nmutual, rooms:\n{}", g.mutual(1).join("\n"));
    println!("\nmutual, inside rooms:\n{}", g.mutual(2).join("\n"));
}
