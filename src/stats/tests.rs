//! Recorder and window tests on a paused clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Filter, Recorder, StatusOp};
use crate::probe::{Outcome, ProbeResult, RateLimit};

const MINUTE: Duration = Duration::from_secs(60);

fn result(probe: &str, finished: Instant, latency_ms: u64, status: Option<u16>) -> ProbeResult {
    let outcome = match status {
        Some(200) => Outcome::Ok,
        Some(code) => Outcome::from_status(code),
        None => Outcome::Timeout,
    };
    ProbeResult {
        probe: Arc::from(probe),
        started_at: SystemTime::UNIX_EPOCH,
        finished,
        latency: Duration::from_millis(latency_ms),
        outcome,
        status,
        rate_limit: RateLimit::default(),
        attempts: 1,
        detail: None,
    }
}

fn recorder() -> Recorder {
    Recorder::new(Duration::from_secs(600), Duration::from_secs(3600))
}

#[tokio::test(start_paused = true)]
async fn window_bounds_are_open_then_closed() {
    let mut recorder = recorder();
    let start = Instant::now();
    recorder.record(&result("me", start, 100, Some(401)));
    recorder.record(&result("me", start + MINUTE, 100, Some(401)));
    let filter = Filter::Status(StatusOp::Eq, 401);

    // At start + 60 s the first result sits exactly on the open lower bound.
    assert_eq!(
        recorder.window("me", start + MINUTE, MINUTE).count(&filter),
        1
    );
    let just_before = start + MINUTE - Duration::from_nanos(1);
    assert_eq!(recorder.window("me", just_before, MINUTE).count(&filter), 1);
    assert_eq!(recorder.window("me", just_before, MINUTE).total(), 1);
    assert_eq!(recorder.window("me", start, MINUTE).count(&filter), 1);
    assert_eq!(
        recorder
            .window("me", start - Duration::from_nanos(1), MINUTE)
            .total(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn sliding_count_spans_minute_boundary() {
    let mut recorder = recorder();
    let start = Instant::now();
    let filter = Filter::Status(StatusOp::Eq, 429);
    // Six results in the last 20 s of one minute, six in the first 20 s of the next.
    for i in 0..6 {
        recorder.record(&result(
            "me",
            start + Duration::from_secs(40 + 3 * i),
            90,
            Some(429),
        ));
    }
    for i in 0..6 {
        recorder.record(&result(
            "me",
            start + Duration::from_secs(61 + 3 * i),
            90,
            Some(429),
        ));
    }
    let now = start + Duration::from_secs(80);
    assert_eq!(recorder.window("me", now, MINUTE).count(&filter), 12);
    assert_eq!(
        recorder.window("me", now, MINUTE).rate_per_minute(&filter),
        12.0
    );
    assert_eq!(
        recorder
            .window("me", now, 5 * MINUTE)
            .rate_per_minute(&filter),
        2.4
    );
}

#[tokio::test(start_paused = true)]
async fn quantile_is_nearest_rank() {
    let mut recorder = recorder();
    let now = Instant::now();
    for latency in [2500, 100, 100, 100, 100] {
        recorder.record(&result("me", now, latency, Some(200)));
    }
    let window = recorder.window("me", now, MINUTE);
    assert_eq!(window.quantile(0.99), Some(Duration::from_millis(2500)));
    assert_eq!(window.quantile(0.8), Some(Duration::from_millis(100)));
    assert_eq!(window.quantile(0.81), Some(Duration::from_millis(2500)));
    assert_eq!(window.quantile(0.0), Some(Duration::from_millis(100)));
    assert_eq!(window.max(), Some(Duration::from_millis(2500)));
}

#[tokio::test(start_paused = true)]
async fn empty_window_has_no_quantile() {
    let mut recorder = recorder();
    let now = Instant::now();
    assert_eq!(recorder.window("me", now, MINUTE).quantile(0.5), None);
    assert_eq!(recorder.window("me", now, MINUTE).max(), None);
    assert_eq!(recorder.window("me", now, MINUTE).ratio(&Filter::All), None);

    let mut refused = result("me", now, 0, None);
    refused.outcome = Outcome::ConnectError;
    recorder.record(&refused);
    let window = recorder.window("me", now, MINUTE);
    assert_eq!(window.total(), 1);
    assert_eq!(window.samples(), 0);
    assert_eq!(window.quantile(0.99), None);
}

#[tokio::test(start_paused = true)]
async fn latency_above_max_is_clamped() {
    let mut recorder = Recorder::new(Duration::from_secs(600), Duration::from_secs(3600));
    let now = Instant::now();
    recorder.record(&result("me", now, 3_600_000, Some(200)));
    recorder.record(&result("me", now, 100, Some(200)));
    assert_eq!(recorder.overflow_count("me"), 1);
    assert_eq!(recorder.overflow_count("other"), 0);
    let window = recorder.window("me", now, MINUTE);
    assert_eq!(window.samples(), 2);
    assert_eq!(window.max(), Some(Duration::from_secs(600)));
    assert_eq!(window.quantile(0.99), Some(Duration::from_secs(600)));
}

#[tokio::test(start_paused = true)]
async fn ratio_counts_share_of_results() {
    let mut recorder = recorder();
    let now = Instant::now();
    for status in [Some(200), Some(200), Some(503), None] {
        recorder.record(&result("me", now, 100, status));
    }
    let failures = Filter::Outcome {
        outcome: Outcome::Ok,
        equal: false,
    };
    assert_eq!(
        recorder.window("me", now, MINUTE).ratio(&failures),
        Some(0.5)
    );
    assert_eq!(recorder.window("me", now, MINUTE).count(&Filter::All), 4);
}

#[tokio::test(start_paused = true)]
async fn old_results_are_dropped_after_retention() {
    let mut recorder = Recorder::new(Duration::from_secs(600), 5 * MINUTE);
    let start = Instant::now();
    recorder.record(&result("me", start, 100, Some(200)));
    recorder.record(&result("me", start + 4 * MINUTE, 100, Some(200)));
    assert_eq!(recorder.len("me"), 2);
    recorder.record(&result("me", start + 5 * MINUTE, 100, Some(200)));
    assert_eq!(recorder.len("me"), 2);
    recorder.remove_probe("me");
    assert_eq!(recorder.len("me"), 0);
    assert!(recorder.is_empty());
}

#[tokio::test(start_paused = true)]
async fn late_result_is_inserted_in_order() {
    let mut recorder = recorder();
    let start = Instant::now();
    recorder.record(&result(
        "me",
        start + Duration::from_secs(30),
        100,
        Some(200),
    ));
    recorder.record(&result("me", start, 100, Some(500)));
    let window = recorder.window("me", start + Duration::from_secs(70), MINUTE);
    assert_eq!(window.total(), 1);
    assert_eq!(window.count(&Filter::Status(StatusOp::Eq, 200)), 1);
}

#[tokio::test(start_paused = true)]
async fn thousand_probes_fit_in_ten_megabytes() {
    let mut recorder = Recorder::new(Duration::from_secs(600), Duration::from_secs(3600));
    let start = Instant::now();
    let names: Vec<String> = (0..1000).map(|i| format!("probe-{i}")).collect();
    // One result every 10 s for an hour, per probe.
    for step in 0..360u64 {
        let finished = start + Duration::from_secs(10 * step);
        for name in &names {
            recorder.record(&result(name, finished, 120, Some(200)));
        }
    }
    assert_eq!(recorder.len("probe-0"), 360);
    let bytes = recorder.heap_bytes();
    assert!(bytes < 10 << 20, "recorder uses {bytes} bytes");
}
