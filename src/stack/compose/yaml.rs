//! A YAML tree that remembers where every node came from.
//!
//! Compose errors must name the line and column of the bad value, which typed serde
//! deserialisers forget. This module folds yaml-rust2's parser events into a small tree
//! with positions, resolves anchors and aliases, and applies `<<` merge keys.
//!
//! A compose file may come from anyone, so the builder bounds what a file can cost:
//! its size, its nesting, and the nodes and text that alias expansion may create
//! (go-yaml's "excessive aliasing" rule). Each limit hit is an error at the line that hit it.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts in the source (both 1-based), and in which of the project's files
/// (an index into the loader's list of sources, 0 for the first or only file): after
/// several files are merged, an error must still name the file a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
    pub file: u16,
}

/// The Compose merge tags: `!reset` drops what lower layers set, `!override` replaces it
/// instead of merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Reset,
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    /// `plain` is false for quoted and block scalars: they are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
    pub tag: Option<Tag>,
}

impl Node {
    pub fn new(kind: Kind, pos: Pos) -> Node {
        Node {
            kind,
            pos,
            tag: None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A mapping's entries by key. `get` is a linear search, so a caller that looks up
    /// every service of a large file (50k services) indexes the mapping once instead.
    pub fn keyed(&self) -> HashMap<&str, &Node> {
        self.as_map()
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect()
    }

    /// A short description of the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// The largest compose file osmen reads: real ones are a few KiB, and the parser keeps a
/// tree of the whole file in memory.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// How deep mappings and lists may nest, aliases included: a compose file needs about ten
/// levels; the loader walks the tree recursively, so depth is stack.
pub const MAX_DEPTH: usize = 64;
/// How many nodes the tree may hold once aliases are expanded (anchor copies included).
pub const MAX_NODES: usize = 1_000_000;
/// How many bytes of scalar text the tree may hold once aliases are expanded.
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;
/// The longest mapping key: YAML's own limit for a plain `key:`, applied to `? key` too,
/// since an unknown key is compared with every known one to suggest a spelling.
pub const MAX_KEY_BYTES: usize = 1024;

/// go-yaml's rule for "excessive aliasing": up to this many nodes, 99% of them may come
/// from aliases; from the high mark on, 10%; in between the share falls linearly. So a
/// small file may use anchors freely while a ten-byte alias bomb stops within a few
/// thousand nodes.
const ALIAS_RATIO_LOW: usize = 400_000;
const ALIAS_RATIO_HIGH: usize = 4_000_000;

fn allowed_alias_ratio(nodes: usize) -> f64 {
    if nodes <= ALIAS_RATIO_LOW {
        0.99
    } else if nodes >= ALIAS_RATIO_HIGH {
        0.10
    } else {
        let span = (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW) as f64;
        0.99 - 0.89 * ((nodes - ALIAS_RATIO_LOW) as f64 / span)
    }
}

fn too_deep() -> String {
    format!(
        "refused: mappings and lists nest deeper than {MAX_DEPTH} levels here (the limit on \
         nesting)"
    )
}

/// A syntax error, or a limit hit, with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// What a subtree costs: its nodes, its scalar bytes and its height (a scalar is 1).
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
    height: usize,
}

impl Size {
    fn add(&mut self, child: Size) {
        self.nodes += child.nodes;
        self.bytes += child.bytes;
        self.height = self.height.max(child.height + 1);
    }
}

enum Frame {
    Seq(Vec<Node>, Pos, usize, Size, Option<Tag>),
    Map(
        Vec<(Node, Node)>,
        Option<Node>,
        Pos,
        usize,
        Size,
        Option<Tag>,
    ),
}

#[derive(Default)]
struct Builder {
    /// The index of the file being read, stamped on every position.
    file: u16,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Size)>,
    docs: Vec<Node>,
    error: Option<SyntaxError>,
    /// Nodes in the tree so far, alias copies included.
    nodes: usize,
    /// Of those, the ones copied by aliases.
    aliased: usize,
    /// Nodes kept as anchor copies, outside the tree.
    kept: usize,
    /// Scalar bytes in the tree and in the anchor copies.
    bytes: usize,
}

fn pos(m: Marker, file: u16) -> Pos {
    // yaml-rust2 markers count lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        col: m.col() + 1,
        file,
    }
}

/// `!reset` and `!override` are Compose's; the core schema's `!!str` and the like keep
/// their old meaning (the scalar's text); any other tag is refused rather than ignored.
fn read_tag(tag: Option<yaml_rust2::parser::Tag>) -> Result<Option<Tag>, String> {
    let Some(t) = tag else { return Ok(None) };
    match (t.handle.as_str(), t.suffix.as_str()) {
        ("!", "reset") => Ok(Some(Tag::Reset)),
        ("!", "override") => Ok(Some(Tag::Override)),
        ("!!", _) | ("tag:yaml.org,2002:", _) => Ok(None),
        (h, x) => Err(format!(
            "unknown YAML tag `{h}{x}`: Compose knows `!reset` (drop the value set by an \
             earlier file) and `!override` (replace it instead of merging)"
        )),
    }
}

/// A mapping key as a string that is equal for equal keys, so that duplicate and merge
/// checks are one hash lookup each rather than a scan of every earlier key.
fn key_id(n: &Node, out: &mut String) {
    match &n.kind {
        Kind::Null => out.push('~'),
        Kind::Scalar { value, plain } => {
            out.push(if *plain { 'p' } else { 'q' });
            out.push_str(&value.len().to_string());
            out.push(':');
            out.push_str(value);
        }
        Kind::Seq(items) => {
            out.push('[');
            for it in items {
                key_id(it, out);
                out.push(',');
            }
            out.push(']');
        }
        Kind::Map(entries) => {
            out.push('{');
            for (k, v) in entries {
                key_id(k, out);
                out.push(':');
                key_id(v, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

fn key_of(n: &Node) -> String {
    let mut s = String::new();
    key_id(n, &mut s);
    s
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize, size: Size) {
        if anchor > 0 {
            self.kept += size.nodes;
            self.bytes += size.bytes;
            if self.check_totals(node.pos) {
                self.anchors.insert(anchor, (node.clone(), size));
            }
        }
        let is_key = matches!(self.stack.last(), Some(Frame::Map(_, None, ..)));
        if let Some(k) = node.as_str().filter(|k| is_key && k.len() > MAX_KEY_BYTES) {
            let len = k.len();
            self.fail(
                node.pos,
                &format!(
                    "refused: a mapping key of {len} bytes, over the limit of {MAX_KEY_BYTES} \
                     bytes for a key"
                ),
            );
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, _, _, total, _)) => {
                total.add(size);
                items.push(node);
            }
            Some(Frame::Map(entries, pending, _, _, total, _)) => {
                total.add(size);
                match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => entries.push((key, node)),
                }
            }
        }
    }

    /// False (and the error set) when the tree has grown past a limit.
    fn check_totals(&mut self, at: Pos) -> bool {
        if self.nodes + self.kept > MAX_NODES {
            self.fail(
                at,
                &format!(
                    "refused: the file expands to more than {MAX_NODES} YAML nodes \
                     (anchors and aliases included); write the repeated parts out or use \
                     fewer aliases"
                ),
            );
            return false;
        }
        if self.bytes > MAX_TEXT_BYTES {
            self.fail(
                at,
                &format!(
                    "refused: the file expands to more than {} MiB of text (anchors and \
                     aliases included)",
                    MAX_TEXT_BYTES / (1024 * 1024)
                ),
            );
            return false;
        }
        true
    }

    fn alias(&mut self, id: usize, at: Pos) {
        let Some(size) = self.anchors.get(&id).map(|(_, s)| *s) else {
            self.fail(at, "alias refers to an unknown anchor");
            return;
        };
        if self.stack.len() + size.height > MAX_DEPTH {
            self.fail(
                at,
                &format!(
                    "refused: this alias nests the tree deeper than {MAX_DEPTH} levels \
                     (the limit on nesting)"
                ),
            );
            return;
        }
        self.nodes += size.nodes;
        self.aliased += size.nodes;
        self.bytes += size.bytes;
        if self.aliased > 100
            && self.nodes > 1000
            && self.aliased as f64 / self.nodes as f64 > allowed_alias_ratio(self.nodes)
        {
            self.fail(
                at,
                &format!(
                    "excessive aliasing: refused at this alias, which brings the expanded \
                     tree to {} nodes, {} of them copied by aliases (a YAML alias bomb?); \
                     at most {:.0}% of a file's nodes may come from aliases",
                    self.nodes,
                    self.aliased,
                    allowed_alias_ratio(self.nodes) * 100.0
                ),
            );
            return;
        }
        if !self.check_totals(at) {
            return;
        }
        if let Some((node, _)) = self.anchors.get(&id) {
            let mut node = node.clone();
            node.pos = at;
            self.push_value(node, 0, size);
        }
    }

    fn open(&mut self, frame: Frame, at: Pos) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(at, &too_deep());
            return;
        }
        self.nodes += 1;
        if self.check_totals(at) {
            self.stack.push(frame);
        }
    }

    fn finish_map(&mut self, entries: Vec<(Node, Node)>, at: Pos) -> Node {
        let mut own: Vec<(Node, Node)> = Vec::new();
        let mut own_keys: HashSet<String> = HashSet::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        let mut merged_keys: HashSet<String> = HashSet::new();
        let mut merge_seen = false;
        for (k, v) in entries {
            let is_merge = matches!(&k.kind, Kind::Scalar { value, plain: true } if value == "<<");
            if is_merge {
                // docker-compose 1.29 takes the last `<<`, compose-go refuses the second:
                // refuse it rather than pick a winner silently.
                if std::mem::replace(&mut merge_seen, true) {
                    self.fail(
                        k.pos,
                        "duplicate key `<<`: a mapping takes one merge key; list the sources \
                         in one, `<<: [*first, *second]` (earlier ones win)",
                    );
                }
                let sources: Vec<Node> = match v.kind {
                    Kind::Seq(items) => items,
                    _ => vec![v],
                };
                for src in sources {
                    match src.kind {
                        Kind::Map(m) => {
                            for (mk, mv) in m {
                                // Earlier merge sources win over later ones.
                                if merged_keys.insert(key_of(&mk)) {
                                    merged.push((mk, mv));
                                }
                            }
                        }
                        _ => self.fail(src.pos, "a `<<` merge key must refer to a mapping"),
                    }
                }
                continue;
            }
            if !own_keys.insert(key_of(&k)) {
                let name = k.as_str().unwrap_or("?").to_string();
                self.fail(
                    k.pos,
                    &format!("duplicate key `{name}`: remove one of the two entries"),
                );
            }
            own.push((k, v));
        }
        for (mk, mv) in merged {
            if own_keys.insert(key_of(&mk)) {
                own.push((mk, mv));
            }
        }
        Node::new(Kind::Map(own), at)
    }

    fn fail(&mut self, at: Pos, message: &str) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos: at,
                message: message.to_string(),
            });
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = pos(mark, self.file);
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let Some(tag) = self.tag(tag, at) else { return };
                self.scalar(value, style, anchor, tag, at)
            }
            Event::Alias(id) => self.alias(id, at),
            Event::SequenceStart(anchor, tag) => {
                let Some(tag) = self.tag(tag, at) else { return };
                let one = Size {
                    nodes: 1,
                    ..Size::default()
                };
                self.open(Frame::Seq(Vec::new(), at, anchor, one, tag), at)
            }
            Event::MappingStart(anchor, tag) => {
                let Some(tag) = self.tag(tag, at) else { return };
                let one = Size {
                    nodes: 1,
                    ..Size::default()
                };
                self.open(Frame::Map(Vec::new(), None, at, anchor, one, tag), at)
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, p, anchor, size, tag)) = self.stack.pop() {
                    let mut node = Node::new(Kind::Seq(items), p);
                    node.tag = tag;
                    self.push_value(node, anchor, size);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, p, anchor, size, tag)) = self.stack.pop() {
                    let mut node = self.finish_map(entries, p);
                    node.tag = tag;
                    self.push_value(node, anchor, size);
                }
            }
            _ => {}
        }
    }
}

impl Builder {
    /// The node's merge tag; None (and the error set) for a tag Compose does not know.
    fn tag(&mut self, tag: Option<yaml_rust2::parser::Tag>, at: Pos) -> Option<Option<Tag>> {
        match read_tag(tag) {
            Ok(t) => Some(t),
            Err(m) => {
                self.fail(at, &m);
                None
            }
        }
    }

    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<Tag>,
        at: Pos,
    ) {
        let plain = style == TScalarStyle::Plain;
        let size = Size {
            nodes: 1,
            bytes: value.len(),
            height: 0,
        };
        self.nodes += 1;
        self.bytes += value.len();
        if !self.check_totals(at) {
            return;
        }
        let kind = if plain && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL") {
            Kind::Null
        } else {
            Kind::Scalar { value, plain }
        };
        let mut node = Node::new(kind, at);
        node.tag = tag;
        self.push_value(node, anchor, size);
    }
}

/// Parses the first YAML document of `src`. An empty document gives `Kind::Null`.
///
/// Events are pulled one at a time (yaml-rust2's own `load` recurses once per level, so a
/// deep file would overflow the stack before any limit is checked) and the build stops
/// at the first error, so that a hostile file costs at most the limits above.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    parse_file(src, 0)
}

/// [`parse`] for the project's file number `file`: every position carries that index.
pub fn parse_file(src: &str, file: u16) -> Result<Node, SyntaxError> {
    let first = Pos {
        line: 1,
        col: 1,
        file,
    };
    if src.len() > MAX_FILE_BYTES {
        return Err(SyntaxError {
            pos: first,
            message: format!(
                "refused: the file is {} bytes, over the limit of {} MiB for a compose file",
                src.len(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        });
    }
    let mut builder = Builder {
        file,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(src);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            pos: pos(*e.marker(), file),
            // The scanner reads flow collections (`[[[`) ahead of the parser and has its
            // own cap on their depth, past ours: the same limit for the reader.
            message: if e.info() == "recursion limit exceeded" {
                too_deep()
            } else {
                e.info().to_string()
            },
        })?;
        // Only the first document is read, as `docker compose` does with one file.
        if matches!(ev, Event::StreamEnd | Event::DocumentEnd) {
            break;
        }
        builder.on_event(ev, mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
    }
    Ok(builder
        .docs
        .into_iter()
        .next()
        .unwrap_or(Node::new(Kind::Null, first)))
}

#[cfg(test)]
mod tests {
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
        let root =
            parse("a: !reset null\nb: !reset []\nc: !override {x: 1}\nd: !!str 5\ne: !reset\n")
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
}
