//! Window sizing, jitter and the other small rules of the pool.

use super::slot::{latencies, rss_room};
use super::*;

#[test]
fn test_jittered_batch_of_100_stays_within_ten_percent() {
    let limits: Vec<u64> = (0..1000).map(|r| jittered(100, r)).collect();
    assert_eq!(limits.iter().min(), Some(&90));
    assert_eq!(limits.iter().max(), Some(&110));
}

#[test]
fn test_jittered_batch_of_1_is_1() {
    assert_eq!(jittered(1, 12345), 1);
}

#[test]
fn test_truncate_multibyte_cuts_on_char_boundary() {
    assert_eq!(truncate("ééé", 3), "é…");
}

#[test]
fn test_rss_room_leak_of_8_mib_per_job_stops_at_the_limit() {
    assert_eq!(rss_room(64 << 20, Some(27 << 10), Some(8 << 10)), 4);
}

#[test]
fn test_rss_room_unmeasured_growth_is_two_jobs() {
    assert_eq!(rss_room(64 << 20, Some(27 << 10), None), 2);
}

#[test]
fn test_rss_room_flat_worker_is_unbounded() {
    assert_eq!(rss_room(64 << 20, Some(27 << 10), Some(0)), usize::MAX);
}

#[test]
fn test_rss_room_at_the_limit_is_zero() {
    assert_eq!(rss_room(64 << 20, Some(70 << 10), Some(8 << 10)), 0);
}

#[test]
fn test_latencies_of_a_window_are_times_since_it_was_sent() {
    let job = |us| JobOutcome {
        wall: Duration::from_micros(us),
        ..JobOutcome::failed(Verdict::Ok)
    };

    let walls: Vec<u64> = latencies(vec![job(30), job(0), job(5)])
        .iter()
        .map(|o| o.wall.as_micros() as u64)
        .collect();

    assert_eq!(walls, [30, 30, 35]);
}

#[test]
fn test_recycle_reason_words_are_the_audit_words() {
    let words: Vec<_> = RecycleReason::ALL.iter().map(|r| r.word()).collect();
    assert_eq!(words, ["batch", "rss", "lifetime", "tainted"]);
}
