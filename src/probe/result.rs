//! The record of one probe run, handed from the prober to the recorder and the rule engine.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::Outcome;

/// Rate-limit headers SalesLoft puts on every response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// `x-ratelimit-endpoint-cost`: what this request cost from the team's minute budget.
    pub cost: Option<u32>,
    /// `x-ratelimit-remaining-minute`: budget left in the minute the request was made.
    pub remaining: Option<u32>,
}

/// The result of one probe run.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// Name of the probe as configured.
    pub probe: Arc<str>,
    /// Wall-clock time the request started, for display only.
    pub started_at: SystemTime,
    /// Monotonic time the run completed; windows are computed from this.
    pub finished: Instant,
    /// From request start to the last body byte, or to the abort on timeout.
    pub latency: Duration,
    /// How the run ended.
    pub outcome: Outcome,
    /// HTTP status code, when a response arrived.
    pub status: Option<u16>,
    /// Rate-limit headers of the response.
    pub rate_limit: RateLimit,
    /// Number of requests sent: 0 when none could be sent, more than 1 after a retry.
    pub attempts: u32,
    /// A one-line description of what went wrong, with no secret in it.
    pub detail: Option<String>,
}
