//! The state behind `GET /health`: the latest result of each probe, judged within a freshness
//! window, so a health check never calls SalesLoft itself.
//!
//! A result is *connected* when SalesLoft sent an HTTP response whose status is neither 401 nor
//! 403 (the credential is rejected) nor 5xx (SalesLoft failed). Any other status counts,
//! including 429: SalesLoft responded and accepted the credential, and the rate limit only delays
//! work (the `Rate limited` rule pages for it). A 404 or a failed body assertion is a probe
//! problem, not a broken connection. Timeouts and connection, DNS and TLS failures have no
//! response and are not connected.
//!
//! loftwatch is healthy when the latest result of at least one probe finished within the
//! freshness window and is connected. Before the first result it is degraded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use crate::config::{ProbeSpec, Schedule};
use crate::probe::ProbeResult;
use crate::probe::next_cron_after;

/// Smallest freshness window derived from the probe schedules.
pub const MIN_HEALTH_FRESHNESS: Duration = Duration::from_secs(30);

/// How many probe periods a result stays fresh: one late or lost run does not flip `/health`.
const FRESH_PERIODS: u32 = 3;

/// Returns whether a result shows a working connection to SalesLoft (see the module docs).
pub fn is_connected(result: &ProbeResult) -> bool {
    match result.status {
        Some(401 | 403) => false,
        Some(status) => !(500..600).contains(&status),
        None => false,
    }
}

/// Returns the freshness window used when `server.health_freshness` is not set: three times
/// the shortest probe period, and at least [`MIN_HEALTH_FRESHNESS`]. The period of a cron probe
/// is the gap between its next two runs from now.
pub fn default_health_freshness(probes: &[ProbeSpec]) -> Duration {
    let shortest = probes.iter().filter_map(probe_period).min();
    match shortest {
        Some(period) => (period * FRESH_PERIODS).max(MIN_HEALTH_FRESHNESS),
        None => MIN_HEALTH_FRESHNESS,
    }
}

fn probe_period(probe: &ProbeSpec) -> Option<Duration> {
    match &probe.schedule {
        Schedule::Interval { every, .. } => Some(*every),
        Schedule::Cron { cron, zone, .. } => {
            let first = next_cron_after(cron, *zone, Utc::now())?;
            let second = next_cron_after(cron, *zone, first)?;
            (second - first).to_std().ok()
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    finished: Instant,
    connected: bool,
    latency: Duration,
}

/// Health of the SalesLoft connection, as `/health` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthReport {
    /// Whether a fresh result of at least one probe is connected.
    pub connected: bool,
    /// Latency of the most recent fresh connected result, when `connected`.
    pub latency: Option<Duration>,
}

/// The latest result of every probe, shared by the daemon (writer) and the server (reader).
#[derive(Debug)]
pub struct HealthTracker {
    freshness: Duration,
    latest: Mutex<HashMap<Arc<str>, Sample>>,
}

impl HealthTracker {
    /// Creates a tracker whose results count for `freshness` after they finish.
    pub fn new(freshness: Duration) -> HealthTracker {
        HealthTracker {
            freshness,
            latest: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the freshness window.
    pub fn freshness(&self) -> Duration {
        self.freshness
    }

    /// Stores a result as the latest of its probe.
    pub fn record(&self, result: &ProbeResult) {
        let sample = Sample {
            finished: result.finished,
            connected: is_connected(result),
            latency: result.latency,
        };
        let mut latest = self.latest.lock().expect("health lock is never poisoned");
        latest.insert(result.probe.clone(), sample);
    }

    /// Judges the latest results at `now`.
    pub fn report(&self, now: Instant) -> HealthReport {
        let latest = self.latest.lock().expect("health lock is never poisoned");
        let newest_connected = latest
            .values()
            .filter(|sample| sample.connected)
            .filter(|sample| now.saturating_duration_since(sample.finished) <= self.freshness)
            .max_by_key(|sample| sample.finished);
        HealthReport {
            connected: newest_connected.is_some(),
            latency: newest_connected.map(|sample| sample.latency),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::probe::{Outcome, RateLimit};

    fn result(probe: &str, status: Option<u16>, outcome: Outcome, latency_ms: u64) -> ProbeResult {
        ProbeResult {
            probe: Arc::from(probe),
            started_at: SystemTime::now(),
            finished: Instant::now(),
            latency: Duration::from_millis(latency_ms),
            outcome,
            status,
            rate_limit: RateLimit::default(),
            attempts: 1,
            detail: None,
        }
    }

    #[test]
    fn connected_statuses() {
        let cases = [
            (Some(200), Outcome::Ok, true),
            (Some(200), Outcome::AssertionFailed, true),
            (Some(404), Outcome::HttpStatus(4), true),
            (Some(429), Outcome::HttpStatus(4), true),
            (Some(401), Outcome::HttpStatus(4), false),
            (Some(403), Outcome::HttpStatus(4), false),
            (Some(500), Outcome::HttpStatus(5), false),
            (Some(503), Outcome::HttpStatus(5), false),
            (None, Outcome::Timeout, false),
            (None, Outcome::ConnectError, false),
        ];
        for (status, outcome, expected) in cases {
            let result = result("me", status, outcome, 10);
            assert_eq!(is_connected(&result), expected, "{status:?} {outcome}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn report_without_results_is_degraded() {
        let tracker = HealthTracker::new(Duration::from_secs(30));
        let report = tracker.report(Instant::now());
        assert!(!report.connected);
        assert_eq!(report.latency, None);
    }

    #[tokio::test(start_paused = true)]
    async fn report_uses_newest_connected_result() {
        let tracker = HealthTracker::new(Duration::from_secs(30));
        tracker.record(&result("me", Some(200), Outcome::Ok, 120));
        tokio::time::advance(Duration::from_secs(1)).await;
        tracker.record(&result("people", Some(503), Outcome::HttpStatus(5), 40));
        let report = tracker.report(Instant::now());
        assert!(report.connected);
        assert_eq!(report.latency, Some(Duration::from_millis(120)));

        tokio::time::advance(Duration::from_secs(1)).await;
        tracker.record(&result("people", Some(200), Outcome::Ok, 80));
        let report = tracker.report(Instant::now());
        assert_eq!(report.latency, Some(Duration::from_millis(80)));
    }

    #[tokio::test(start_paused = true)]
    async fn report_ignores_stale_results() {
        let tracker = HealthTracker::new(Duration::from_secs(30));
        tracker.record(&result("me", Some(200), Outcome::Ok, 120));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(tracker.report(Instant::now()).connected);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!tracker.report(Instant::now()).connected);
    }

    #[tokio::test(start_paused = true)]
    async fn report_turns_degraded_on_latest_failure() {
        let tracker = HealthTracker::new(Duration::from_secs(30));
        tracker.record(&result("me", Some(200), Outcome::Ok, 120));
        tokio::time::advance(Duration::from_secs(1)).await;
        tracker.record(&result("me", Some(401), Outcome::HttpStatus(4), 30));
        assert!(!tracker.report(Instant::now()).connected);
    }

    #[test]
    fn default_freshness_from_intervals() {
        let config = crate::config::parse(
            "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"20s\"\n\
             [[probe]]\nname = \"people\"\npath = \"/v2/people.json\"\ninterval = \"1m\"\n",
            "test.toml",
        )
        .expect("valid configuration");
        assert_eq!(
            default_health_freshness(&config.probes),
            Duration::from_secs(60)
        );
        let fast = crate::config::parse(
            "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"2s\"\n",
            "test.toml",
        )
        .expect("valid configuration");
        assert_eq!(default_health_freshness(&fast.probes), MIN_HEALTH_FRESHNESS);
    }

    #[test]
    fn default_freshness_from_cron() {
        let config = crate::config::parse(
            "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"*/5 * * * *\"\n",
            "test.toml",
        )
        .expect("valid configuration");
        assert_eq!(
            default_health_freshness(&config.probes),
            Duration::from_secs(15 * 60)
        );
    }
}
