//! The dependency policy of `deny.toml` (cargo-deny's format), checked offline from
//! `cargo metadata`: allowed licences only, and no crate in two versions unless listed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::util::root;

/// Whether an SPDX expression is satisfied by the allowed licences: `A OR B` needs one,
/// `A AND B` both; parentheses group; `A/B` is the old spelling of OR.
pub fn allowed(expr: &str, allow: &BTreeSet<String>) -> bool {
    fn parse_or(t: &[String], i: &mut usize, allow: &BTreeSet<String>) -> bool {
        let mut v = parse_and(t, i, allow);
        while t.get(*i).is_some_and(|x| x == "OR") {
            *i += 1;
            v |= parse_and(t, i, allow);
        }
        v
    }
    fn parse_and(t: &[String], i: &mut usize, allow: &BTreeSet<String>) -> bool {
        let mut v = atom(t, i, allow);
        while t.get(*i).is_some_and(|x| x == "AND") {
            *i += 1;
            v &= atom(t, i, allow);
        }
        v
    }
    fn atom(t: &[String], i: &mut usize, allow: &BTreeSet<String>) -> bool {
        match t.get(*i).map(String::as_str) {
            Some("(") => {
                *i += 1;
                let v = parse_or(t, i, allow);
                *i += 1; // ")"
                v
            }
            Some(id) => {
                *i += 1;
                let mut id = id.to_string();
                if t.get(*i).is_some_and(|x| x == "WITH") {
                    id = format!("{id} WITH {}", t.get(*i + 1).cloned().unwrap_or_default());
                    *i += 2;
                }
                allow.contains(&id)
            }
            None => false,
        }
    }
    let spaced = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<String> = spaced.split_whitespace().map(String::from).collect();
    let mut i = 0;
    let ok = parse_or(&tokens, &mut i, allow);
    ok && i == tokens.len()
}

#[test]
fn licence_expressions_are_evaluated_not_grepped() {
    let allow: BTreeSet<String> = ["MIT", "Apache-2.0", "ISC", "Apache-2.0 WITH LLVM-exception"]
        .into_iter()
        .map(String::from)
        .collect();
    assert!(allowed("MIT OR Apache-2.0", &allow));
    assert!(allowed("MIT/Apache-2.0", &allow));
    assert!(allowed("ISC AND (Apache-2.0 OR ISC)", &allow));
    assert!(allowed("Apache-2.0 WITH LLVM-exception OR GPL-3.0", &allow));
    assert!(!allowed("GPL-3.0", &allow));
    assert!(!allowed("MIT AND GPL-3.0", &allow));
    assert!(allowed("MIT OR Apache-2.0 OR LGPL-2.1-or-later", &allow));
}

#[test]
fn every_dependency_meets_deny_toml() {
    let policy: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("deny.toml")).unwrap()).unwrap();
    let allow: BTreeSet<String> = policy["licenses"]["allow"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let skip: BTreeSet<String> = policy["bans"]["skip"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let o = std::process::Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .expect("run cargo metadata");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut bad = Vec::new();
    let mut versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let packages = meta["packages"].as_array().unwrap();
    for p in packages {
        let name = p["name"].as_str().unwrap().to_string();
        versions
            .entry(name.clone())
            .or_default()
            .insert(p["version"].as_str().unwrap().to_string());
        match p["license"].as_str() {
            Some(l) if allowed(l, &allow) => {}
            Some(l) => bad.push(format!(
                "{name} {}: licence {l:?} is not allowed by deny.toml [licenses].allow",
                p["version"]
            )),
            None if p["source"].is_null() => {} // osmen itself
            None => bad.push(format!("{name}: no licence declared")),
        }
    }
    for (name, v) in &versions {
        if v.len() > 1 && !skip.contains(name) {
            bad.push(format!(
                "{name} in {} versions ({}): align the dependents, or list it under \
                 [bans].skip in deny.toml with the reason",
                v.len(),
                v.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for name in &skip {
        if versions.get(name).is_none_or(|v| v.len() < 2) {
            bad.push(format!(
                "deny.toml skips {name}, which is no longer in two versions: remove the entry"
            ));
        }
    }
    eprintln!(
        "{} packages checked, {} licences distinct, {} duplicated names allowed",
        packages.len(),
        packages
            .iter()
            .filter_map(|p| p["license"].as_str())
            .collect::<BTreeSet<_>>()
            .len(),
        versions.values().filter(|v| v.len() > 1).count()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
