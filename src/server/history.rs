//! The dashboard's probe history in memory: the latest result of each probe and the per-minute
//! rollups that are not in the database yet.
//!
//! Results are grouped by the wall-clock minute they finished in. The daemon takes the
//! finished minutes once a minute and writes them to the store, and takes every minute at
//! shutdown, so the database contains all history up to the stop. The charts combine the stored
//! rollups with the minutes still held here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::probe::{Outcome, ProbeResult};
use crate::store::MinuteRollup;

/// Length of one rollup, in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// The latest result of one probe, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatestResult {
    /// Probe name.
    pub probe: String,
    /// Outcome class: `ok`, `http_5xx`, `timeout`, ...
    pub outcome: &'static str,
    /// HTTP status code, when a response arrived.
    pub status: Option<u16>,
    /// Latency in milliseconds.
    pub latency_ms: f64,
    /// Wall-clock time the run finished, in milliseconds since the Unix epoch.
    pub finished_ms: i64,
    /// One-line description of what went wrong, with no secret in it.
    pub detail: Option<String>,
}

/// Results of one probe in one minute, being collected.
struct MinuteBuilder {
    count: u64,
    errors: BTreeMap<String, u64>,
    /// Latencies in microseconds.
    latencies: Histogram<u64>,
}

impl MinuteBuilder {
    fn new() -> MinuteBuilder {
        MinuteBuilder {
            count: 0,
            errors: BTreeMap::new(),
            // Three significant digits; the histogram grows to fit any latency.
            latencies: Histogram::new(3).expect("3 significant digits is a valid precision"),
        }
    }

    fn rollup(&self, probe: &str, minute_ms: i64) -> MinuteRollup {
        let samples = self.latencies.len();
        let quantile =
            |q: f64| (samples > 0).then(|| self.latencies.value_at_quantile(q) as f64 / 1000.0);
        MinuteRollup {
            probe: probe.to_owned(),
            minute_ms,
            count: self.count,
            errors: self.errors.clone(),
            latency_samples: samples,
            p50_ms: quantile(0.5),
            p90_ms: quantile(0.9),
            p99_ms: quantile(0.99),
            max_ms: (samples > 0).then(|| self.latencies.max() as f64 / 1000.0),
        }
    }
}

#[derive(Default)]
struct Inner {
    minutes: BTreeMap<(Arc<str>, i64), MinuteBuilder>,
    /// Rollups taken for writing whose write failed; they are written with the next batch.
    unwritten: Vec<MinuteRollup>,
    latest: BTreeMap<Arc<str>, LatestResult>,
}

/// Probe history not yet in the database, shared by the daemon (writer) and the server.
#[derive(Default)]
pub struct ProbeHistory {
    inner: Mutex<Inner>,
}

impl ProbeHistory {
    /// Creates an empty history.
    pub fn new() -> ProbeHistory {
        ProbeHistory::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each update finishes before the lock is released, so a poisoned lock holds whole
        // values and is safe to use.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a result to the minute it finished in and makes it the probe's latest result.
    pub fn record(&self, result: &ProbeResult) {
        let finished = result.started_at + result.latency;
        let finished_ms = epoch_millis(finished);
        let minute_ms = minute_start(finished_ms);
        let mut inner = self.lock();
        let builder = inner
            .minutes
            .entry((result.probe.clone(), minute_ms))
            .or_insert_with(MinuteBuilder::new);
        builder.count += 1;
        if result.outcome != Outcome::Ok {
            *builder
                .errors
                .entry(result.outcome.as_str().to_owned())
                .or_insert(0) += 1;
        }
        if result.outcome.has_latency_sample() {
            let micros = u64::try_from(result.latency.as_micros()).unwrap_or(u64::MAX);
            // `record` grows the histogram to fit; only a value past its hard limit fails,
            // and that one is clamped to the limit.
            if builder.latencies.record(micros.max(1)).is_err() {
                builder.latencies.saturating_record(micros.max(1));
            }
        }
        let latest = LatestResult {
            probe: result.probe.to_string(),
            outcome: result.outcome.as_str(),
            status: result.status,
            latency_ms: result.latency.as_secs_f64() * 1000.0,
            finished_ms,
            detail: result.detail.clone(),
        };
        inner.latest.insert(result.probe.clone(), latest);
    }

    /// Returns the latest result of every probe, by probe name.
    pub fn latest(&self) -> Vec<LatestResult> {
        self.lock().latest.values().cloned().collect()
    }

    /// Forgets the latest result of probes not named in `names`, after a reload removed them.
    pub fn retain_probes(&self, names: &[&str]) {
        self.lock()
            .latest
            .retain(|probe, _| names.contains(&&**probe));
    }

    /// Removes and returns the rollups of minutes that ended at or before `now`, with any
    /// whose earlier write failed. With `all`, the current minute is taken too, for shutdown.
    pub fn take_finished(&self, now: SystemTime, all: bool) -> Vec<MinuteRollup> {
        let current = minute_start(epoch_millis(now));
        let mut inner = self.lock();
        let mut rollups = std::mem::take(&mut inner.unwritten);
        let keys: Vec<(Arc<str>, i64)> = inner
            .minutes
            .keys()
            .filter(|(_, minute)| all || *minute < current)
            .cloned()
            .collect();
        for key in keys {
            if let Some(builder) = inner.minutes.remove(&key) {
                rollups.push(builder.rollup(&key.0, key.1));
            }
        }
        rollups
    }

    /// Keeps rollups whose write failed, so the next [`ProbeHistory::take_finished`] returns
    /// them again and the charts still show them.
    pub fn keep_unwritten(&self, rollups: Vec<MinuteRollup>) {
        self.lock().unwritten.extend(rollups);
    }

    /// Returns the rollups of `probe` held in memory from minute `since_ms` on, oldest first,
    /// with the current minute so far.
    pub fn pending(&self, probe: &str, since_ms: i64) -> Vec<MinuteRollup> {
        let inner = self.lock();
        let mut rollups: Vec<MinuteRollup> = inner
            .unwritten
            .iter()
            .filter(|rollup| rollup.probe == probe && rollup.minute_ms >= since_ms)
            .cloned()
            .collect();
        for ((name, minute), builder) in &inner.minutes {
            if &**name == probe && *minute >= since_ms {
                rollups.push(builder.rollup(name, *minute));
            }
        }
        rollups.sort_by_key(|rollup| rollup.minute_ms);
        rollups
    }
}

/// Merges two lists of rollups of one probe, each ordered by minute, into one list with a
/// single rollup per minute.
pub fn merge_rollups(stored: Vec<MinuteRollup>, pending: Vec<MinuteRollup>) -> Vec<MinuteRollup> {
    let mut by_minute: BTreeMap<i64, MinuteRollup> = BTreeMap::new();
    for rollup in stored.into_iter().chain(pending) {
        match by_minute.get_mut(&rollup.minute_ms) {
            Some(existing) => existing.merge(&rollup),
            None => {
                by_minute.insert(rollup.minute_ms, rollup);
            }
        }
    }
    by_minute.into_values().collect()
}

/// Returns milliseconds since the Unix epoch, 0 for a time before it.
pub fn epoch_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |after| {
        i64::try_from(after.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Returns the start of the minute that contains `millis`.
pub fn minute_start(millis: i64) -> i64 {
    millis - millis.rem_euclid(MINUTE_MS)
}

/// Returns the wall-clock time `millis` after the Unix epoch.
pub fn from_epoch_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::probe::RateLimit;

    fn result(at_ms: u64, latency_ms: u64, outcome: Outcome) -> ProbeResult {
        ProbeResult {
            probe: Arc::from("me"),
            started_at: UNIX_EPOCH + Duration::from_millis(at_ms),
            finished: Instant::now(),
            latency: Duration::from_millis(latency_ms),
            outcome,
            status: Some(200),
            rate_limit: RateLimit::default(),
            attempts: 1,
            detail: None,
        }
    }

    #[test]
    fn results_roll_up_per_minute() {
        let history = ProbeHistory::new();
        for latency in 1..=100 {
            history.record(&result(60_000, latency, Outcome::Ok));
        }
        history.record(&result(60_500, 0, Outcome::ConnectError));
        history.record(&result(60_500, 300, Outcome::HttpStatus(5)));
        history.record(&result(125_000, 50, Outcome::Ok));

        let now = UNIX_EPOCH + Duration::from_secs(130);
        let taken = history.take_finished(now, false);
        assert_eq!(taken.len(), 1, "{taken:?}");
        let minute = &taken[0];
        assert_eq!(minute.minute_ms, 60_000);
        assert_eq!(minute.count, 102);
        assert_eq!(minute.latency_samples, 101);
        assert_eq!(minute.errors.get("connect_error"), Some(&1));
        assert_eq!(minute.errors.get("http_5xx"), Some(&1));
        let p50 = minute.p50_ms.unwrap();
        assert!((50.0..=52.0).contains(&p50), "p50 {p50}");
        let max = minute.max_ms.unwrap();
        assert!((299.0..=301.0).contains(&max), "max {max}");

        let pending = history.pending("me", 0);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].minute_ms, 120_000);
        assert_eq!(history.take_finished(now, true).len(), 1);
        assert!(history.pending("me", 0).is_empty());
    }

    #[test]
    fn latest_result_is_kept() {
        let history = ProbeHistory::new();
        history.record(&result(1_000, 20, Outcome::Ok));
        history.record(&result(2_000, 40, Outcome::HttpStatus(4)));
        let latest = history.latest();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].outcome, "http_4xx");
        assert_eq!(latest[0].finished_ms, 2_040);
        history.retain_probes(&[]);
        assert!(history.latest().is_empty());
    }

    #[test]
    fn unwritten_rollups_come_back() {
        let history = ProbeHistory::new();
        history.record(&result(1_000, 20, Outcome::Ok));
        let taken = history.take_finished(UNIX_EPOCH + Duration::from_secs(61), false);
        assert_eq!(taken.len(), 1);
        history.keep_unwritten(taken);
        assert_eq!(history.pending("me", 0).len(), 1);
        let again = history.take_finished(UNIX_EPOCH + Duration::from_secs(61), false);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn merge_joins_same_minute() {
        let history = ProbeHistory::new();
        history.record(&result(1_000, 20, Outcome::Ok));
        history.record(&result(61_000, 20, Outcome::Ok));
        let stored = history.take_finished(UNIX_EPOCH, true);
        history.record(&result(2_000, 40, Outcome::Ok));
        let merged = merge_rollups(stored, history.pending("me", 0));
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].count, 2);
        assert_eq!(merged[1].count, 1);
    }

    #[test]
    fn minute_start_floors() {
        assert_eq!(minute_start(0), 0);
        assert_eq!(minute_start(59_999), 0);
        assert_eq!(minute_start(60_000), 60_000);
        assert_eq!(minute_start(-1), -60_000);
    }
}
