use super::*;

#[test]
fn test_latencies_percentiles_of_1_to_100_ms_are_within_two_percent() {
    let mut l = Latencies::default();
    for ms in 1..=100 {
        l.add(Duration::from_millis(ms));
    }
    let p95 = l.percentile_ms(95.0);
    assert!((93.0..=95.0).contains(&p95), "p95 {p95}");
    let p50 = l.percentile_ms(50.0);
    assert!((49.0..=50.0).contains(&p50), "p50 {p50}");
}

#[test]
fn test_latencies_empty_is_zero() {
    assert_eq!(Latencies::default().percentile_ms(99.0), 0.0);
}

#[test]
fn test_latencies_bucket_lower_bound_roundtrips() {
    for us in [0u64, 63, 64, 100, 1000, 123_456, 10_000_000] {
        let lb = Latencies::lower_bound(Latencies::bucket(us));
        assert!(lb <= us && us - lb <= us / 32, "{us} -> {lb}");
    }
}
