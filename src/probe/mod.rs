//! Probes: what is called, when, and how its outcome is classified.
//!
//! [`run`] sends one probe's request and returns a [`ProbeResult`]; [`spawn_probe`] runs a
//! probe on its interval or cron schedule and sends each result as a [`ProbeEvent`].

mod assert;
mod classify;
mod cron;
mod outcome;
mod result;
mod run;
mod schedule;

pub use assert::{check_all as check_assertions, lookup as lookup_json_path};
pub use classify::classify_error;
pub use cron::{next_cron_after, parse_cron};
pub use outcome::Outcome;
pub use result::{ProbeResult, RateLimit};
pub use run::{read_rate_limit, run};
pub use schedule::{ProbeEvent, SkipReason, admit, spawn_probe, splay_for};
