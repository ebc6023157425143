//! The request log and the counters per path and status that tests assert on.
//!
//! Control requests under `/_sim/` are neither logged nor counted.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One API request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Request method, such as `GET`.
    pub method: String,
    /// Request path without the query.
    pub path: String,
    /// Status sent, or `None` when the connection hung, was reset or was closed.
    pub status: Option<u16>,
    /// Time since the simulator started, in milliseconds, when the request was read.
    pub elapsed_ms: u64,
    /// Wall-clock time the request was read, to compare with timestamps of other processes.
    pub received_at: std::time::SystemTime,
    /// True when the request had a non-empty bearer token.
    pub token_present: bool,
    /// Kind of the fault that hit the request, if any.
    pub fault: Option<String>,
}

impl LoggedRequest {
    /// Time since the simulator started when the request was read.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }
}

/// Requests served, counted per canonical path and per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStats {
    /// Requests per path, with `/v2/...` paths in their `.json` form.
    pub by_path: BTreeMap<String, u64>,
    /// Requests per status code; requests that got no status are not counted here.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no response (hang, reset, close).
    pub unanswered: u64,
}

impl RequestStats {
    /// Counts one request.
    pub fn record(&mut self, canonical_path: &str, status: Option<u16>) {
        *self.by_path.entry(canonical_path.to_owned()).or_default() += 1;
        match status {
            Some(status) => *self.by_status.entry(status).or_default() += 1,
            None => self.unanswered += 1,
        }
    }

    /// Returns the number of requests to `path` (either `/v2/x` or `/v2/x.json`).
    pub fn path(&self, path: &str) -> u64 {
        let key = super::fault::canonical_path(path);
        self.by_path.get(&key).copied().unwrap_or(0)
    }

    /// Returns the number of responses with this status.
    pub fn status(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}
