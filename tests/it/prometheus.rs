//! The Prometheus corpus: everything valid text carries must survive osmen's parser.
//! The same corpus shows where prometheus-parse 0.2.5 (the crate first chosen) loses it.

use osmen::collect::prometheus::{Kind, parse, quantiles};

use crate::util::root;

fn corpus() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/prometheus/corpus.txt")).unwrap()
}

#[test]
fn osmen_parser_keeps_the_whole_corpus() {
    let fams = parse(&corpus()).unwrap();
    let f = |n: &str| {
        fams.iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let vllm = f("vllm:num_requests_running");
    assert_eq!((vllm.kind, vllm.samples[0].value), (Kind::Gauge, 3.0));
    assert_eq!(vllm.samples[0].label("model_name"), Some("llama-3.1-8b"));
    let http = f("http_requests_total");
    assert_eq!(
        http.help,
        "Requests by path; the help text has a \\ backslash."
    );
    assert_eq!(http.samples[0].label("msg"), Some("say \"hi\", then go"));
    assert_eq!(http.samples[0].timestamp, Some(1_700_000_000_000.0));
    assert_eq!(http.samples[1].label("path"), Some("/a=b,c=d"));
    assert_eq!(http.samples[1].label("note"), Some("line1\nline2"));
    let s = f("osmen_request_duration_seconds");
    assert_eq!(s.kind, Kind::Summary);
    assert_eq!(s.samples.len(), 5, "_sum and _count belong to the summary");
    let q = quantiles(s, &[]);
    assert_eq!(
        q.iter().map(|x| (x.1, x.2)).collect::<Vec<_>>(),
        vec![(0.5, 2.4), (0.95, 6.8), (0.99, 12.3)]
    );
    let h = f("rpc_latency_seconds");
    assert_eq!((h.kind, h.samples.len()), (Kind::Histogram, 6));
    let hq = quantiles(h, &[0.5, 0.95]);
    assert!(
        (hq[0].2 - 0.3).abs() < 1e-9 && (hq[1].2 - 0.75).abs() < 1e-9,
        "{hq:?}"
    );
    let t = f("temperature_celsius");
    assert!(t.samples[0].value.is_nan());
    assert_eq!(t.samples[1].value, f64::INFINITY);
    assert_eq!(t.samples[2].value, f64::NEG_INFINITY);
    assert_eq!(f("untyped_metric_without_type_line").kind, Kind::Untyped);
    assert_eq!(
        f("escaped_backslash").samples[0].label("path"),
        Some("C:\\temp\\")
    );
    assert_eq!(f("spaced_labels").samples[0].label("b"), Some("2"));
    assert!(
        fams.iter().all(|f| f.name != "ignored_after_eof"),
        "# EOF ends the exposition"
    );
}

#[test]
fn bad_lines_name_their_line() {
    let e = parse("ok 1\nbroken{a=\"x} 2\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = parse("m{a=1} 2\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1: label a: value must be quoted",
        "the line and the label"
    );
    assert!(
        matches!(e.problem, osmen::collect::prometheus::SampleError::Unquoted(ref k) if k == "a")
    );
    assert!(parse("m notanumber\n").is_err());
}

/// prometheus-parse 0.2.5 on the same corpus: these are the losses that made osmen
/// write its own parser. If a later version fixes them, this test says so.
#[test]
fn prometheus_parse_0_2_5_loses_valid_input() {
    let text = corpus();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    assert!(
        !names.contains(&"vllm:num_requests_running"),
        "prometheus-parse now keeps names with colons"
    );
    let msg = scrape
        .samples
        .iter()
        .find(|s| s.metric == "http_requests_total")
        .and_then(|s| s.labels.get("msg").map(str::to_string));
    assert_ne!(
        msg.as_deref(),
        Some("say \"hi\", then go"),
        "prometheus-parse now unescapes quotes"
    );
}
