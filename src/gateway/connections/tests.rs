use super::*;

#[test]
fn the_cap_leaves_a_reserve_within_the_soft_limit() {
    assert_eq!(effective_cap(4096, 1024), 768);
    assert_eq!(effective_cap(4096, 1_048_576), 4096);
    assert_eq!(effective_cap(100, 1024), 100);
    assert_eq!(effective_cap(4096, 300), 150);
    assert_eq!(effective_cap(4096, 1), 1);
}

#[test]
fn the_sweeper_looks_often_enough_for_each_timeout() {
    let mut s = Settings {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4096,
    };
    assert_eq!(s.sweep_period(), Duration::from_millis(500));
    s.header_read_timeout = Duration::from_secs(1);
    assert_eq!(s.sweep_period(), Duration::from_millis(50));
    s.idle_timeout = Duration::from_millis(100);
    assert_eq!(s.sweep_period(), Duration::from_millis(20));
}

#[test]
fn a_body_timeout_is_found_behind_the_errors_that_wrap_it() {
    let boxed: Box<dyn std::error::Error + Send + Sync> =
        Box::new(BodyTimeout(Duration::from_secs(3)));
    let wrapped = axum::Error::new(boxed);
    let found = BodyTimeout::find(&wrapped).map(|t| t.0);
    assert_eq!(found, Some(Duration::from_secs(3)));
    let other = io::Error::other("reset");
    assert!(BodyTimeout::find(&other).is_none());
}
