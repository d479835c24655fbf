//! The parser: Prometheus text exposition (0.0.4) and OpenMetrics, into families of
//! samples with their labels.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
    GaugeHistogram,
    Info,
    StateSet,
    Untyped,
}

impl Kind {
    fn parse(s: &str) -> Kind {
        match s {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "summary" => Kind::Summary,
            "histogram" => Kind::Histogram,
            "gaugehistogram" => Kind::GaugeHistogram,
            "info" => Kind::Info,
            "stateset" => Kind::StateSet,
            _ => Kind::Untyped,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// Where the exposition text is not valid, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ParseError {
    pub line: usize,
    pub problem: SampleError,
}

/// What is wrong with one sample line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("expected a metric name at {0:?}")]
    NoName(String),
    #[error("unterminated label set")]
    UnterminatedLabels,
    #[error("bad label name at column {0}")]
    BadLabelName(usize),
    #[error("expected = after label {0}")]
    NoEquals(String),
    #[error("label {0}: value must be quoted")]
    Unquoted(String),
    #[error("label {0}: unterminated value")]
    UnterminatedValue(String),
    #[error("label {0}: dangling escape")]
    DanglingEscape(String),
    #[error("missing value")]
    MissingValue,
    #[error("bad value {0:?}")]
    BadValue(String),
    #[error("bad timestamp {0:?}")]
    BadTimestamp(String),
}

pub(super) fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn is_name_char(c: u8, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':' || (!first && c.is_ascii_digit())
}

/// Parses one sample line.
fn parse_sample(line: &str) -> Result<Sample, SampleError> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && is_name_char(b[i], i == 0) {
        i += 1;
    }
    if i == 0 {
        return Err(SampleError::NoName(line.to_string()));
    }
    let name = line[..i].to_string();
    let mut labels = Vec::new();
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                return Err(SampleError::UnterminatedLabels);
            }
            if b[i] == b'}' {
                i += 1;
                break;
            }
            let start = i;
            while i < b.len() && is_name_char(b[i], i == start) {
                i += 1;
            }
            let key = line[start..i].to_string();
            if key.is_empty() {
                return Err(SampleError::BadLabelName(i + 1));
            }
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(SampleError::NoEquals(key));
            }
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'"' {
                return Err(SampleError::Unquoted(key));
            }
            i += 1;
            let mut val = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(SampleError::UnterminatedValue(key)),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match b.get(i + 1) {
                            Some(b'n') => val.push(b'\n'),
                            Some(b'"') => val.push(b'"'),
                            Some(b'\\') => val.push(b'\\'),
                            Some(c) => {
                                val.push(b'\\');
                                val.push(*c);
                            }
                            None => return Err(SampleError::DanglingEscape(key)),
                        }
                        i += 2;
                    }
                    Some(c) => {
                        val.push(*c);
                        i += 1;
                    }
                }
            }
            let val = String::from_utf8(val)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            labels.push((key, val));
        }
    }
    let rest = line[i..].trim();
    let mut parts = rest.split_whitespace();
    let v = parts.next().ok_or(SampleError::MissingValue)?;
    let value = parse_value(v).ok_or_else(|| SampleError::BadValue(v.to_string()))?;
    let timestamp = match parts.next() {
        // OpenMetrics exemplars start with '#': not part of the sample.
        Some(t) if !t.starts_with('#') => Some(
            t.parse::<f64>()
                .map_err(|_| SampleError::BadTimestamp(t.to_string()))?,
        ),
        _ => None,
    };
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
    })
}

/// The family a sample belongs to, given the declared families.
fn family_of<'a>(name: &'a str, declared: &BTreeMap<String, Kind>) -> &'a str {
    if declared.contains_key(name) {
        return name;
    }
    for suffix in [
        "_bucket", "_sum", "_count", "_created", "_total", "_gsum", "_gcount", "_info",
    ] {
        if let Some(base) = name.strip_suffix(suffix)
            && declared.contains_key(base)
        {
            return base;
        }
    }
    name
}

/// Parses a whole exposition. Families keep their order of first appearance.
pub fn parse(text: &str) -> Result<Vec<Family>, ParseError> {
    let mut fams: Vec<Family> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut declared: BTreeMap<String, Kind> = BTreeMap::new();
    // Samples of one family come together: remember the last family's slot.
    let mut last: Option<usize> = None;
    fn slot(
        name: &str,
        kind: Kind,
        fams: &mut Vec<Family>,
        index: &mut BTreeMap<String, usize>,
    ) -> usize {
        if let Some(i) = index.get(name) {
            return *i;
        }
        fams.push(Family {
            name: name.to_string(),
            kind,
            help: String::new(),
            samples: Vec::new(),
        });
        index.insert(name.to_string(), fams.len() - 1);
        fams.len() - 1
    }
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let c = c.trim_start();
            if c == "EOF" {
                break;
            }
            let mut it = c.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("TYPE"), Some(name), Some(t)) => {
                    let k = Kind::parse(t.trim());
                    declared.insert(name.to_string(), k);
                    let i = slot(name, k, &mut fams, &mut index);
                    fams[i].kind = k;
                }
                (Some("HELP"), Some(name), help) => {
                    let i = slot(name, Kind::Untyped, &mut fams, &mut index);
                    fams[i].help = help
                        .unwrap_or("")
                        .replace("\\n", "\n")
                        .replace("\\\\", "\\");
                }
                _ => {}
            }
            continue;
        }
        let s = parse_sample(line).map_err(|problem| ParseError {
            line: n + 1,
            problem,
        })?;
        let same = last.is_some_and(|i| {
            let f = &fams[i].name;
            s.name == *f
                || (s.name.len() > f.len()
                    && s.name.starts_with(f.as_str())
                    && family_of(&s.name, &declared) == f.as_str())
        });
        let i = if same {
            last.unwrap_or(0)
        } else {
            let fam = family_of(&s.name, &declared);
            let kind = declared.get(fam).copied().unwrap_or(Kind::Untyped);
            slot(fam, kind, &mut fams, &mut index)
        };
        fams[i].samples.push(s);
        last = Some(i);
    }
    Ok(fams)
}

/// A label set (name, value) in the order the exposition gave it.
pub type Labels = Vec<(String, String)>;
