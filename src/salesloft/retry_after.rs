//! `Retry-After` of 429 responses and the pause it sets for every probe of a host.
//!
//! SalesLoft counts its budget per team and calendar minute and documents no `Retry-After`, so
//! a 429 without a usable one pauses the host until the next minute boundary. The header is
//! read as delta-seconds or an HTTP-date (RFC 9110, section 10.2.3). A date is measured from
//! the response's `Date` header when it parses, so a local clock that is off does not shorten
//! or stretch the pause. Pauses run on the tokio clock, anchored at the start of the request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{DATE, HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

/// Maximum pause a `Retry-After` value may set. Larger values are clamped to it and counted.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The reading of a 429 response's `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfterValue {
    /// No header.
    Absent,
    /// A header in neither valid form, such as `-5`, `1.5` or `soon`.
    Invalid,
    /// A valid delay, zero for a date in the past.
    Delay(Duration),
    /// A valid delay over [`MAX_RETRY_AFTER`], replaced by that maximum.
    Clamped,
}

/// Reads a `Retry-After` value; `server_now` is the time the response was sent.
pub fn parse_retry_after(value: Option<&str>, server_now: SystemTime) -> RetryAfterValue {
    let Some(value) = value.map(str::trim) else {
        return RetryAfterValue::Absent;
    };
    let delay = if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Digits only: delta-seconds. A number too large for u64 is still a valid, huge delay.
        value
            .parse::<u64>()
            .map_or(Duration::MAX, Duration::from_secs)
    } else {
        match httpdate::parse_http_date(value) {
            Ok(date) => date.duration_since(server_now).unwrap_or(Duration::ZERO),
            Err(_) => return RetryAfterValue::Invalid,
        }
    };
    if delay > MAX_RETRY_AFTER {
        RetryAfterValue::Clamped
    } else {
        RetryAfterValue::Delay(delay)
    }
}

/// Returns the time from `now` to the start of the next calendar minute, in (0, 60] seconds.
pub fn until_next_minute(now: SystemTime) -> Duration {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let into_minute = Duration::from_nanos(
        u64::try_from(since_epoch.as_nanos() % 60_000_000_000).unwrap_or_default(),
    );
    Duration::from_secs(60) - into_minute
}

/// Counters of the `Retry-After` values seen, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryAfterStats {
    /// 429 responses that paused a host.
    pub pauses: u64,
    /// `Retry-After` values in neither valid form, treated as absent.
    pub invalid: u64,
    /// `Retry-After` values over [`MAX_RETRY_AFTER`], clamped to it.
    pub clamped: u64,
}

/// The rate-limit pauses of every host, shared by all clients and probes of a daemon.
#[derive(Debug, Default)]
pub struct RateLimitPauses {
    until: Mutex<HashMap<String, Instant>>,
    pauses: AtomicU64,
    invalid: AtomicU64,
    clamped: AtomicU64,
}

impl RateLimitPauses {
    /// Creates an empty registry.
    pub fn new() -> RateLimitPauses {
        RateLimitPauses::default()
    }

    /// Returns the end of the pause of `host`, or `None` when the host is not paused.
    pub fn paused_until(&self, host: &str) -> Option<Instant> {
        let until = self.lock().get(host).copied()?;
        (until > Instant::now()).then_some(until)
    }

    /// Pauses `host` until `until`; a pause that already ends later is kept.
    pub fn pause(&self, host: &str, until: Instant) {
        let mut map = self.lock();
        let entry = map.entry(host.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// Returns the counters.
    pub fn stats(&self) -> RetryAfterStats {
        RetryAfterStats {
            pauses: self.pauses.load(Ordering::Relaxed),
            invalid: self.invalid.load(Ordering::Relaxed),
            clamped: self.clamped.load(Ordering::Relaxed),
        }
    }

    /// Pauses `host` after a 429 response to a request sent at `sent_at`, and returns the
    /// length of the pause.
    pub fn record_429(&self, host: &str, sent_at: Instant, headers: &HeaderMap) -> Duration {
        let server_now = headers
            .get(DATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| httpdate::parse_http_date(value).ok())
            .unwrap_or_else(SystemTime::now);
        let raw = headers.get(RETRY_AFTER).map(|value| value.to_str());
        let value = match raw {
            None => RetryAfterValue::Absent,
            Some(Err(_)) => RetryAfterValue::Invalid,
            Some(Ok(text)) => parse_retry_after(Some(text), server_now),
        };
        let delay = match value {
            RetryAfterValue::Delay(delay) => delay,
            RetryAfterValue::Clamped => {
                self.clamped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    host,
                    max_secs = MAX_RETRY_AFTER.as_secs(),
                    "retry-after clamped"
                );
                MAX_RETRY_AFTER
            }
            RetryAfterValue::Invalid => {
                self.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    host,
                    "invalid retry-after ignored, pausing to the next minute"
                );
                until_next_minute(server_now)
            }
            RetryAfterValue::Absent => until_next_minute(server_now),
        };
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.pause(host, sent_at + delay);
        tracing::warn!(
            host,
            pause_ms = delay.as_millis(),
            "rate limited, pausing probes of host"
        );
        delay
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    /// 2025-06-02T14:00:00Z.
    fn noon() -> SystemTime {
        httpdate::parse_http_date("Mon, 02 Jun 2025 14:00:00 GMT").unwrap()
    }

    #[test]
    fn delta_seconds_read() {
        let value = parse_retry_after(Some("90"), noon());
        assert_eq!(value, RetryAfterValue::Delay(Duration::from_secs(90)));
        let zero = parse_retry_after(Some(" 0 "), noon());
        assert_eq!(zero, RetryAfterValue::Delay(Duration::ZERO));
    }

    #[test]
    fn http_date_measured_from_server_time() {
        let value = parse_retry_after(Some("Mon, 02 Jun 2025 14:02:00 GMT"), noon());
        assert_eq!(value, RetryAfterValue::Delay(Duration::from_secs(120)));
    }

    #[test]
    fn past_date_is_zero() {
        let value = parse_retry_after(Some("Mon, 02 Jun 2025 13:59:00 GMT"), noon());
        assert_eq!(value, RetryAfterValue::Delay(Duration::ZERO));
    }

    #[test]
    fn invalid_forms_rejected() {
        for text in ["-5", "1.5", "soon", "", "+3", "5s"] {
            assert_eq!(
                parse_retry_after(Some(text), noon()),
                RetryAfterValue::Invalid,
                "{text:?}"
            );
        }
        assert_eq!(parse_retry_after(None, noon()), RetryAfterValue::Absent);
    }

    #[test]
    fn large_values_clamped() {
        for text in [
            "86400",
            "601",
            "99999999999999999999999",
            "Tue, 03 Jun 2025 14:00:00 GMT",
        ] {
            assert_eq!(
                parse_retry_after(Some(text), noon()),
                RetryAfterValue::Clamped,
                "{text:?}"
            );
        }
        let at_max = parse_retry_after(Some("600"), noon());
        assert_eq!(at_max, RetryAfterValue::Delay(MAX_RETRY_AFTER));
    }

    #[test]
    fn next_minute_boundary() {
        assert_eq!(until_next_minute(noon()), Duration::from_secs(60));
        let later = noon() + Duration::from_millis(45_500);
        assert_eq!(until_next_minute(later), Duration::from_millis(14_500));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[tokio::test(start_paused = true)]
    async fn date_header_preferred_over_local_clock() {
        let pauses = RateLimitPauses::new();
        let sent = Instant::now();
        let map = headers(&[
            ("date", "Mon, 02 Jun 2025 14:00:00 GMT"),
            ("retry-after", "Mon, 02 Jun 2025 14:02:00 GMT"),
        ]);
        // The local clock is far from 2025, so only the Date header gives 120 s.
        let delay = pauses.record_429("api.test", sent, &map);
        assert_eq!(delay, Duration::from_secs(120));
        assert_eq!(pauses.paused_until("api.test"), Some(sent + delay));
        assert_eq!(pauses.paused_until("other.test"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_and_clamped_counted() {
        let pauses = RateLimitPauses::new();
        let date = ("date", "Mon, 02 Jun 2025 14:00:45 GMT");
        let delay = pauses.record_429(
            "a",
            Instant::now(),
            &headers(&[date, ("retry-after", "soon")]),
        );
        assert_eq!(delay, Duration::from_secs(15));
        let delay = pauses.record_429(
            "a",
            Instant::now(),
            &headers(&[date, ("retry-after", "86400")]),
        );
        assert_eq!(delay, MAX_RETRY_AFTER);
        let delay = pauses.record_429("a", Instant::now(), &headers(&[date]));
        assert_eq!(delay, Duration::from_secs(15));
        let stats = pauses.stats();
        assert_eq!(stats.invalid, 1);
        assert_eq!(stats.clamped, 1);
        assert_eq!(stats.pauses, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_ends_and_never_shrinks() {
        let pauses = RateLimitPauses::new();
        let now = Instant::now();
        pauses.pause("a", now + Duration::from_secs(30));
        pauses.pause("a", now + Duration::from_secs(10));
        assert_eq!(
            pauses.paused_until("a"),
            Some(now + Duration::from_secs(30))
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(pauses.paused_until("a"), None);
    }
}
