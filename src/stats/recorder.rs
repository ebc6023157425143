//! The per-probe store of recent results that windows are computed from.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Window;
use crate::probe::{Outcome, ProbeResult};

/// Largest latency a sample can store: `u32::MAX` microseconds, about 71 minutes.
const STORABLE_MAX_MICROS: u64 = u32::MAX as u64;

/// One probe result reduced to what windows need, in 16 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Completion time in nanoseconds after the recorder's epoch; negative before it.
    pub(super) at: i64,
    /// Latency in microseconds, clamped to the recorder's maximum.
    pub(super) latency_micros: u32,
    /// HTTP status code (0 when no response arrived) in the low 10 bits, and the index of the
    /// outcome in [`Outcome::ALL`] in the high 6 bits. HTTP status codes are below 1000.
    status_outcome: u16,
    /// `x-ratelimit-remaining-minute` of the response, saturated at `u16::MAX - 1`;
    /// `u16::MAX` when the response had none.
    remaining: u16,
}

/// Bits of `Sample::status_outcome` that hold the status.
const STATUS_BITS: u16 = 10;
const STATUS_MASK: u16 = (1 << STATUS_BITS) - 1;

impl Sample {
    pub(super) fn outcome(&self) -> Outcome {
        Outcome::ALL[usize::from(self.status_outcome >> STATUS_BITS)]
    }

    pub(super) fn status(&self) -> Option<u16> {
        let status = self.status_outcome & STATUS_MASK;
        (status != 0).then_some(status)
    }

    /// Returns the remaining rate budget the response reported.
    pub(super) fn remaining(&self) -> Option<u32> {
        (self.remaining != u16::MAX).then_some(u32::from(self.remaining))
    }

    /// Returns the latency when the result carries a real latency sample.
    pub(super) fn latency(&self) -> Option<u32> {
        self.outcome()
            .has_latency_sample()
            .then_some(self.latency_micros)
    }
}

/// The samples of one probe, oldest first, and its count of clamped latencies.
#[derive(Debug, Default)]
struct ProbeSeries {
    samples: VecDeque<Sample>,
    overflow: u64,
}

/// Recent results of every probe, for sliding-window queries.
///
/// Each result is kept as one [`Sample`] with its exact completion time, so a window
/// `(now - window, now]` counts exactly the results that finished inside it. Samples older than
/// the retention are dropped when a newer result of the same probe arrives.
#[derive(Debug)]
pub struct Recorder {
    epoch: Instant,
    max_micros: u64,
    retention: Duration,
    probes: HashMap<Arc<str>, ProbeSeries>,
}

impl Recorder {
    /// Creates an empty recorder. Latencies above `histogram_max` are clamped to it and counted
    /// in [`Recorder::overflow_count`]; `retention` should be the longest window of any rule.
    ///
    /// NOTE: `histogram_max` itself is capped at `u32::MAX` microseconds (about 71 minutes),
    /// the most a sample stores.
    pub fn new(histogram_max: Duration, retention: Duration) -> Recorder {
        let max_micros = u64::try_from(histogram_max.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, STORABLE_MAX_MICROS);
        Recorder {
            epoch: Instant::now(),
            max_micros,
            retention,
            probes: HashMap::new(),
        }
    }

    /// Returns the largest latency stored; larger latencies are clamped to it.
    pub fn histogram_max(&self) -> Duration {
        Duration::from_micros(self.max_micros)
    }

    /// Returns how long results are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Sets how long results are kept, for a reload that changes the longest rule window.
    /// Shorter retention takes effect at the next result of each probe.
    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
    }

    /// Records one result and drops that probe's results older than the retention.
    pub fn record(&mut self, result: &ProbeResult) {
        let at = self.offset_nanos(result.finished);
        let micros = u64::try_from(result.latency.as_micros()).unwrap_or(u64::MAX);
        let series = self.probes.entry(Arc::clone(&result.probe)).or_default();
        let clamped = if micros > self.max_micros {
            series.overflow += 1;
            self.max_micros
        } else {
            micros
        };
        let sample = Sample {
            at,
            // The clamp above keeps the value within u32.
            latency_micros: u32::try_from(clamped).unwrap_or(u32::MAX),
            status_outcome: (result.status.unwrap_or(0).min(STATUS_MASK))
                | (u16::try_from(result.outcome.index()).unwrap_or(0) << STATUS_BITS),
            remaining: result.rate_limit.remaining.map_or(u16::MAX, |remaining| {
                u16::try_from(remaining)
                    .unwrap_or(u16::MAX - 1)
                    .min(u16::MAX - 1)
            }),
        };

        // Results of one probe arrive almost always in order; search from the back otherwise.
        let position = series
            .samples
            .iter()
            .rposition(|old| old.at <= at)
            .map_or(0, |i| i + 1);
        series.samples.insert(position, sample);

        let newest = series.samples.back().map_or(at, |sample| sample.at);
        let cutoff = newest.saturating_sub(duration_nanos(self.retention));
        while series
            .samples
            .front()
            .is_some_and(|sample| sample.at <= cutoff)
        {
            series.samples.pop_front();
        }
        if series.samples.capacity() > 64 && series.samples.capacity() > 4 * series.samples.len() {
            series.samples.shrink_to(2 * series.samples.len());
        }
    }

    /// Forgets a probe and all its results, for a reload that removed it.
    pub fn remove_probe(&mut self, probe: &str) {
        self.probes.remove(probe);
    }

    /// Returns the results of `probe` that finished in `(now - window, now]`. An unknown probe
    /// gives an empty window. A window longer than the retention contains only retained results.
    pub fn window(&self, probe: &str, now: Instant, window: Duration) -> Window<'_> {
        let end = self.offset_nanos(now);
        let start = end.saturating_sub(duration_nanos(window));
        match self.probes.get(probe) {
            Some(series) => {
                let low = series.samples.partition_point(|sample| sample.at <= start);
                let high = series.samples.partition_point(|sample| sample.at <= end);
                Window::new(&series.samples, low..high.max(low), window)
            }
            None => Window::empty(window),
        }
    }

    /// Returns how many latencies of `probe` were above the maximum and clamped, since start.
    pub fn overflow_count(&self, probe: &str) -> u64 {
        self.probes.get(probe).map_or(0, |series| series.overflow)
    }

    /// Returns the number of results held for `probe`.
    pub fn len(&self, probe: &str) -> usize {
        self.probes
            .get(probe)
            .map_or(0, |series| series.samples.len())
    }

    /// Returns whether no result is held for any probe.
    pub fn is_empty(&self) -> bool {
        self.probes.values().all(|series| series.samples.is_empty())
    }

    /// Returns an estimate of the heap bytes the samples use (their allocated capacity).
    pub fn heap_bytes(&self) -> usize {
        self.probes
            .iter()
            .map(|(name, series)| {
                name.len()
                    + std::mem::size_of::<(Arc<str>, ProbeSeries)>()
                    + series.samples.capacity() * std::mem::size_of::<Sample>()
            })
            .sum()
    }

    fn offset_nanos(&self, at: Instant) -> i64 {
        match at.checked_duration_since(self.epoch) {
            Some(after) => duration_nanos(after),
            None => -duration_nanos(self.epoch.duration_since(at)),
        }
    }
}

/// Converts a duration to nanoseconds, saturating at about 292 years.
fn duration_nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
