use super::*;
use crate::model::agent::AgentRow;

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

#[test]
fn calls_in_flight_to_ollama_are_read_from_the_gateways_gauge() {
    let text = "# TYPE osmen_provider_in_flight gauge\n\
                osmen_provider_in_flight{provider=\"ollama\"} 6\n\
                osmen_provider_in_flight{provider=\"openai\"} 2\n";
    assert_eq!(ollama_in_flight(&parse(text).unwrap()), Some(6));
    let other = "osmen_provider_in_flight{provider=\"openai\"} 2\n";
    assert_eq!(ollama_in_flight(&parse(other).unwrap()), None);
    assert_eq!(
        ollama_in_flight(&parse("osmen_inflight{agent=\"a\"} 1\n").unwrap()),
        None
    );
}
