//! Probes: what is called, when, and how its outcome is classified.

mod outcome;
mod result;

pub use outcome::Outcome;
pub use result::{ProbeResult, RateLimit};
pub mod schedule;

pub use schedule::{parse_cron, splay_for};
