//! The request log and the counters per path and status that tests assert on.
//!
//! Control requests under `/_sim/` are neither logged nor counted.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

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
    /// Milliseconds from the simulator's start to the moment the request was read. This is a
    /// point in time on the simulator's clock, not the request's duration.
    pub elapsed_ms: u64,
    /// Wall-clock time the request was read, to compare with timestamps of other processes.
    /// JSON carries it as an RFC 3339 UTC timestamp, such as `2026-05-28T20:26:40.123Z`.
    #[serde(with = "rfc3339")]
    pub received_at: SystemTime,
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

/// Serde format of a [`SystemTime`] as an RFC 3339 UTC timestamp with as many fraction digits
/// as the time needs (0, 3, 6 or 9), so that a value survives a round trip exactly.
mod rfc3339 {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let time = DateTime::<Utc>::from(*time);
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        let time = DateTime::parse_from_rfc3339(&text).map_err(|error| {
            serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}: {error}"))
        })?;
        Ok(SystemTime::from(time))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged_at(received_at: SystemTime) -> LoggedRequest {
        LoggedRequest {
            method: "GET".to_owned(),
            path: "/v2/me.json".to_owned(),
            status: Some(200),
            elapsed_ms: 1500,
            received_at,
            token_present: true,
            fault: None,
        }
    }

    #[test]
    fn received_at_serialises_as_rfc3339() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        let json = serde_json::to_value(logged_at(at)).unwrap();
        assert_eq!(json["received_at"], "2026-05-28T20:26:40.123Z");
        assert_eq!(json["elapsed_ms"], 1500);
    }

    #[test]
    fn received_at_round_trips_exactly() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_780_000_000, 123_456_789);
        let request = logged_at(at);
        let text = serde_json::to_string(&request).unwrap();
        let parsed: LoggedRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, request);
    }
}
