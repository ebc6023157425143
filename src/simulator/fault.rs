//! Fault model shared by the control endpoint, [`super::SimulatorHandle::set_fault`] and
//! scenario files.
//!
//! A fault is read from a flat table (JSON object or TOML table) so that a scenario step is the
//! fault's keys plus `at` and `duration`. [`RawFault`] is that table as written; [`Fault`] is the
//! validated form, and a conversion error names the key to change.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors of a fault that has valid syntax but invalid values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct FaultError {
    /// Key of the fault table with the invalid value.
    pub key: &'static str,
    /// Problem with the value and how to fix it.
    pub message: String,
}

impl FaultError {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

/// A validated fault: which requests it hits and what it does to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFault", into = "RawFault")]
pub struct Fault {
    /// Endpoint path the fault applies to, or `None` for every API path. `/v2/me` and
    /// `/v2/me.json` are the same endpoint.
    pub path: Option<String>,
    /// Probability in 0..=1 that a matching request is hit.
    pub share: f64,
    /// Effect on a request that the fault hits.
    pub effect: FaultEffect,
}

/// Largest body an `oversized_body` fault accepts from JSON or TOML: 256 MiB, far above any
/// probe's `max_body`, and small enough that a typo cannot keep a client reading for hours.
pub const MAX_OVERSIZED_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Effect of a fault on a request it hits.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultEffect {
    /// Responds with these status codes in turn, cycling. One code gives a fixed status.
    Status(Vec<u16>),
    /// Waits before sending the response headers.
    Latency(Delay),
    /// Sends the normal response but trickles the body over this duration.
    SlowBody(Duration),
    /// Reads the request and never responds.
    Hang,
    /// Resets the connection (TCP RST) instead of responding.
    Reset,
    /// Closes the connection (TCP FIN) without a response.
    Close,
    /// Sends status 200 with a truncated, unparseable JSON body.
    MalformedJson,
    /// Pads the normal JSON body to this many bytes. The body is written in chunks, so a
    /// large size costs no memory.
    OversizedBody(usize),
}

/// Added latency before the response headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly distributed between `min` and `max`.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Normally distributed, cut off at zero.
    Normal {
        /// Mean delay.
        mean: Duration,
        /// Standard deviation.
        std_dev: Duration,
    },
}

/// A fault table as written in JSON or TOML, before validation.
///
/// `kind` selects the effect and decides which other keys apply:
/// `status` (`status` or `statuses`), `latency` (`latency`, or `latency_min` and `latency_max`,
/// or `latency_mean` and `latency_std_dev`), `slow_body` (`body_duration`), `hang`, `reset`,
/// `close`, `malformed_json`, `oversized_body` (`bytes`). Durations are humantime strings such
/// as `"250ms"` or `"2s"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// Effect name.
    pub kind: String,
    /// Endpoint path; absent or `"*"` means every API path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Share of matching requests hit, 0..=1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Fixed status code of a `status` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Status codes of a `status` fault, used in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<u16>>,
    /// Fixed delay of a `latency` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// Lower bound of a uniform `latency` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_min: Option<String>,
    /// Upper bound of a uniform `latency` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max: Option<String>,
    /// Mean of a normal `latency` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_mean: Option<String>,
    /// Standard deviation of a normal `latency` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_std_dev: Option<String>,
    /// Time a `slow_body` fault spreads the body over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_duration: Option<String>,
    /// Body size of an `oversized_body` fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
}

impl Fault {
    /// Builds a fault that hits every matching request.
    pub fn new(path: Option<&str>, effect: FaultEffect) -> Self {
        Self {
            path: path.map(str::to_owned),
            share: 1.0,
            effect,
        }
    }

    /// Sets the share of matching requests that the fault hits.
    pub fn with_share(mut self, share: f64) -> Self {
        self.share = share;
        self
    }

    /// Returns true when the fault applies to this request path (without query).
    pub fn matches(&self, path: &str) -> bool {
        match &self.path {
            None => true,
            Some(target) => canonical_path(target) == canonical_path(path),
        }
    }
}

/// Returns the path with a `.json` suffix on `/v2/...` paths, so both forms compare equal.
pub fn canonical_path(path: &str) -> String {
    if path.starts_with("/v2/") && !path.ends_with(".json") {
        format!("{path}.json")
    } else {
        path.to_owned()
    }
}

fn parse_duration(key: &'static str, value: &str) -> Result<Duration, FaultError> {
    humantime::parse_duration(value).map_err(|error| {
        FaultError::new(
            key,
            format!("invalid duration {value:?} ({error}): write it like \"250ms\" or \"2s\""),
        )
    })
}

fn require<T>(key: &'static str, kind: &str, value: Option<T>) -> Result<T, FaultError> {
    value.ok_or_else(|| FaultError::new(key, format!("missing, but kind {kind:?} requires it")))
}

fn check_status(key: &'static str, code: u16) -> Result<u16, FaultError> {
    if (100..=599).contains(&code) {
        Ok(code)
    } else {
        Err(FaultError::new(
            key,
            format!("status {code} is out of range: use 100..=599"),
        ))
    }
}

fn parse_delay(raw: &RawFault) -> Result<Delay, FaultError> {
    if let Some(fixed) = &raw.latency {
        return Ok(Delay::Fixed(parse_duration("latency", fixed)?));
    }
    if raw.latency_min.is_some() || raw.latency_max.is_some() {
        let min = parse_duration(
            "latency_min",
            require("latency_min", "latency", raw.latency_min.as_deref())?,
        )?;
        let max = parse_duration(
            "latency_max",
            require("latency_max", "latency", raw.latency_max.as_deref())?,
        )?;
        if min > max {
            return Err(FaultError::new(
                "latency_min",
                "is greater than latency_max",
            ));
        }
        return Ok(Delay::Uniform { min, max });
    }
    if raw.latency_mean.is_some() || raw.latency_std_dev.is_some() {
        let mean = parse_duration(
            "latency_mean",
            require("latency_mean", "latency", raw.latency_mean.as_deref())?,
        )?;
        let std_dev = parse_duration(
            "latency_std_dev",
            require("latency_std_dev", "latency", raw.latency_std_dev.as_deref())?,
        )?;
        return Ok(Delay::Normal { mean, std_dev });
    }
    Err(FaultError::new(
        "latency",
        "missing: set latency, latency_min and latency_max, or latency_mean and latency_std_dev",
    ))
}

impl TryFrom<RawFault> for Fault {
    type Error = FaultError;

    fn try_from(raw: RawFault) -> Result<Self, Self::Error> {
        let share = raw.share.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&share) {
            return Err(FaultError::new(
                "share",
                format!("{share} is out of range: use a number from 0 to 1"),
            ));
        }
        let path = match raw.path.as_deref() {
            None | Some("*") => None,
            Some(path) if path.starts_with('/') => Some(path.to_owned()),
            Some(path) => {
                return Err(FaultError::new(
                    "path",
                    format!("{path:?} does not start with '/': write it like \"/v2/me.json\""),
                ));
            }
        };
        let effect = match raw.kind.as_str() {
            "status" => match (raw.status, &raw.statuses) {
                (Some(_), Some(_)) => {
                    return Err(FaultError::new(
                        "statuses",
                        "conflicts with status: set one",
                    ));
                }
                (Some(code), None) => FaultEffect::Status(vec![check_status("status", code)?]),
                (None, Some(codes)) if !codes.is_empty() => FaultEffect::Status(
                    codes
                        .iter()
                        .map(|code| check_status("statuses", *code))
                        .collect::<Result<_, _>>()?,
                ),
                (None, Some(_)) => return Err(FaultError::new("statuses", "is empty")),
                (None, None) => {
                    return Err(FaultError::new(
                        "status",
                        "missing: set status or statuses for kind \"status\"",
                    ));
                }
            },
            "latency" => FaultEffect::Latency(parse_delay(&raw)?),
            "slow_body" => FaultEffect::SlowBody(parse_duration(
                "body_duration",
                require("body_duration", "slow_body", raw.body_duration.as_deref())?,
            )?),
            "hang" => FaultEffect::Hang,
            "reset" => FaultEffect::Reset,
            "close" => FaultEffect::Close,
            "malformed_json" => FaultEffect::MalformedJson,
            "oversized_body" => {
                let bytes = require("bytes", "oversized_body", raw.bytes)?;
                if bytes > MAX_OVERSIZED_BODY_BYTES {
                    return Err(FaultError::new(
                        "bytes",
                        format!(
                            "{bytes} is over the maximum of {MAX_OVERSIZED_BODY_BYTES} (256 MiB): \
                             use a smaller size"
                        ),
                    ));
                }
                FaultEffect::OversizedBody(bytes)
            }
            other => {
                return Err(FaultError::new(
                    "kind",
                    format!(
                        "unknown kind {other:?}: use status, latency, slow_body, hang, reset, \
                         close, malformed_json or oversized_body"
                    ),
                ));
            }
        };
        Ok(Fault {
            path,
            share,
            effect,
        })
    }
}

fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

impl From<Fault> for RawFault {
    fn from(fault: Fault) -> Self {
        let mut raw = RawFault {
            path: fault.path,
            share: Some(fault.share),
            ..RawFault::default()
        };
        raw.kind = match fault.effect {
            FaultEffect::Status(codes) => {
                raw.statuses = Some(codes);
                "status"
            }
            FaultEffect::Latency(Delay::Fixed(delay)) => {
                raw.latency = Some(format_duration(delay));
                "latency"
            }
            FaultEffect::Latency(Delay::Uniform { min, max }) => {
                raw.latency_min = Some(format_duration(min));
                raw.latency_max = Some(format_duration(max));
                "latency"
            }
            FaultEffect::Latency(Delay::Normal { mean, std_dev }) => {
                raw.latency_mean = Some(format_duration(mean));
                raw.latency_std_dev = Some(format_duration(std_dev));
                "latency"
            }
            FaultEffect::SlowBody(duration) => {
                raw.body_duration = Some(format_duration(duration));
                "slow_body"
            }
            FaultEffect::Hang => "hang",
            FaultEffect::Reset => "reset",
            FaultEffect::Close => "close",
            FaultEffect::MalformedJson => "malformed_json",
            FaultEffect::OversizedBody(bytes) => {
                raw.bytes = Some(bytes);
                "oversized_body"
            }
        }
        .to_owned();
        raw
    }
}
