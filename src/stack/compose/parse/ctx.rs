//! The loader's context: where each node came from, the variables, the errors so far,
//! and the typed readers every key parser uses.

use super::*;

pub(crate) struct Ctx {
    /// The files the tree was read from, indexed by `Pos::file`.
    pub(crate) sources: Vec<crate::stack::compose::load::Source>,
    /// The project directory.
    pub(crate) dir: PathBuf,
    pub(crate) vars: Vars,
    pub(crate) errors: Vec<ComposeError>,
}

impl Ctx {
    /// The file a node at `pos` came from.
    pub(crate) fn file_of(&self, pos: Pos) -> PathBuf {
        self.sources
            .get(usize::from(pos.file))
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    /// Where a relative path in a value at `pos` resolves: the project directory, or the
    /// directory of the `extends`/`include` file it came from.
    pub(crate) fn dir_of(&self, pos: Pos) -> &Path {
        self.sources
            .get(usize::from(pos.file))
            .map(|s| s.dir.as_path())
            .unwrap_or(&self.dir)
    }

    pub(crate) fn err(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ComposeError {
            file: self.file_of(pos),
            pos: Some(pos),
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(crate) fn scalar(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Scalar { value, .. } => Some(value.clone()),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("expected {what}, found {}", node.type_name()),
                );
                None
            }
        }
    }

    pub(crate) fn map<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            Kind::Map(m) => Some(m),
            Kind::Null => Some(&[]),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("expected a mapping, found {}", node.type_name()),
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let s = self.scalar(node, path, "true or false")?;
        match s.as_str() {
            "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "off" => Some(false),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("expected true or false, found {s:?}"),
                );
                None
            }
        }
    }

    pub(crate) fn uint(&mut self, node: &Node, path: &str) -> Option<u32> {
        let s = self.scalar(node, path, "a whole number")?;
        match s.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    node.pos,
                    path,
                    format!("expected a whole number, found {s:?}"),
                );
                None
            }
        }
    }

    pub(crate) fn duration(&mut self, node: &Node, path: &str) -> Option<std::time::Duration> {
        let s = self.scalar(node, path, "a duration such as \"10s\"")?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(node.pos, path, m);
                None
            }
        }
    }

    pub(crate) fn bytes(&mut self, node: &Node, path: &str) -> Option<u64> {
        let s = self.scalar(node, path, "a size such as \"512m\"")?;
        match parse_bytes(&s) {
            Ok(b) => Some(b),
            Err(m) => {
                self.err(node.pos, path, m);
                None
            }
        }
    }

    pub(crate) fn cpus(&mut self, node: &Node, path: &str) -> Option<f64> {
        let s = self.scalar(node, path, "a number of CPUs such as \"0.5\"")?;
        match s.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Some(v),
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("invalid cpus {s:?}: expected a positive number such as \"0.5\" or 2"),
                );
                None
            }
        }
    }

    /// A command-like value: a string (split like a shell would) or a list of strings.
    pub(crate) fn words(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        match &node.kind {
            Kind::Scalar { value, .. } => match shell_split(value) {
                Ok(w) => Some(w),
                Err(m) => {
                    self.err(node.pos, path, m.to_string());
                    None
                }
            },
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    out.push(self.scalar(it, &format!("{path}[{i}]"), "a string")?);
                }
                Some(out)
            }
            Kind::Null => None,
            Kind::Map(_) => {
                self.err(
                    node.pos,
                    path,
                    "expected a string or a list of strings, found a mapping",
                );
                None
            }
        }
    }

    pub(crate) fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.kind {
            Kind::Scalar { value, .. } => vec![value.clone()],
            Kind::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| self.scalar(it, &format!("{path}[{i}]"), "a string"))
                .collect(),
            Kind::Null => Vec::new(),
            Kind::Map(_) => {
                self.err(
                    node.pos,
                    path,
                    "expected a list of strings, found a mapping",
                );
                Vec::new()
            }
        }
    }

    /// A `KEY: value` mapping or a `["KEY=value"]` list. `from_env` fills bare keys from the
    /// interpolation variables (for `environment`); otherwise bare keys get "".
    pub(crate) fn kv(
        &mut self,
        node: &Node,
        path: &str,
        from_env: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &node.kind {
            Kind::Map(m) => {
                for (k, v) in m {
                    let Some(key) = self.scalar(k, path, "a name") else {
                        continue;
                    };
                    match &v.kind {
                        Kind::Null if from_env => {
                            if let Some(val) = self.vars.get(&key) {
                                out.insert(key, val.clone());
                            }
                        }
                        Kind::Null => {
                            out.insert(key, String::new());
                        }
                        _ => {
                            if let Some(val) = self.scalar(v, &format!("{path}.{key}"), "a value") {
                                out.insert(key, val);
                            }
                        }
                    }
                }
            }
            Kind::Seq(items) => {
                for (i, it) in items.iter().enumerate() {
                    let Some(s) = self.scalar(it, &format!("{path}[{i}]"), "\"KEY=value\"") else {
                        continue;
                    };
                    match s.split_once('=') {
                        Some((k, v)) => {
                            out.insert(k.to_string(), v.to_string());
                        }
                        None if from_env => {
                            if let Some(val) = self.vars.get(&s) {
                                out.insert(s.clone(), val.clone());
                            }
                        }
                        None => {
                            out.insert(s, String::new());
                        }
                    }
                }
            }
            Kind::Null => {}
            Kind::Scalar { .. } => {
                self.err(
                    node.pos,
                    path,
                    "expected a mapping or a list of \"KEY=value\"",
                );
            }
        }
        out
    }
}
