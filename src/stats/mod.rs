//! Sliding windows over recent probe results: counts, rates, ratios and latency quantiles
//! per probe, which alert rules are evaluated against.
//!
//! # Storage
//!
//! The [`Recorder`] keeps every result of the retention (the longest rule window) as a 16-byte
//! sample: its completion time in nanoseconds, its latency in microseconds, its status code
//! and its outcome. Windows are therefore exact: a 60 s window at `t` counts precisely the
//! results that finished in `(t - 60 s, t]`. Quantiles are exact nearest-rank values over the
//! stored latencies, finer than the 3 significant digits of an HDR histogram, and never above
//! the largest latency seen. Latencies above the configured maximum are clamped to it and
//! counted per probe, never dropped.
//!
//! Time buckets with HDR-quantized values were the alternative. They only save memory when a
//! bucket contains many results. SalesLoft's rate budget of 600 requests a minute per team,
//! shared by every probe, keeps a useful schedule to about ten results a second in all, so a
//! one-second bucket would usually hold one result plus its own overhead, and bucket edges
//! would move window boundaries. Memory is 16 bytes per retained result plus the spare
//! capacity of each probe's queue: 1000 probes each running every 10 s with a 1 h retention
//! hold 360 000 results in 8.3 MB (measured by `Recorder::heap_bytes` in the tests).
//!
//! Queries scan the window's samples: O(results in the window), plus a selection for
//! quantiles.

mod filter;
mod recorder;
mod window;

pub use filter::{Filter, StatusOp};
pub use recorder::Recorder;
pub use window::Window;

#[cfg(test)]
mod tests;
