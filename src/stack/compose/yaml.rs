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
fn read_tag(tag: Option<yaml_rust2::parser::Tag>) -> Result<Option<Tag>, UnknownTag> {
    let Some(t) = tag else { return Ok(None) };
    match (t.handle.as_str(), t.suffix.as_str()) {
        ("!", "reset") => Ok(Some(Tag::Reset)),
        ("!", "override") => Ok(Some(Tag::Override)),
        ("!!", _) | ("tag:yaml.org,2002:", _) => Ok(None),
        (h, x) => Err(UnknownTag(format!("{h}{x}"))),
    }
}

/// A YAML tag Compose gives no meaning to (refused rather than ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown YAML tag `{0}`: Compose knows `!reset` (drop the value set by an \
     earlier file) and `!override` (replace it instead of merging)"
)]
pub struct UnknownTag(pub String);

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
                self.fail(at, &m.to_string());
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
mod tests;
