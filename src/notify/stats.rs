//! Live counters of each receiver: deliveries, failures by reason and request latency.
//!
//! The notifier's tasks write them with atomics, and the Prometheus and OTLP exporters read
//! snapshots, so counting does not wait for an exporter.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets of the notification latency histogram. They span a
/// local relay (milliseconds) to a request that runs into the default 10 s timeout.
pub const NOTIFICATION_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Latency samples kept for the OTLP exporter between two reads; older ones are dropped.
const MAX_UNEXPORTED_SAMPLES: usize = 10_000;

/// Why a delivery attempt failed: the `reason` label of the error metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The request or SMTP session ran into its timeout.
    Timeout,
    /// The connection was refused, reset or the host did not resolve.
    Connect,
    /// The receiver responded with a 4xx status other than 401 and 403.
    Http4xx,
    /// The receiver responded with a 5xx status.
    Http5xx,
    /// The TLS handshake failed.
    Tls,
    /// The receiver rejected the credentials: HTTP 401 or 403, or SMTP AUTH.
    Auth,
    /// Anything else, such as a notification that cannot be rendered.
    Other,
}

impl FailureReason {
    /// Every reason, in the order of [`ReceiverCounts::errors`].
    pub const ALL: [FailureReason; 7] = [
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::Http4xx,
        FailureReason::Http5xx,
        FailureReason::Tls,
        FailureReason::Auth,
        FailureReason::Other,
    ];

    /// Returns the label value: `timeout`, `connect`, `http_4xx`, `http_5xx`, `tls`, `auth` or
    /// `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Http4xx => "http_4xx",
            FailureReason::Http5xx => "http_5xx",
            FailureReason::Tls => "tls",
            FailureReason::Auth => "auth",
            FailureReason::Other => "other",
        }
    }

    fn index(self) -> usize {
        FailureReason::ALL
            .iter()
            .position(|reason| *reason == self)
            .unwrap_or(FailureReason::ALL.len() - 1)
    }
}

/// A snapshot of the latency histogram of one receiver's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyCounts {
    /// Count per bucket of [`NOTIFICATION_LATENCY_BUCKETS`], not cumulative; the last entry
    /// counts samples above the last bound.
    pub buckets: [u64; NOTIFICATION_LATENCY_BUCKETS.len() + 1],
    /// Number of samples.
    pub count: u64,
    /// Sum of the samples in microseconds.
    pub sum_micros: u64,
}

/// A snapshot of one receiver's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverCounts {
    /// Notifications delivered. For OTLP, log records the collector accepted.
    pub sent: u64,
    /// Notifications given up: retries exhausted, a permanent rejection, a full queue, or
    /// still queued when the shutdown deadline passed.
    pub failed: u64,
    /// Failed attempts, retried ones included. For OTLP, failed exports of a batch.
    pub attempt_errors: u64,
    /// Failed attempts by reason, in the order of [`FailureReason::ALL`]; they add up to
    /// `attempt_errors`.
    pub errors: [u64; 7],
    /// Notifications handed to the fallback receiver after this one failed past
    /// `fallback_after`.
    pub handed_over: u64,
    /// Notifications queued or being delivered. OTLP records leave this count once the
    /// batch processor has them.
    pub pending: u64,
    /// Duration of every request or SMTP session, failed ones included.
    pub latency: LatencyCounts,
}

impl ReceiverCounts {
    /// Returns the failed attempts of one reason.
    pub fn errors_for(&self, reason: FailureReason) -> u64 {
        self.errors[reason.index()]
    }
}

/// Live counters of one receiver, shared between the notifier, its task and the exporters.
#[derive(Debug, Default)]
pub(crate) struct ReceiverStats {
    sent: AtomicU64,
    failed: AtomicU64,
    attempt_errors: AtomicU64,
    errors: [AtomicU64; 7],
    handed_over: AtomicU64,
    pub(super) pending: AtomicU64,
    latency_buckets: [AtomicU64; NOTIFICATION_LATENCY_BUCKETS.len() + 1],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// Samples not yet taken by [`ReceiverStats::take_latencies`].
    unexported: Mutex<Vec<Duration>>,
}

impl ReceiverStats {
    pub(crate) fn add_sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, count: u64) {
        self.failed.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_attempt_error(&self, reason: FailureReason) {
        self.attempt_errors.fetch_add(1, Ordering::Relaxed);
        self.errors[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn add_handed_over(&self) {
        self.handed_over.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the duration of one request.
    pub(super) fn observe_latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let bucket = NOTIFICATION_LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(NOTIFICATION_LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
        let mut unexported = self
            .unexported
            .lock()
            .expect("latency lock is never poisoned");
        if unexported.len() < MAX_UNEXPORTED_SAMPLES {
            unexported.push(latency);
        }
    }

    /// Returns the latency samples recorded since the last call, for the OTLP histogram.
    pub(super) fn take_latencies(&self) -> Vec<Duration> {
        let mut unexported = self
            .unexported
            .lock()
            .expect("latency lock is never poisoned");
        std::mem::take(&mut *unexported)
    }

    pub(super) fn snapshot(&self) -> ReceiverCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ReceiverCounts {
            sent: load(&self.sent),
            failed: load(&self.failed),
            attempt_errors: load(&self.attempt_errors),
            errors: self.errors.each_ref().map(load),
            handed_over: load(&self.handed_over),
            pending: load(&self.pending),
            latency: LatencyCounts {
                buckets: self.latency_buckets.each_ref().map(load),
                count: load(&self.latency_count),
                sum_micros: load(&self.latency_sum_micros),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_bucket() {
        let stats = ReceiverStats::default();
        stats.observe_latency(Duration::from_millis(3));
        stats.observe_latency(Duration::from_millis(10));
        stats.observe_latency(Duration::from_secs(60));
        let latency = stats.snapshot().latency;
        assert_eq!(latency.buckets[0], 1);
        assert_eq!(latency.buckets[1], 1);
        assert_eq!(latency.buckets[NOTIFICATION_LATENCY_BUCKETS.len()], 1);
        assert_eq!(latency.count, 3);
        assert_eq!(latency.sum_micros, 60_013_000);
        assert_eq!(stats.take_latencies().len(), 3);
        assert!(stats.take_latencies().is_empty());
    }

    #[test]
    fn errors_counted_by_reason() {
        let stats = ReceiverStats::default();
        stats.add_attempt_error(FailureReason::Http5xx);
        stats.add_attempt_error(FailureReason::Http5xx);
        stats.add_attempt_error(FailureReason::Timeout);
        let counts = stats.snapshot();
        assert_eq!(counts.attempt_errors, 3);
        assert_eq!(counts.errors_for(FailureReason::Http5xx), 2);
        assert_eq!(counts.errors_for(FailureReason::Timeout), 1);
        assert_eq!(counts.errors_for(FailureReason::Auth), 0);
    }
}
