//! Retries of one notification: exponential backoff and the delivery loop that applies it.

use std::future::Future;
use std::time::Duration;

use tracing::{debug, error, warn};

use super::DeliveryError;
use super::notifier::{ReceiverKind, ReceiverStats};

/// Exponential backoff between delivery attempts of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failed attempt; each later delay doubles.
    pub initial: Duration,
    /// Largest delay between two attempts.
    pub max: Duration,
    /// Attempts per notification, the first included, before it is counted as failed.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// Returns one second doubling up to one minute and eight attempts, which retries for
    /// about three minutes.
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// Returns the delay after `failed_attempts` failed attempts (1 or more).
    pub fn delay(&self, failed_attempts: u32) -> Duration {
        let doublings = failed_attempts.saturating_sub(1).min(31);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Outcome of the delivery of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RetryOutcome {
    Delivered {
        attempts: u32,
    },
    /// The last error was permanent, or every attempt failed.
    GaveUp {
        attempts: u32,
        error: DeliveryError,
    },
}

/// Runs `deliver` until it succeeds, fails permanently or has used every attempt of `backoff`,
/// sleeping the backoff delay between attempts, and counts the outcome in `stats`.
pub(super) async fn deliver_with_retry<F, Fut>(
    kind: ReceiverKind,
    alert_id: &str,
    backoff: &Backoff,
    stats: &ReceiverStats,
    mut deliver: F,
) -> RetryOutcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), DeliveryError>>,
{
    let receiver_name = kind.as_str();
    let mut attempt = 1;
    loop {
        let error = match deliver().await {
            Ok(()) => {
                stats.add_sent(1);
                debug!(
                    receiver = receiver_name,
                    alert_id, attempt, "notification delivered"
                );
                return RetryOutcome::Delivered { attempts: attempt };
            }
            Err(error) => error,
        };
        stats.add_attempt_error();
        if error.permanent || attempt >= backoff.max_attempts {
            stats.add_failed(1);
            error!(
                receiver = receiver_name,
                alert_id,
                attempts = attempt,
                permanent = error.permanent,
                error = %error,
                "notification lost"
            );
            return RetryOutcome::GaveUp {
                attempts: attempt,
                error,
            };
        }
        let delay = backoff.delay(attempt);
        warn!(
            receiver = receiver_name,
            alert_id,
            attempt,
            retry_in = ?delay,
            error = %error,
            "notification delivery failed, retrying"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    fn test_backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(150),
            max_attempts: 4,
        }
    }

    /// Runs the retry loop with attempts that fail with `errors` in turn and succeed after
    /// them, and returns the start time of each attempt relative to the first.
    async fn attempt_times(errors: Vec<DeliveryError>, stats: &ReceiverStats) -> Vec<Duration> {
        let started = Instant::now();
        let times = Mutex::new(Vec::new());
        let errors = Mutex::new(errors.into_iter());
        let deliver = || {
            times.lock().unwrap().push(started.elapsed());
            let next = errors.lock().unwrap().next();
            async move { next.map_or(Ok(()), Err) }
        };
        let outcome = deliver_with_retry(
            ReceiverKind::Email,
            "auth-down/me",
            &test_backoff(),
            stats,
            deliver,
        )
        .await;
        let times = times.into_inner().unwrap();
        let expected_attempts = u32::try_from(times.len()).unwrap();
        match outcome {
            RetryOutcome::Delivered { attempts } | RetryOutcome::GaveUp { attempts, .. } => {
                assert_eq!(attempts, expected_attempts);
            }
        }
        times
    }

    fn refused() -> DeliveryError {
        DeliveryError::transient("connection refused".to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn retry_waits_backoff_then_succeeds() {
        let stats = ReceiverStats::default();
        let times = attempt_times(vec![refused(), refused()], &stats).await;
        let expected = [0, 100, 250].map(Duration::from_millis);
        assert_eq!(times, expected);
        let counts = stats.snapshot();
        assert_eq!(counts.sent, 1);
        assert_eq!(counts.attempt_errors, 2);
        assert_eq!(counts.failed, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_after_max_attempts() {
        let stats = ReceiverStats::default();
        let times = attempt_times(vec![refused(); 10], &stats).await;
        let expected = [0, 100, 250, 400].map(Duration::from_millis);
        assert_eq!(times, expected);
        let counts = stats.snapshot();
        assert_eq!(counts.sent, 0);
        assert_eq!(counts.attempt_errors, 4);
        assert_eq!(counts.failed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_on_permanent_error() {
        let stats = ReceiverStats::default();
        let rejected = DeliveryError::permanent("550 mailbox unavailable".to_owned());
        let times = attempt_times(vec![rejected, refused()], &stats).await;
        assert_eq!(times, [Duration::ZERO]);
        let counts = stats.snapshot();
        assert_eq!(counts.attempt_errors, 1);
        assert_eq!(counts.failed, 1);
    }

    #[test]
    fn backoff_doubles_up_to_max() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            max_attempts: 10,
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(3), Duration::from_millis(400));
        assert_eq!(backoff.delay(4), Duration::from_millis(500));
        assert_eq!(backoff.delay(40), Duration::from_millis(500));
    }
}
