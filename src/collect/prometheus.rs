//! Prometheus text exposition (0.0.4) and OpenMetrics parsing, written here because
//! prometheus-parse 0.2.5 drops valid input (names with colons, escaped quotes) and
//! mis-splits label values holding `,` or `=` (`tests/it/prometheus.rs` proves it on the
//! corpus). Also: quantiles from summaries, and `histogram_quantile` over bucket deltas.

use std::collections::BTreeMap;

use crate::model::agent::{AgentRow, ModelUse};
use crate::model::agent_error::{
    ERRORS_METRIC, LAST_ERROR_INFO_METRIC, LAST_ERROR_TIMESTAMP_METRIC, WINDOW_ERRORS_METRIC,
    WINDOW_REQUESTS_METRIC, error_percent, failing,
};
use crate::model::metric::{
    ACTIVE_USERS, AGENT_COST_PROJECTION_MONTHLY_DOLLARS, AGENT_CPU_SECONDS_TOTAL,
    AGENT_DURATION_SECONDS, AGENT_EXECUTION_SECONDS, AGENT_MEMORY_BYTES, AGENT_MEMORY_PEAK_BYTES,
    AGENT_MODEL_COMPLETION_TOKENS_TOTAL, AGENT_MODEL_COST_DOLLARS_TOTAL, AGENT_MODEL_INFO,
    AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS, AGENT_MODEL_LOAD_SECONDS,
    AGENT_MODEL_PROMPT_TOKENS_TOTAL, AGENT_MODEL_REQUESTS_TOTAL, AGENT_MODEL_SECONDS_TOTAL,
    AGENT_QUEUE_WAIT_SECONDS, AGENT_REQUESTS_PER_ACTIVE_USER, AGENT_REQUESTS_PROJECTION_DAILY,
    AGENT_TOKENS_PER_SECOND, AGENT_TTFT_SECONDS, CACHE_HITS_TOTAL, INFLIGHT,
    LLM_COST_DOLLARS_TOTAL, PROJECTION_WINDOW_SECONDS, PROVIDER_CIRCUIT_STATE, QUEUE_DEPTH,
    REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, TOKENS_USED_TOTAL,
};

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

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn parse_value(s: &str) -> Option<f64> {
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
fn parse_sample(line: &str) -> Result<Sample, String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && is_name_char(b[i], i == 0) {
        i += 1;
    }
    if i == 0 {
        return Err(format!("expected a metric name at {line:?}"));
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
                return Err("unterminated label set".into());
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
                return Err(format!("bad label name at column {}", i + 1));
            }
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(format!("expected = after label {key}"));
            }
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'"' {
                return Err(format!("label {key}: value must be quoted"));
            }
            i += 1;
            let mut val = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(format!("label {key}: unterminated value")),
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
                            None => return Err(format!("label {key}: dangling escape")),
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
    let v = parts.next().ok_or("missing value")?;
    let value = parse_value(v).ok_or_else(|| format!("bad value {v:?}"))?;
    let timestamp = match parts.next() {
        // OpenMetrics exemplars start with '#': not part of the sample.
        Some(t) if !t.starts_with('#') => Some(
            t.parse::<f64>()
                .map_err(|_| format!("bad timestamp {t:?}"))?,
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
        let s = parse_sample(line).map_err(|message| ParseError {
            line: n + 1,
            message,
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

/// `histogram_quantile`: `buckets` are (upper bound, cumulative count), in any order.
/// Linear interpolation inside the bucket that holds the rank, as Prometheus does.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last()?.1;
    if total <= 0.0 || b.len() < 2 || !b.last()?.0.is_infinite() {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (i, &(le, count)) in b.iter().enumerate() {
        if count >= rank {
            if le.is_infinite() {
                // The rank is in the open-ended bucket: the last finite bound is the answer.
                return Some(b.get(i.wrapping_sub(1)).map(|x| x.0).unwrap_or(0.0));
            }
            let lower = if i == 0 { 0.0f64.min(le) } else { prev.0 };
            let in_bucket = count - prev.1;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - prev.1) / in_bucket);
        }
        prev = (le, count);
    }
    None
}

/// Quantile series of one family: (labels without `quantile`/`le`, q, value). Summaries
/// give their own quantiles; histograms are computed from their (cumulative) buckets.
pub fn quantiles(f: &Family, qs: &[f64]) -> Vec<(Labels, f64, f64)> {
    let mut out = Vec::new();
    match f.kind {
        Kind::Summary => {
            for s in f.samples.iter().filter(|s| s.name == f.name) {
                if let Some(q) = s.label("quantile").and_then(|q| q.parse::<f64>().ok()) {
                    let rest = s
                        .labels
                        .iter()
                        .filter(|(k, _)| k != "quantile")
                        .cloned()
                        .collect();
                    out.push((rest, q, s.value));
                }
            }
        }
        Kind::Histogram | Kind::GaugeHistogram => {
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
                let Some(le) = s.label("le").and_then(parse_value) else {
                    continue;
                };
                let rest: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k != "le")
                    .cloned()
                    .collect();
                series.entry(rest).or_default().push((le, s.value));
            }
            for (labels, buckets) in series {
                for q in qs {
                    if let Some(v) = histogram_quantile(*q, &buckets) {
                        out.push((labels.clone(), *q, v));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// Bucket deltas between two scrapes of one histogram series (for a sliding window):
/// each bound's count now minus then. A counter reset (count went down) gives `now`.
pub fn bucket_delta(then: &[(f64, f64)], now: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let reset = now
        .iter()
        .any(|(le, c)| then.iter().any(|(l2, c2)| l2 == le && c2 > c));
    if reset {
        return now.to_vec();
    }
    now.iter()
        .map(|(le, c)| {
            let before = then
                .iter()
                .find(|(l2, _)| l2 == le)
                .map(|x| x.1)
                .unwrap_or(0.0);
            (*le, c - before)
        })
        .collect()
}

/// Per-agent figures from a gateway's /metrics: requests, in flight and P50/P95/P99.
pub fn agents_from(fams: &[Family]) -> Vec<AgentRow> {
    let mut by: BTreeMap<String, AgentRow> = BTreeMap::new();
    // The last error's message per kind, until the kind of the last error is known.
    let mut messages: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in fams {
        for s in &f.samples {
            let Some(agent) = s.label("agent") else {
                continue;
            };
            let e = by
                .entry(agent.to_string())
                .or_insert_with(|| AgentRow::new(agent));
            match (s.name.as_str(), s.label("quantile"), s.label("status")) {
                (REQUEST_DURATION_SECONDS, Some(q), _) => {
                    let slot = match q {
                        "0.5" => &mut e.p50_seconds,
                        "0.95" => &mut e.p95_seconds,
                        "0.99" => &mut e.p99_seconds,
                        _ => continue,
                    };
                    *slot = Some((!s.value.is_nan()).then_some(s.value));
                }
                (REQUESTS_TOTAL, _, Some(st)) => {
                    e.requests.insert(st.to_string(), s.value);
                }
                (INFLIGHT, _, _) => e.inflight = Some(s.value),
                (QUEUE_DEPTH, _, _) => e.queued = Some(s.value),
                (ERRORS_METRIC, _, _) => {
                    e.errors_total = Some(e.errors_total.unwrap_or(0.0) + s.value);
                    if let Some(kind) = s.label("kind") {
                        e.errors_by_kind.insert(kind.to_string(), s.value);
                    }
                }
                (WINDOW_REQUESTS_METRIC, _, _) => e.window_requests = Some(s.value),
                (WINDOW_ERRORS_METRIC, _, _) => e.window_errors = Some(s.value),
                (LAST_ERROR_TIMESTAMP_METRIC | LAST_ERROR_INFO_METRIC, _, _) => {
                    last_error(e, messages.entry(agent.to_string()).or_default(), s);
                }
                (AGENT_CPU_SECONDS_TOTAL, _, _) => e.cpu_seconds_total = Some(s.value),
                (AGENT_MEMORY_BYTES, _, _) => e.memory_bytes = Some(s.value),
                (AGENT_MEMORY_PEAK_BYTES, _, _) => e.memory_peak_bytes = Some(s.value),
                (AGENT_TOKENS_PER_SECOND | AGENT_TTFT_SECONDS, Some(q), _) => {
                    let ttft = s.name == AGENT_TTFT_SECONDS;
                    let slot = match (q, ttft) {
                        ("0.5", true) => &mut e.ttft_p50_seconds,
                        ("0.95", true) => &mut e.ttft_p95_seconds,
                        ("0.99", true) => &mut e.ttft_p99_seconds,
                        ("0.5", false) => &mut e.tokens_per_second_p50,
                        ("0.95", false) => &mut e.tokens_per_second_p95,
                        ("0.99", false) => &mut e.tokens_per_second_p99,
                        _ => continue,
                    };
                    *slot = Some(finite(s.value));
                }
                (TOKENS_USED_TOTAL, _, _) => match s.label("kind") {
                    Some("prompt") => e.prompt_tokens_total = Some(s.value),
                    Some("completion") => e.completion_tokens_total = Some(s.value),
                    _ => {}
                },
                (LLM_COST_DOLLARS_TOTAL, _, _) => e.cost_dollars_total = Some(s.value),
                (CACHE_HITS_TOTAL, _, _) => e.cache_hits_total = Some(s.value),
                (AGENT_REQUESTS_PER_ACTIVE_USER, _, _) => {
                    e.per_active_user_requests = Some(finite(s.value));
                }
                (AGENT_REQUESTS_PROJECTION_DAILY, _, _) => {
                    e.projected_daily_requests = Some(finite(s.value));
                }
                (AGENT_COST_PROJECTION_MONTHLY_DOLLARS, _, _) => {
                    e.projected_monthly_cost_dollars = Some(finite(s.value));
                }
                (name, _, _) if name.starts_with("osmen_agent_model_") => {
                    let (Some(p), Some(m)) = (s.label("provider"), s.label("model")) else {
                        continue;
                    };
                    let known = [
                        AGENT_MODEL_INFO,
                        AGENT_MODEL_REQUESTS_TOTAL,
                        AGENT_MODEL_PROMPT_TOKENS_TOTAL,
                        AGENT_MODEL_COMPLETION_TOKENS_TOTAL,
                        AGENT_MODEL_COST_DOLLARS_TOTAL,
                        AGENT_MODEL_SECONDS_TOTAL,
                        AGENT_MODEL_LOAD_SECONDS,
                        AGENT_MODEL_LAST_USED_TIMESTAMP_SECONDS,
                    ];
                    if !known.contains(&name) {
                        continue;
                    }
                    let i = match e
                        .models
                        .iter()
                        .position(|x| x.provider == p && x.model == m)
                    {
                        Some(i) => i,
                        None => {
                            e.models.push(ModelUse {
                                provider: p.to_string(),
                                model: m.to_string(),
                                ..Default::default()
                            });
                            e.models.len() - 1
                        }
                    };
                    let mu = &mut e.models[i];
                    let v = Some(s.value);
                    match name {
                        AGENT_MODEL_INFO => {
                            if let Some(r) = s.label("role") {
                                mu.role = Some(r.to_string());
                            }
                            mu.order = Some(s.label("order").and_then(|o| o.parse::<u64>().ok()));
                        }
                        AGENT_MODEL_REQUESTS_TOTAL => mu.requests = v,
                        AGENT_MODEL_PROMPT_TOKENS_TOTAL => mu.prompt_tokens = v,
                        AGENT_MODEL_COMPLETION_TOKENS_TOTAL => mu.completion_tokens = v,
                        AGENT_MODEL_COST_DOLLARS_TOTAL => mu.cost_dollars = v,
                        AGENT_MODEL_SECONDS_TOTAL => mu.seconds_total = v,
                        AGENT_MODEL_LOAD_SECONDS => mu.load_seconds = v,
                        _ => mu.last_used = v,
                    }
                }
                _ => {}
            }
        }
    }
    // The providers' circuit breakers, marked on each model an agent uses.
    let circuits: BTreeMap<String, f64> = fams
        .iter()
        .find(|f| f.name == PROVIDER_CIRCUIT_STATE)
        .map(|f| {
            f.samples
                .iter()
                .filter_map(|s| Some((s.label("provider")?.to_string(), s.value)))
                .collect()
        })
        .unwrap_or_default();
    by.into_values()
        .map(|mut e| {
            per_request(&mut e);
            let m = messages.remove(&e.agent);
            window_failures(&mut e, m);
            if !circuits.is_empty() {
                let mut failing = Vec::new();
                for m in e.models.iter_mut() {
                    let state = match circuits.get(&m.provider).copied() {
                        Some(v) if v >= 2.0 => "open",
                        Some(v) if v >= 1.0 => "half-open",
                        Some(_) => "closed",
                        None => continue,
                    };
                    m.circuit = Some(state.to_string());
                    if state != "closed" && !failing.contains(&m.provider) {
                        failing.push(m.provider.clone());
                    }
                }
                e.providers_failing = Some(failing);
            }
            e
        })
        .collect()
}

/// The last error from its two families: the timestamp (the latest wins: merged
/// replicas each keep theirs) gives `last_error_at` and `last_error_kind`; the info
/// series of that kind gives `last_error`, the message.
fn last_error(e: &mut AgentRow, messages: &mut BTreeMap<String, String>, s: &Sample) {
    let Some(kind) = s.label("kind") else {
        return;
    };
    if s.name == LAST_ERROR_TIMESTAMP_METRIC {
        let newer = e.last_error_at.is_none_or(|t| s.value > t);
        if newer && s.value.is_finite() {
            e.last_error_at = Some(s.value);
            e.last_error_kind = Some(kind.to_string());
        }
    } else if let Some(m) = s.label("message") {
        messages.insert(kind.to_string(), m.to_string());
    }
}

/// The share of the window's requests that failed, whether the agent is FAILING, and
/// the message of the last error's kind.
fn window_failures(e: &mut AgentRow, messages: Option<BTreeMap<String, String>>) {
    if let (Some(n), Some(err)) = (e.window_requests, e.window_errors) {
        if let Some(p) = error_percent(n, err) {
            e.window_error_percent = Some(p);
        }
        e.failing = Some(failing(n, err));
    }
    if let Some(m) = messages
        .as_ref()
        .zip(e.last_error_kind.as_ref())
        .and_then(|(messages, k)| messages.get(k))
    {
        e.last_error = Some(m.clone());
    }
}

/// A gauge's value, None when it is not a number (no observation).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Tokens and cost per answered request, for the agent and for each provider and model;
/// models in the order the agent tries them, then those only seen answering.
fn per_request(e: &mut AgentRow) {
    // Per answered request, cache hits included (they use no tokens and cost nothing).
    let calls = e.requests.get("success").copied().unwrap_or(0.0);
    if calls > 0.0 {
        let tokens =
            e.prompt_tokens_total.unwrap_or(0.0) + e.completion_tokens_total.unwrap_or(0.0);
        e.tokens_per_request = Some(tokens / calls);
        e.cost_per_request_dollars = Some(e.cost_dollars_total.unwrap_or(0.0) / calls);
    }
    for m in e.models.iter_mut() {
        let n = m.requests.unwrap_or(0.0);
        if n > 0.0 {
            let tokens = m.prompt_tokens.unwrap_or(0.0) + m.completion_tokens.unwrap_or(0.0);
            m.tokens_per_request = Some(tokens / n);
            m.cost_per_request_dollars = Some(m.cost_dollars.unwrap_or(0.0) / n);
            m.mean_seconds = Some(m.seconds_total.unwrap_or(0.0) / n);
        }
    }
    e.models
        .sort_by_key(|m| m.order.flatten().unwrap_or(u64::MAX));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MergeRule {
    Sum,
    Max,
    Drop,
}

/// How one family's samples combine across replicas.
fn merge_rule(f: &Family) -> MergeRule {
    let n = f.name.as_str();
    match f.kind {
        Kind::Counter | Kind::Histogram | Kind::Summary => MergeRule::Sum,
        // Distinct users and per-user ratios do not add up across processes.
        _ if n == ACTIVE_USERS || n == AGENT_REQUESTS_PER_ACTIVE_USER => MergeRule::Drop,
        // Points in time, facts, the longest load and one process's peak: the largest.
        _ if n.ends_with("_timestamp_seconds")
            || n.ends_with("_timestamp")
            || n.ends_with("_info")
            || n.ends_with("_peak_bytes")
            || n == AGENT_MODEL_LOAD_SECONDS
            || n == PROJECTION_WINDOW_SECONDS =>
        {
            MergeRule::Max
        }
        // In flight, queued, memory held, projections: the total over the replicas.
        _ => MergeRule::Sum,
    }
}

/// The families of several replicas of one service as one: every counter and histogram
/// bucket (and a summary's `_sum` and `_count`) summed over the replicas per identical
/// label set, so that quantiles computed from the merged buckets are those of all
/// requests together. Quantile samples (a summary's, or a gauge's) are left out:
/// percentiles cannot be added or averaged into a percentile. Gauges are summed (in
/// flight, queued, memory), except timestamps, facts and peaks (the largest) and counts
/// of distinct users (left out: a user seen by two replicas would count twice). `le`
/// bounds are matched by value (`0.5` and `0.50` agree).
pub fn merge(replicas: &[Vec<Family>]) -> Vec<Family> {
    let mut order: Vec<String> = Vec::new();
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    // (family, sample name, labels with `le` normalised) -> index in the family's samples
    let mut index: BTreeMap<(String, String, Labels), usize> = BTreeMap::new();
    for fs in replicas {
        for f in fs {
            let rule = merge_rule(f);
            if rule == MergeRule::Drop {
                continue;
            }
            let merged = fams.entry(f.name.clone()).or_insert_with(|| {
                order.push(f.name.clone());
                Family {
                    name: f.name.clone(),
                    kind: f.kind,
                    help: f.help.clone(),
                    samples: Vec::new(),
                }
            });
            for smp in &f.samples {
                if smp.label("quantile").is_some() {
                    continue;
                }
                let key_labels: Labels = smp
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        if k == "le" {
                            let norm = parse_value(v).map(|x| x.to_string());
                            (k.clone(), norm.unwrap_or_else(|| v.clone()))
                        } else {
                            (k.clone(), v.clone())
                        }
                    })
                    .collect();
                let key = (f.name.clone(), smp.name.clone(), key_labels);
                match index.get(&key) {
                    Some(&i) if rule == MergeRule::Max => {
                        let v = &mut merged.samples[i].value;
                        *v = v.max(smp.value);
                    }
                    Some(&i) => merged.samples[i].value += smp.value,
                    None => {
                        index.insert(key, merged.samples.len());
                        merged.samples.push(Sample {
                            timestamp: None,
                            ..smp.clone()
                        });
                    }
                }
            }
        }
    }
    order.into_iter().filter_map(|n| fams.remove(&n)).collect()
}

/// How far back histogram quantiles look (bucket deltas over this window).
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

type SeriesKey = (String, Labels);
/// The buckets of every histogram series in one scrape.
type BucketMap = BTreeMap<SeriesKey, Vec<(f64, f64)>>;

/// One target's recent histogram scrapes, for windowed quantiles.
#[derive(Default)]
pub struct Windowed {
    scrapes: std::collections::VecDeque<(std::time::Instant, BucketMap)>,
}

fn label_text(l: &[(String, String)]) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Windowed {
    /// Latency series of one scrape: summaries as reported, histograms over the bucket
    /// deltas since the oldest scrape still inside the window.
    pub fn latencies(
        &mut self,
        fams: &[Family],
        now: std::time::Instant,
    ) -> Vec<crate::model::snapshot::LatencySeries> {
        use crate::model::snapshot::LatencySeries;
        let mut out = Vec::new();
        let mut buckets: BucketMap = BTreeMap::new();
        for f in fams {
            match f.kind {
                Kind::Summary => {
                    let mut by: BTreeMap<String, [Option<f64>; 3]> = BTreeMap::new();
                    for (l, q, v) in quantiles(f, &[]) {
                        let slot = by.entry(label_text(&l)).or_default();
                        let i = if (q - 0.5).abs() < 1e-9 {
                            0
                        } else if (q - 0.95).abs() < 1e-9 {
                            1
                        } else if (q - 0.99).abs() < 1e-9 {
                            2
                        } else {
                            continue;
                        };
                        slot[i] = (!v.is_nan()).then_some(v);
                    }
                    for (labels, [p50, p95, p99]) in by {
                        out.push(LatencySeries {
                            family: f.name.clone(),
                            labels,
                            p50,
                            p95,
                            p99,
                            source: "summary".into(),
                        });
                    }
                }
                Kind::Histogram => {
                    for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
                        let Some(le) = s.label("le").and_then(parse_value) else {
                            continue;
                        };
                        let rest: Labels = s
                            .labels
                            .iter()
                            .filter(|(k, _)| k != "le")
                            .cloned()
                            .collect();
                        buckets
                            .entry((f.name.clone(), rest))
                            .or_default()
                            .push((le, s.value));
                    }
                }
                _ => {}
            }
        }
        while self
            .scrapes
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.scrapes.pop_front();
        }
        for ((fam, labels), now_b) in &buckets {
            let delta = match self
                .scrapes
                .front()
                .and_then(|(_, m)| m.get(&(fam.clone(), labels.clone())))
            {
                Some(then) => bucket_delta(then, now_b),
                None => now_b.clone(),
            };
            // With nothing observed in the window (osmen started after the traffic), the
            // figures since the process started, said as such, rather than none.
            let idle = histogram_quantile(0.5, &delta).is_none();
            let used = if idle { now_b } else { &delta };
            let q = |x: f64| histogram_quantile(x, used);
            out.push(LatencySeries {
                family: fam.clone(),
                labels: label_text(labels),
                p50: q(0.5),
                p95: q(0.95),
                p99: q(0.99),
                source: if self.scrapes.is_empty() {
                    "histogram, since start".into()
                } else if idle {
                    "histogram, since start (none in the last 60 s)".into()
                } else {
                    "histogram, last 60 s".into()
                },
            });
        }
        self.scrapes.push_back((now, buckets));
        out
    }
}

/// The merged row's window, one per set of replicas: sums over another set are not
/// comparable (a replica gone would look like a counter reset), so a change of replicas
/// starts a new window.
fn merged_key(g: &ReplicaGroup, answering: usize) -> String {
    let members: Vec<&str> = g.members.iter().map(|(n, _)| n.as_str()).collect();
    format!("merged:{}:{answering}:{}", g.service, members.join(","))
}

/// How long the first scrape waits for the first list of replicas.
const FIRST_GROUPS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The running replicas of one scaled service, each with its /metrics URL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaGroup {
    pub service: String,
    /// (container name, URL)
    pub members: Vec<(String, String)>,
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<Family>, String> {
    let t = client
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    parse(&t).map_err(|e| e.to_string())
}

fn target_row(
    url: &str,
    r: &Result<Vec<Family>, String>,
    lat: Vec<crate::model::snapshot::LatencySeries>,
) -> crate::model::snapshot::ScrapeTarget {
    crate::model::snapshot::ScrapeTarget {
        url: url.to_string(),
        replica_of: None,
        name: None,
        up: r.is_ok(),
        error: r.as_ref().err().cloned(),
        families: r.as_ref().map(|f| f.len()).unwrap_or(0),
        samples: r
            .as_ref()
            .map(|f| f.iter().map(|x| x.samples.len()).sum())
            .unwrap_or(0),
        latencies: lat,
    }
}

/// The wait for a provider slot and the time a slot was held, P50/P95/P99 per agent, from
/// the windowed `osmen_agent_queue_wait_seconds` and `osmen_agent_execution_seconds`
/// buckets. Only figures of the last 60 s are shown: none while the window is empty.
pub fn attach_waits(rows: &mut [AgentRow], lat: &[crate::model::snapshot::LatencySeries]) {
    for a in rows.iter_mut() {
        let labels = format!("agent={}", a.agent);
        let window = |family: &str| {
            lat.iter().find(|l| {
                l.family == family && l.labels == labels && l.source == "histogram, last 60 s"
            })
        };
        let wait = window(AGENT_QUEUE_WAIT_SECONDS);
        a.wait_p50_seconds = wait.and_then(|l| l.p50);
        a.wait_p95_seconds = wait.and_then(|l| l.p95);
        a.wait_p99_seconds = wait.and_then(|l| l.p99);
        let exec = window(AGENT_EXECUTION_SECONDS);
        a.execution_p50_seconds = exec.and_then(|l| l.p50);
        a.execution_p95_seconds = exec.and_then(|l| l.p95);
        a.execution_p99_seconds = exec.and_then(|l| l.p99);
    }
}

/// Per-agent figures of a replica group: the merged counters, and P50/P95/P99 from the
/// merged histogram buckets over the window (the replicas' own summaries cannot be
/// combined). Agents are named `service/agent`, apart from the embedded gateway's.
pub fn group_agents(
    service: &str,
    replicas: usize,
    merged: &[Family],
    lat: &[crate::model::snapshot::LatencySeries],
) -> Vec<AgentRow> {
    let mut agents = agents_from(merged);
    attach_waits(&mut agents, lat);
    for a in agents.iter_mut() {
        let name = a.agent.clone();
        let series = lat
            .iter()
            .find(|l| l.family == AGENT_DURATION_SECONDS && l.labels == format!("agent={name}"));
        a.p50_seconds = Some(series.and_then(|l| l.p50));
        a.p95_seconds = Some(series.and_then(|l| l.p95));
        a.p99_seconds = Some(series.and_then(|l| l.p99));
        a.agent = format!("{service}/{name}");
        a.replicas = Some(replicas as u64);
        a.latency_source = Some(format!(
            "merged histogram buckets of {replicas} replica(s), {}",
            series
                .map(|l| l.source.as_str())
                .unwrap_or("no requests yet")
        ));
    }
    agents
}

/// The rows of one replica of a scaled service, named `service/agent@container`, with
/// `group_agent` naming their merged row.
pub fn replica_rows(service: &str, name: &str, rows: Vec<AgentRow>) -> Vec<AgentRow> {
    rows.into_iter()
        .map(|mut a| {
            a.group_agent = Some(format!("{service}/{}", a.agent));
            a.agent = format!("{service}/{}@{name}", a.agent);
            a.replica = Some(name.to_string());
            a
        })
        .collect()
}

/// Scrapes every target each `period`: latency series for the snapshot's `scrapes`, and
/// per-agent figures from any osmen gateway among them. The replicas of a scaled service
/// (`groups`, kept current by the caller) are scraped one by one, shown one row each, and
/// merged into one row whose counters are summed and whose percentiles come from the
/// summed buckets.
pub async fn run_targets(
    urls: Vec<String>,
    groups: tokio::sync::watch::Receiver<Vec<ReplicaGroup>>,
    period: std::time::Duration,
    tx: tokio::sync::mpsc::Sender<crate::hub::Update>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::hub::Update;
    let client = crate::http::client(|b| b.timeout(std::time::Duration::from_secs(2)));
    let mut windows: BTreeMap<String, Windowed> = BTreeMap::new();
    // The first scrape waits (a little) for the first look at the replicas, so that a
    // one-shot `status` sees them; without an engine the sender is gone at once.
    let mut groups = groups;
    let _ = tokio::time::timeout(FIRST_GROUPS_WAIT, groups.changed()).await;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = std::time::Instant::now();
        let mut agents = Vec::new();
        let mut targets = Vec::new();
        let mut down = Vec::new();
        for u in &urls {
            let r = fetch(&client, u).await;
            let lat = match &r {
                Ok(f) => {
                    let lat = windows.entry(u.clone()).or_default().latencies(f, now);
                    let mut rows = agents_from(f);
                    attach_waits(&mut rows, &lat);
                    agents.extend(rows);
                    lat
                }
                Err(e) => {
                    down.push(format!("{u}: {e}"));
                    Vec::new()
                }
            };
            targets.push(target_row(u, &r, lat));
        }
        let current = groups.borrow().clone();
        let mut per_replica = Vec::new();
        for g in &current {
            let mut fams = Vec::new();
            for (name, u) in &g.members {
                let r = fetch(&client, u).await;
                let lat = match &r {
                    Ok(f) => windows.entry(u.clone()).or_default().latencies(f, now),
                    Err(e) => {
                        down.push(format!("{name} ({u}): {e}"));
                        Vec::new()
                    }
                };
                let mut rows = r.as_ref().map(|f| agents_from(f)).unwrap_or_default();
                attach_waits(&mut rows, &lat);
                let mut row = target_row(u, &r, lat);
                row.replica_of = Some(g.service.clone());
                row.name = Some(name.clone());
                targets.push(row);
                if let Ok(f) = r {
                    per_replica.extend(replica_rows(&g.service, name, rows));
                    fams.push(f);
                }
            }
            if fams.is_empty() {
                continue;
            }
            let merged = merge(&fams);
            let key = merged_key(g, fams.len());
            let lat = windows
                .entry(key.clone())
                .or_default()
                .latencies(&merged, now);
            agents.extend(group_agents(&g.service, fams.len(), &merged, &lat));
            let mut row = target_row(&key, &Ok(merged), lat);
            row.replica_of = Some(g.service.clone());
            row.name = Some(format!("merged ({} replicas)", fams.len()));
            targets.push(row);
        }
        // Replicas that went away take their windows with them.
        windows.retain(|k, _| {
            urls.contains(k)
                || current.iter().any(|g| {
                    k.starts_with(&format!("merged:{}:", g.service))
                        || g.members.iter().any(|(_, u)| u == k)
                })
        });
        let _ = tx.send(Update::Agents(agents)).await;
        let _ = tx.send(Update::ReplicaAgents(per_replica)).await;
        let _ = tx.send(Update::Scrapes(targets)).await;
        let health = if down.is_empty() {
            Ok(())
        } else {
            Err(format!("unavailable: {}", down.join("; ")))
        };
        let _ = tx.send(Update::Source("scrape", health)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_for_a_slot_is_the_windows_and_none_without_requests_in_it() {
        let text = |n: f64, slow: f64| {
            format!(
                "# TYPE osmen_agent_queue_wait_seconds histogram\n\
                 osmen_agent_queue_wait_seconds_bucket{{agent=\"a\",le=\"0.1\"}} {n}\n\
                 osmen_agent_queue_wait_seconds_bucket{{agent=\"a\",le=\"1\"}} {}\n\
                 osmen_agent_queue_wait_seconds_bucket{{agent=\"a\",le=\"+Inf\"}} {}\n\
                 osmen_agent_queue_wait_seconds_sum{{agent=\"a\"}} 1\n\
                 osmen_agent_queue_wait_seconds_count{{agent=\"a\"}} {}\n",
                n + slow,
                n + slow,
                n + slow
            )
        };
        let mut w = Windowed::default();
        let t0 = std::time::Instant::now();
        // Since start: 100 short waits, before the console looked.
        let first = parse(&text(100.0, 0.0)).unwrap();
        let lat = w.latencies(&first, t0);
        let mut rows = vec![AgentRow::new("a")];
        attach_waits(&mut rows, &lat);
        assert!(
            rows[0].wait_p95_seconds.is_none(),
            "no window yet: {:?}",
            rows[0]
        );
        // Then 100 waits between 0.1 and 1 s: the window holds only those.
        let second = parse(&text(100.0, 100.0)).unwrap();
        let lat = w.latencies(&second, t0 + std::time::Duration::from_secs(2));
        attach_waits(&mut rows, &lat);
        let p95 = rows[0].wait_p95_seconds.unwrap();
        assert!((p95 - 0.955).abs() < 1e-9, "{p95}");
        assert!(rows[0].execution_p95_seconds.is_none());
    }

    #[test]
    fn merged_replicas_sum_counters_and_buckets_and_drop_summary_quantiles() {
        let a = parse(
            "# TYPE r counter\nr{agent=\"x\"} 3\n# TYPE d histogram\n\
             d_bucket{agent=\"x\",le=\"0.1\"} 1\nd_bucket{agent=\"x\",le=\"0.5\"} 2\n\
             d_bucket{agent=\"x\",le=\"+Inf\"} 3\nd_sum{agent=\"x\"} 0.9\nd_count{agent=\"x\"} 3\n\
             # TYPE s summary\ns{quantile=\"0.5\"} 0.2\ns_sum 1\ns_count 4\n\
             # TYPE osmen_active_users gauge\nosmen_active_users 2\n\
             # TYPE t_timestamp_seconds gauge\nt_timestamp_seconds 100\n\
             # TYPE osmen_inflight gauge\nosmen_inflight 2\n",
        )
        .unwrap();
        let b = parse(
            "# TYPE r counter\nr{agent=\"x\"} 4\nr{agent=\"y\"} 1\n# TYPE d histogram\n\
             d_bucket{agent=\"x\",le=\"0.10\"} 0\nd_bucket{agent=\"x\",le=\"0.5\"} 5\n\
             d_bucket{agent=\"x\",le=\"+Inf\"} 7\nd_sum{agent=\"x\"} 3\nd_count{agent=\"x\"} 7\n\
             # TYPE s summary\ns{quantile=\"0.5\"} 0.9\ns_sum 2\ns_count 5\n\
             # TYPE osmen_active_users gauge\nosmen_active_users 3\n\
             # TYPE t_timestamp_seconds gauge\nt_timestamp_seconds 250\n\
             # TYPE osmen_inflight gauge\nosmen_inflight 1\n",
        )
        .unwrap();
        let m = merge(&[a, b]);
        // Gauges: in flight adds up, a timestamp is the latest, distinct users are left
        // out (a user of two replicas would count twice).
        assert!(m.iter().all(|f| f.name != "osmen_active_users"));
        let get = |fam: &str, name: &str, label: Option<(&str, &str)>| -> f64 {
            m.iter()
                .find(|f| f.name == fam)
                .unwrap()
                .samples
                .iter()
                .find(|s| s.name == name && label.is_none_or(|(k, v)| s.label(k) == Some(v)))
                .unwrap()
                .value
        };
        assert_eq!(get("r", "r", Some(("agent", "x"))), 7.0);
        assert_eq!(get("r", "r", Some(("agent", "y"))), 1.0);
        assert_eq!(get("osmen_inflight", "osmen_inflight", None), 3.0);
        assert_eq!(
            get("t_timestamp_seconds", "t_timestamp_seconds", None),
            250.0
        );
        assert_eq!(get("d", "d_bucket", Some(("le", "0.1"))), 1.0);
        assert_eq!(get("d", "d_bucket", Some(("le", "0.5"))), 7.0);
        assert_eq!(get("d", "d_count", None), 10.0);
        assert_eq!(get("s", "s_count", None), 9.0);
        let s = m.iter().find(|f| f.name == "s").unwrap();
        assert!(s.samples.iter().all(|x| x.label("quantile").is_none()));
        // The merged P50 is that of all ten requests: rank 5 falls in (0.1, 0.5].
        let q = quantiles(m.iter().find(|f| f.name == "d").unwrap(), &[0.5]);
        assert!(
            (q[0].2 - (0.1 + 0.4 * (5.0 - 1.0) / 6.0)).abs() < 1e-12,
            "{q:?}"
        );
    }

    #[test]
    fn histogram_quantile_matches_prometheus() {
        // 10 in (0, 0.1], 80 in (0.1, 0.5], 10 in (0.5, 1].
        let b = [
            (0.1, 10.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((histogram_quantile(0.5, &b).unwrap() - 0.3).abs() < 1e-9);
        assert!((histogram_quantile(0.95, &b).unwrap() - 0.75).abs() < 1e-9);
        assert!((histogram_quantile(0.05, &b).unwrap() - 0.05).abs() < 1e-9);
        let open = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &open), Some(0.1));
        assert_eq!(histogram_quantile(0.5, &[(f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn deltas_and_resets() {
        let then = [(0.1, 5.0), (f64::INFINITY, 10.0)];
        let now = [(0.1, 7.0), (f64::INFINITY, 20.0)];
        assert_eq!(
            bucket_delta(&then, &now),
            vec![(0.1, 2.0), (f64::INFINITY, 10.0)]
        );
        let reset = [(0.1, 1.0), (f64::INFINITY, 2.0)];
        assert_eq!(bucket_delta(&then, &reset), reset.to_vec());
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn histogram_quantiles_come_from_the_window_deltas() {
        let page = |fast: u64, slow: u64| {
            format!(
                "# TYPE lat histogram\nlat_bucket{{le=\"0.1\"}} {fast}\nlat_bucket{{le=\"1\"}} {}\nlat_bucket{{le=\"+Inf\"}} {}\n",
                fast + slow,
                fast + slow
            )
        };
        let t0 = std::time::Instant::now();
        let mut w = Windowed::default();
        // Since start: 1000 fast requests.
        let first = w.latencies(&parse(&page(1000, 0)).unwrap(), t0);
        assert!(first[0].p99.unwrap() <= 0.1);
        // In the window only slow ones arrive: the window's P50 is in (0.1, 1].
        let later = w.latencies(
            &parse(&page(1000, 100)).unwrap(),
            t0 + std::time::Duration::from_secs(10),
        );
        let p50 = later[0].p50.unwrap();
        assert!((0.1..=1.0).contains(&p50) && p50 > 0.5, "{p50}");
        assert_eq!(later[0].source, "histogram, last 60 s");
    }
}
