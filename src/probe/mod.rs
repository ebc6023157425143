//! Probes: what is called, when, and how its outcome is classified.

mod outcome;
mod result;

pub use outcome::Outcome;
pub use result::{ProbeResult, RateLimit};
