//! Aggregates over one probe's results in a sliding window.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;

use super::Filter;
use super::recorder::Sample;

static NO_SAMPLES: VecDeque<Sample> = VecDeque::new();

/// The results of one probe that finished in `(now - length, now]`, borrowed from the
/// [`Recorder`](super::Recorder).
#[derive(Debug, Clone)]
pub struct Window<'a> {
    samples: &'a VecDeque<Sample>,
    range: Range<usize>,
    length: Duration,
}

impl<'a> Window<'a> {
    pub(super) fn new(
        samples: &'a VecDeque<Sample>,
        range: Range<usize>,
        length: Duration,
    ) -> Self {
        Window {
            samples,
            range,
            length,
        }
    }

    pub(super) fn empty(length: Duration) -> Window<'static> {
        Window {
            samples: &NO_SAMPLES,
            range: 0..0,
            length,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.range(self.range.clone())
    }

    fn latencies(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(Sample::latency)
    }

    /// Returns the length of the window.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// Returns the number of results that match `filter`.
    pub fn count(&self, filter: &Filter) -> u64 {
        let matching = self
            .iter()
            .filter(|sample| filter.matches(sample.outcome(), sample.status()));
        matching.count() as u64
    }

    /// Returns the number of results of any outcome.
    pub fn total(&self) -> u64 {
        self.range.len() as u64
    }

    /// Returns the number of results that carry a latency sample (every outcome except
    /// connection, DNS and TLS errors).
    pub fn samples(&self) -> u64 {
        self.latencies().count() as u64
    }

    /// Returns the nearest-rank quantile of the latency samples: the sample at rank
    /// `ceil(q * n)` in ascending order, with `q` clamped to `[0, 1]` and rank at least 1.
    /// Returns `None` for a window without latency samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut latencies: Vec<u32> = self.latencies().collect();
        if latencies.is_empty() {
            return None;
        }
        let n = latencies.len();
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        let (_, value, _) = latencies.select_nth_unstable(index);
        Some(Duration::from_micros(u64::from(*value)))
    }

    /// Returns the largest latency sample, or `None` for a window without latency samples.
    /// Returns the smallest `x-ratelimit-remaining-minute` reported in the window.
    pub fn min_remaining(&self) -> Option<u32> {
        self.iter().filter_map(Sample::remaining).min()
    }

    /// Returns the `x-ratelimit-remaining-minute` of the newest result that reported one.
    pub fn last_remaining(&self) -> Option<u32> {
        self.iter().filter_map(Sample::remaining).last()
    }

    pub fn max(&self) -> Option<Duration> {
        self.latencies()
            .max()
            .map(|micros| Duration::from_micros(u64::from(micros)))
    }

    /// Returns the matching results per minute of window length (a 5-minute window with 10
    /// matches gives 2). A zero-length window gives 0.
    pub fn rate_per_minute(&self, filter: &Filter) -> f64 {
        let minutes = self.length.as_secs_f64() / 60.0;
        if minutes == 0.0 {
            return 0.0;
        }
        self.count(filter) as f64 / minutes
    }

    /// Returns the share of results that match `filter`, from 0 to 1, or `None` for an empty
    /// window.
    pub fn ratio(&self, filter: &Filter) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.count(filter) as f64 / total as f64)
    }
}
