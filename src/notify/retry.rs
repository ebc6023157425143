//! Retries of one notification: exponential backoff and the delivery loop that applies it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::DeliveryError;
use super::notifier::ReceiverKind;
use super::stats::ReceiverStats;

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

/// How long a receiver has failed without a success in between, for its `fallback_after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FallbackClock {
    after: Duration,
    failing_since: Option<Instant>,
}

impl FallbackClock {
    /// Creates a clock that hands notifications over after `after` of failures.
    pub(super) fn new(after: Duration) -> FallbackClock {
        FallbackClock {
            after,
            failing_since: None,
        }
    }

    fn success(&mut self) {
        self.failing_since = None;
    }

    /// Records a failed attempt and returns whether the failures have lasted `after`.
    fn failure(&mut self) -> bool {
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        now.duration_since(since) >= self.after
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
    /// The receiver has failed for longer than its `fallback_after`, so the notification goes
    /// to the fallback receiver.
    HandOver {
        attempts: u32,
        error: DeliveryError,
    },
}

/// Runs `deliver` until it succeeds, fails permanently or has used every attempt of `backoff`,
/// sleeping the backoff delay between attempts, and counts the outcome and the duration of
/// every attempt in `stats`. With a `fallback` clock, a failure once the receiver has failed
/// for its `fallback_after` ends the loop with [`RetryOutcome::HandOver`].
pub(super) async fn deliver_with_retry<F, Fut>(
    kind: ReceiverKind,
    alert_id: &str,
    backoff: &Backoff,
    stats: &ReceiverStats,
    mut fallback: Option<&mut FallbackClock>,
    mut deliver: F,
) -> RetryOutcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), DeliveryError>>,
{
    let receiver_name = kind.as_str();
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let result = deliver().await;
        stats.observe_latency(started.elapsed());
        let error = match result {
            Ok(()) => {
                if let Some(clock) = fallback.as_deref_mut() {
                    clock.success();
                }
                stats.add_sent(1);
                debug!(
                    receiver = receiver_name,
                    alert_id, attempt, "notification delivered"
                );
                return RetryOutcome::Delivered { attempts: attempt };
            }
            Err(error) => error,
        };
        stats.add_attempt_error(error.reason);
        if fallback.as_deref_mut().is_some_and(FallbackClock::failure) {
            stats.add_handed_over();
            warn!(
                receiver = receiver_name,
                alert_id,
                attempts = attempt,
                error = %error,
                "receiver failing past fallback_after, handing the notification to its fallback"
            );
            return RetryOutcome::HandOver {
                attempts: attempt,
                error,
            };
        }
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
            None,
            deliver,
        )
        .await;
        let times = times.into_inner().unwrap();
        let expected_attempts = u32::try_from(times.len()).unwrap();
        match outcome {
            RetryOutcome::Delivered { attempts }
            | RetryOutcome::GaveUp { attempts, .. }
            | RetryOutcome::HandOver { attempts, .. } => {
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

    #[tokio::test(start_paused = true)]
    async fn fallback_after_hands_over() {
        let stats = ReceiverStats::default();
        let mut clock = FallbackClock::new(Duration::from_millis(200));
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(100),
            max_attempts: 10,
        };
        let attempts = Mutex::new(0);
        let deliver = || {
            *attempts.lock().unwrap() += 1;
            async { Err(refused()) }
        };
        let outcome = deliver_with_retry(
            ReceiverKind::Webhook,
            "a",
            &backoff,
            &stats,
            Some(&mut clock),
            deliver,
        )
        .await;
        // Failures at 0, 100 and 200 ms: the third is 200 ms after the first.
        assert!(matches!(
            outcome,
            RetryOutcome::HandOver { attempts: 3, .. }
        ));
        assert_eq!(stats.snapshot().handed_over, 1);
        assert_eq!(stats.snapshot().failed, 0);

        // The receiver is still failing, so the next notification is handed over at once.
        let outcome = deliver_with_retry(
            ReceiverKind::Webhook,
            "b",
            &backoff,
            &stats,
            Some(&mut clock),
            || async { Err(refused()) },
        )
        .await;
        assert!(matches!(
            outcome,
            RetryOutcome::HandOver { attempts: 1, .. }
        ));

        // A success resets the clock.
        let outcome = deliver_with_retry(
            ReceiverKind::Webhook,
            "c",
            &backoff,
            &stats,
            Some(&mut clock),
            || async { Ok(()) },
        )
        .await;
        assert!(matches!(outcome, RetryOutcome::Delivered { attempts: 1 }));
        let outcome = deliver_with_retry(
            ReceiverKind::Webhook,
            "d",
            &backoff,
            &stats,
            Some(&mut clock),
            || async { Err(refused()) },
        )
        .await;
        assert!(matches!(
            outcome,
            RetryOutcome::HandOver { attempts: 3, .. }
        ));
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
