//! A YAML tree that remembers where every node came from.
//!
//! Compose errors must name the line and column of the bad value, which typed serde
//! deserialisers forget. This module folds yaml-rust2's parser events into a small tree
//! with positions, resolves anchors and aliases, and applies `<<` merge keys.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts in the source (both 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
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
}

impl Node {
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

/// A syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq(Vec<Node>, Pos, usize),
    Map(Vec<(Node, Node)>, Option<Node>, Pos, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    error: Option<SyntaxError>,
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 markers count lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(items, ..)) => items.push(node),
            Some(Frame::Map(entries, pending, ..)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }

    fn finish_map(&mut self, entries: Vec<(Node, Node)>, at: Pos) -> Node {
        let mut own: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        for (k, v) in entries {
            let is_merge = matches!(&k.kind, Kind::Scalar { value, plain: true } if value == "<<");
            if is_merge {
                let sources: Vec<Node> = match v.kind {
                    Kind::Seq(items) => items,
                    _ => vec![v],
                };
                for src in sources {
                    match src.kind {
                        Kind::Map(m) => {
                            for (mk, mv) in m {
                                // Earlier merge sources win over later ones.
                                if !merged.iter().any(|(x, _)| x.kind == mk.kind) {
                                    merged.push((mk, mv));
                                }
                            }
                        }
                        _ => self.fail(src.pos, "a `<<` merge key must refer to a mapping"),
                    }
                }
                continue;
            }
            if own.iter().any(|(x, _)| x.kind == k.kind) {
                let name = k.as_str().unwrap_or("?").to_string();
                self.fail(
                    k.pos,
                    &format!("duplicate key `{name}`: remove one of the two entries"),
                );
            }
            own.push((k, v));
        }
        for (mk, mv) in merged {
            if !own.iter().any(|(x, _)| x.kind == mk.kind) {
                own.push((mk, mv));
            }
        }
        Node {
            kind: Kind::Map(own),
            pos: at,
        }
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
        let at = pos(mark);
        match ev {
            Event::Scalar(value, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let kind = if plain && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Kind::Null
                } else {
                    Kind::Scalar { value, plain }
                };
                self.push_value(Node { kind, pos: at }, anchor);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.pos = at;
                    self.push_value(node, 0);
                }
                None => self.fail(at, "alias refers to an unknown anchor"),
            },
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), at, anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Vec::new(), None, at, anchor))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, p, anchor)) = self.stack.pop() {
                    self.push_value(
                        Node {
                            kind: Kind::Seq(items),
                            pos: p,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(entries, _, p, anchor)) = self.stack.pop() {
                    let node = self.finish_map(entries, p);
                    self.push_value(node, anchor);
                }
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document gives `Kind::Null`.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut builder, false) {
        return Err(SyntaxError {
            pos: pos(*e.marker()),
            message: e.info().to_string(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs.into_iter().next().unwrap_or(Node {
        kind: Kind::Null,
        pos: Pos { line: 1, col: 1 },
    }))
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
        assert_eq!(b.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert!(err.message.contains("duplicate key `a`"));
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
}
