use super::*;

#[test]
fn positions_anchors_and_merge_keys() {
    let src = "base: &b\n  a: 1\n  b: 2\nx:\n  <<: *b\n  b: 3\n";
    let root = parse(src).unwrap();
    let x = root.get("x").unwrap();
    assert_eq!(x.get("a").unwrap().as_str(), Some("1"));
    assert_eq!(x.get("b").unwrap().as_str(), Some("3"));
    let b = root.get("base").unwrap().get("b").unwrap();
    assert_eq!(
        b.pos,
        Pos {
            line: 3,
            col: 6,
            file: 0
        }
    );
}

#[test]
fn merge_tags_are_carried_and_unknown_tags_refused() {
    let root = parse("a: !reset null\nb: !reset []\nc: !override {x: 1}\nd: !!str 5\ne: !reset\n")
        .unwrap();
    assert_eq!(root.get("a").unwrap().tag, Some(Tag::Reset));
    assert!(root.get("a").unwrap().is_null());
    assert_eq!(root.get("b").unwrap().tag, Some(Tag::Reset));
    assert_eq!(root.get("c").unwrap().tag, Some(Tag::Override));
    assert_eq!(root.get("c").unwrap().get("x").unwrap().tag, None);
    assert_eq!(root.get("d").unwrap().tag, None);
    assert_eq!(root.get("e").unwrap().tag, Some(Tag::Reset));
    let err = parse("a: 1\nb: !resett []\n").unwrap_err();
    assert_eq!(err.pos.line, 2, "{err:?}");
    assert!(
        err.message.contains("unknown YAML tag `!resett`"),
        "{err:?}"
    );
}

#[test]
fn positions_carry_the_file_index() {
    let root = parse_file("a:\n  b: 1\n", 3).unwrap();
    assert_eq!(
        root.get("a").unwrap().get("b").unwrap().pos,
        Pos {
            line: 2,
            col: 6,
            file: 3
        }
    );
}

#[test]
fn duplicate_keys_are_errors() {
    let err = parse("a: 1\na: 2\n").unwrap_err();
    assert_eq!(err.pos.line, 2);
    assert!(err.message.contains("duplicate key `a`"));
}

#[test]
fn a_repeated_merge_key_is_refused_at_its_line() {
    // docker-compose 1.29 would take `*a` (the last), compose-go refuses:
    // expected "duplicate key `<<`" at line 5, where the second one is.
    let src = "a: &a {x: 1}\nb: &b {x: 2}\nc:\n  <<: *b\n  <<: *a\n";
    let err = parse(src).unwrap_err();
    assert_eq!(err.pos.line, 5, "{err:?}");
    assert!(err.message.contains("duplicate key `<<`"), "{err:?}");
    assert!(err.message.contains("<<: [*first, *second]"), "{err:?}");
    // One `<<` with a list of sources stays accepted.
    let ok = parse("a: &a {x: 1}\nb: &b {x: 2}\nc:\n  <<: [*b, *a]\n").unwrap();
    assert_eq!(ok.get("c").unwrap().get("x").unwrap().as_str(), Some("2"));
}

#[test]
fn quoted_scalars_are_not_null() {
    let root = parse("a: ''\nb:\nc: \"null\"\n").unwrap();
    assert!(!root.get("a").unwrap().is_null());
    assert!(root.get("b").unwrap().is_null());
    assert_eq!(root.get("c").unwrap().as_str(), Some("null"));
}

#[test]
fn syntax_errors_have_positions() {
    let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
    assert!(err.pos.line >= 1, "{err:?}");
}

/// Ten levels of nine aliases: 9^10 (3.4 billion) nodes if expanded.
fn alias_bomb() -> String {
    let mut s = String::from("x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let row = vec![format!("*l{}", i - 1); 9].join(", ");
        s.push_str(&format!("x-l{i}: &l{i} [{row}]\n"));
    }
    s.push_str("services:\n  web:\n    image: nginx\n    command: *l9\n");
    s
}

#[test]
fn an_alias_bomb_is_excessive_aliasing() {
    let src = alias_bomb();
    assert!(src.len() < 1000, "a few hundred bytes: {}", src.len());
    let t = std::time::Instant::now();
    let err = parse(&src).unwrap_err();
    eprintln!("alias bomb refused in {:?}", t.elapsed());
    assert!(err.message.contains("excessive aliasing"), "{err:?}");
    // It stops at the level that tips the ratio, long before the last one.
    assert!((2..=6).contains(&err.pos.line), "{err:?}");
}

#[test]
fn a_merge_key_bomb_is_excessive_aliasing() {
    let mut s = String::from("x-m0: &m0 {a: lol, b: lol, c: lol, d: lol, e: lol}\n");
    for i in 1..12 {
        let p = i - 1;
        let vals: Vec<String> = (0..8).map(|k| format!("k{k}: *m{p}")).collect();
        s.push_str(&format!(
            "x-m{i}: &m{i} {{<<: *m{p}, {}}}\n",
            vals.join(", ")
        ));
    }
    s.push_str("services:\n  web:\n    <<: *m11\n    image: nginx\n");
    let err = parse(&s).unwrap_err();
    assert!(err.message.contains("excessive aliasing"), "{err:?}");
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let n = 200_000;
    let cases = [
        format!("{}{}", "[".repeat(n), "]".repeat(n)),
        format!("{}1{}", "{a: ".repeat(n), "}".repeat(n)),
        format!("{}x\n", "- ".repeat(n)),
        (0..200)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect::<String>(),
    ];
    for src in &cases {
        let err = parse(src).unwrap_err();
        assert!(
            err.message
                .contains(&format!("deeper than {MAX_DEPTH} levels")),
            "{}: {err:?}",
            &src[..20]
        );
    }
    // At the limit it still loads.
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
}

#[test]
fn an_alias_cannot_nest_past_the_depth_limit() {
    let half = MAX_DEPTH / 2 + 2;
    let deep = format!("{}x{}", "[".repeat(half), "]".repeat(half));
    let src = format!(
        "a: &d {deep}\nb: {}*d{}\n",
        "[".repeat(half),
        "]".repeat(half)
    );
    let err = parse(&src).unwrap_err();
    assert_eq!(err.pos.line, 2, "{err:?}");
    assert!(
        err.message.contains("alias nests the tree deeper"),
        "{err:?}"
    );
}

#[test]
fn too_many_nodes_and_too_large_files_are_refused() {
    let many = format!("[{}]", vec!["a"; MAX_NODES + 1].join(","));
    let err = parse(&many).unwrap_err();
    assert!(
        err.message.contains("more than 1000000 YAML nodes"),
        "{err:?}"
    );

    // One big scalar copied by a few aliases: few nodes, much text.
    let big = "x".repeat(MAX_FILE_BYTES - 100);
    let src = format!("a: &a {big}\nb: [*a, *a, *a, *a, *a, *a, *a]\n");
    let err = parse(&src).unwrap_err();
    assert!(err.message.contains("MiB of text"), "{err:?}");

    let huge = format!("a: {}\n", "x".repeat(MAX_FILE_BYTES));
    let err = parse(&huge).unwrap_err();
    assert!(err.message.contains("over the limit of 10 MiB"), "{err:?}");
}

#[test]
fn a_long_key_is_refused_before_it_is_compared_with_known_keys() {
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    let err = parse(&format!("services:\n  web:\n    ? {long}\n    : 1\n")).unwrap_err();
    assert_eq!(err.pos.line, 3, "{err:?}");
    assert!(
        err.message.contains("a mapping key of 1025 bytes"),
        "{err:?}"
    );
    let ok = "k".repeat(MAX_KEY_BYTES);
    assert!(parse(&format!("? {ok}\n: 1\n")).is_ok());
}

#[test]
fn a_mapping_with_many_keys_is_checked_for_duplicates_quickly() {
    let src: String = (0..100_000).map(|i| format!("k{i}: {i}\n")).collect();
    let root = parse(&src).unwrap();
    assert_eq!(root.as_map().map(<[_]>::len), Some(100_000));
    let dup = format!("{src}k5: again\n");
    let err = parse(&dup).unwrap_err();
    assert_eq!(err.pos.line, 100_001, "{err:?}");
}

#[test]
fn equal_complex_keys_are_duplicates_and_merges_keep_the_first_source() {
    let err = parse("? [a, b]\n: 1\n? [a, b]\n: 2\n").unwrap_err();
    assert!(err.message.contains("duplicate key"), "{err:?}");
    let root = parse("a: &a {x: 1}\nb: &b {x: 2, y: 2}\nc: {<<: [*a, *b]}\n").unwrap();
    let c = root.get("c").unwrap();
    assert_eq!(c.get("x").unwrap().as_str(), Some("1"));
    assert_eq!(c.get("y").unwrap().as_str(), Some("2"));
}

#[test]
fn an_alias_inside_its_own_anchor_is_an_error_not_a_loop() {
    let err = parse("a: &a [x, *a]\n").unwrap_err();
    assert!(err.message.contains("unknown anchor"), "{err:?}");
}

#[test]
fn only_the_first_document_is_read() {
    let root = parse("a: 1\n---\nb: [unclosed\n").unwrap();
    assert_eq!(root.get("a").unwrap().as_str(), Some("1"));
}

#[test]
fn limit_errors_name_the_file_and_line() {
    let file = std::path::Path::new("/nonexistent/osmen-hostile/compose.yml");
    let opts = crate::stack::compose::LoadOptions::default();
    let err = crate::stack::compose::load_str(&alias_bomb(), file, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/osmen-hostile/compose.yml:")
            && err.contains("excessive aliasing"),
        "{err}"
    );
}

/// A bad value a megabyte long, among 300 services: the loader suggests a spelling
/// only from names of about its length, so this fails at once instead of comparing a
/// megabyte with each name (minutes in a debug build).
#[test]
fn a_long_unknown_dependency_fails_without_a_long_search() {
    let mut s = String::from("services:\n");
    for i in 0..300 {
        s.push_str(&format!("  service-number-{i}:\n    image: nginx\n"));
    }
    let long = "x".repeat(1_000_000);
    s.push_str(&format!(
        "  web:\n    image: nginx\n    depends_on: [\"{long}\"]\n"
    ));
    let file = std::path::Path::new("/nonexistent/osmen-dep/compose.yml");
    let opts = crate::stack::compose::LoadOptions::default();
    let t = std::time::Instant::now();
    let err = crate::stack::compose::load_str(&s, file, &opts).unwrap_err();
    eprintln!("long dependency refused in {:?}", t.elapsed());
    assert!(
        err.to_string().contains("depends_on"),
        "{}",
        &err.to_string()[..200]
    );
}

/// 300 services sharing anchors the ordinary way: well inside every limit.
#[test]
fn a_large_legitimate_file_loads() {
    let mut s = String::from(
        "x-common: &common\n  restart: unless-stopped\n  logging:\n    driver: json-file\n    \
         options: {max-size: 10m, max-file: \"3\"}\n  labels: &labels {team: ops, tier: web}\n\
         x-env: &env\n  LOG_LEVEL: info\n  REGION: eu\nservices:\n",
    );
    for i in 0..300 {
        s.push_str(&format!(
            "  svc{i}:\n    <<: *common\n    image: nginx:1.27\n    environment:\n      \
             <<: *env\n      INDEX: \"{i}\"\n    labels: *labels\n    ports: [\"{}:80\"]\n",
            10_000 + i
        ));
    }
    let opts = crate::stack::compose::LoadOptions {
        project_name: Some("big".into()),
        ..Default::default()
    };
    let file = std::path::Path::new("/nonexistent/osmen-big/compose.yml");
    let p = crate::stack::compose::load_str(&s, file, &opts).unwrap();
    assert_eq!(p.services.len(), 300);
    let svc = &p.services["svc299"];
    assert_eq!(svc.environment["REGION"], "eu");
    assert_eq!(svc.environment["INDEX"], "299");
    assert_eq!(svc.labels["team"], "ops");
}

/// The loader fuzz target's invariant, over its seeds (and its corpus when seeded):
/// every input loads or fails with an error, without panicking.
#[test]
fn the_fuzz_corpus_loads_or_fails_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![
        root.join("tests/fixtures/compose"),
        root.join("fuzz/corpus/compose_load"),
    ];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let hostile = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("hostile-"))
        .count();
    assert!(hostile >= 5, "the hostile seeds are missing: {files:?}");
    let opts = crate::stack::compose::LoadOptions::default();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let r = crate::stack::compose::load_str(&text, &f, &opts);
        if f.to_string_lossy().contains("hostile-") {
            assert!(r.is_err(), "{} loaded", f.display());
        }
    }
}
