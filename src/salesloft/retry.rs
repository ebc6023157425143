//! Retries of failed requests: which methods may be sent again and how long to wait.
//!
//! Only idempotent methods are retried, because sending a write twice may apply it twice and
//! SalesLoft has no `Idempotency-Key` header. The wait before retry `n` is drawn uniformly from
//! `[0, min(backoff_max, backoff_base * 2^(n-1))]` ("full jitter"), so probes of several
//! instances that failed together do not retry in step.

use std::time::Duration;

use rand::Rng;
use reqwest::Method;

/// Largest number of attempts of one probe run, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// Default base of the backoff before the first retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Default cap of the backoff between two attempts.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(4);

/// Retry settings of the requests of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per probe run, the first included, from 1 (no retry) to [`MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// Upper bound of the wait before the first retry; it doubles for each later retry.
    pub backoff_base: Duration,
    /// Cap of the upper bound of any wait.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: MAX_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl RetryPolicy {
    /// Returns a policy that never retries.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Returns whether a request with `method` may be sent again after `attempts_made`
    /// attempts.
    pub fn allows_retry(&self, method: &Method, attempts_made: u32) -> bool {
        is_idempotent(method) && attempts_made < self.max_attempts.min(MAX_ATTEMPTS)
    }

    /// Returns the upper bound of the wait before retry number `retry` (1 for the first).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }

    /// Draws the wait before retry number `retry` (1 for the first) with full jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// Returns whether RFC 9110 defines `method` as idempotent: GET, HEAD, OPTIONS, PUT, DELETE
/// (and TRACE, which probes never send).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_retry() {
        let policy = RetryPolicy::default();
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(policy.allows_retry(&method, 1), "{method}");
        }
        assert!(!policy.allows_retry(&Method::POST, 1));
        assert!(!policy.allows_retry(&Method::PATCH, 1));
    }

    #[test]
    fn attempts_stop_at_limit() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_retry(&Method::GET, 2));
        assert!(!policy.allows_retry(&Method::GET, 3));
        let never = RetryPolicy::never();
        assert!(!never.allows_retry(&Method::GET, 1));
    }

    #[test]
    fn backoff_doubles_up_to_cap() {
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.backoff_ceiling(3), Duration::from_millis(300));
        for retry in 1..=3 {
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= policy.backoff_ceiling(retry));
            }
        }
    }
}
