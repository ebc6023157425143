//! A circuit breaker per host, so a SalesLoft outage is not hammered by every probe tick.
//!
//! A host's breaker opens after `failures` consecutive failed probe runs (5xx, timeout,
//! connection, DNS or TLS errors; a 4xx or 429 is an answer, not a failure). It stays open for
//! `open_for`, then turns half-open and admits exactly one trial run while every other tick of
//! the host is skipped. A successful trial closes the breaker, a failed one opens it again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Default number of consecutive failures that opens a breaker. It is above the 12 runs a
/// minute of the default probes, so the checklist's "more than 5 responses 5xx a minute" rule
/// fires on a probe before the breaker stops probing the host.
pub const DEFAULT_BREAKER_FAILURES: u32 = 20;
/// Default time a breaker stays open before its trial run.
pub const DEFAULT_BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);

/// The `[salesloft]` keys of the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// `breaker_failures`: consecutive failed runs that open the breaker.
    pub failures: u32,
    /// `breaker_open_for`: time the breaker stays open before a trial run.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: DEFAULT_BREAKER_FAILURES,
            open_for: DEFAULT_BREAKER_OPEN_FOR,
        }
    }
}

/// The state of one host's breaker, as exported to metrics and rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are skipped until the open period ends.
    Open,
    /// One trial run decides whether the breaker closes or opens again.
    HalfOpen,
}

impl BreakerState {
    /// Returns the name used in logs and metrics: `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// Returns the metric value: 0 closed, 1 half-open, 2 open.
    pub fn as_number(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// The decision of [`CircuitBreakers::admit`] for one probe tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: run.
    Allowed,
    /// The breaker is half-open and this run is its one trial: run once, without retries.
    Trial,
    /// The breaker is open, or half-open with its trial in flight: skip the tick.
    Rejected,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `trial` is the start of the trial run in flight, if any.
    HalfOpen {
        trial: Option<Instant>,
    },
}

#[derive(Debug)]
struct HostBreaker {
    consecutive_failures: u32,
    phase: Phase,
}

/// The circuit breakers of every host, shared by the probes of a client.
#[derive(Debug)]
pub struct CircuitBreakers {
    settings: BreakerSettings,
    hosts: Mutex<HashMap<String, HostBreaker>>,
}

impl CircuitBreakers {
    /// Creates breakers, all closed, that follow `settings`.
    pub fn new(settings: BreakerSettings) -> CircuitBreakers {
        CircuitBreakers {
            settings,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the settings.
    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    /// Decides whether a probe of `host` may run now. An open breaker whose period has ended
    /// turns half-open and admits this caller as its trial.
    pub fn admit(&self, host: &str) -> Admission {
        let now = Instant::now();
        let mut hosts = self.lock();
        let Some(breaker) = hosts.get_mut(host) else {
            return Admission::Allowed;
        };
        match breaker.phase {
            Phase::Closed => Admission::Allowed,
            Phase::Open { until } if now < until => Admission::Rejected,
            Phase::Open { .. } => {
                tracing::info!(host, "circuit breaker half-open, sending one trial request");
                breaker.phase = Phase::HalfOpen { trial: Some(now) };
                Admission::Trial
            }
            // A trial that never reported (its run was abandoned) is replaced after `open_for`.
            Phase::HalfOpen {
                trial: Some(started),
            } if now < started + self.settings.open_for => Admission::Rejected,
            Phase::HalfOpen { .. } => {
                breaker.phase = Phase::HalfOpen { trial: Some(now) };
                Admission::Trial
            }
        }
    }

    /// Records the end of a probe run of `host`; `failed` is true for a 5xx, timeout or
    /// connection, DNS or TLS error.
    pub fn record(&self, host: &str, failed: bool) {
        let now = Instant::now();
        let mut hosts = self.lock();
        let breaker = hosts.entry(host.to_owned()).or_insert(HostBreaker {
            consecutive_failures: 0,
            phase: Phase::Closed,
        });
        if !failed {
            if !matches!(breaker.phase, Phase::Closed) {
                tracing::info!(host, "circuit breaker closed");
            }
            breaker.consecutive_failures = 0;
            breaker.phase = Phase::Closed;
            return;
        }
        breaker.consecutive_failures = breaker.consecutive_failures.saturating_add(1);
        let open = match breaker.phase {
            Phase::Closed => breaker.consecutive_failures >= self.settings.failures,
            Phase::HalfOpen { .. } => true,
            // A run admitted before the breaker opened; it does not extend the open period.
            Phase::Open { .. } => false,
        };
        if open {
            tracing::warn!(
                host,
                failures = breaker.consecutive_failures,
                open_secs = self.settings.open_for.as_secs_f64(),
                "circuit breaker opened"
            );
            breaker.phase = Phase::Open {
                until: now + self.settings.open_for,
            };
        }
    }

    /// Returns the state of `host`'s breaker. An open breaker whose period has ended reports
    /// half-open, because its next tick is the trial.
    pub fn state(&self, host: &str) -> BreakerState {
        self.lock()
            .get(host)
            .map_or(BreakerState::Closed, |breaker| phase_state(breaker.phase))
    }

    /// Returns the state of every host that has reported a run.
    pub fn states(&self) -> Vec<(String, BreakerState)> {
        self.lock()
            .iter()
            .map(|(host, breaker)| (host.clone(), phase_state(breaker.phase)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostBreaker>> {
        self.hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn phase_state(phase: Phase) -> BreakerState {
    match phase {
        Phase::Closed => BreakerState::Closed,
        Phase::Open { until } if Instant::now() < until => BreakerState::Open,
        Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "api.test:443";

    fn breakers() -> CircuitBreakers {
        CircuitBreakers::new(BreakerSettings {
            failures: 3,
            open_for: Duration::from_secs(30),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures() {
        let breakers = breakers();
        breakers.record(HOST, true);
        breakers.record(HOST, true);
        assert_eq!(breakers.state(HOST), BreakerState::Closed);
        breakers.record(HOST, true);
        assert_eq!(breakers.state(HOST), BreakerState::Open);
        assert_eq!(breakers.admit(HOST), Admission::Rejected);
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_count() {
        let breakers = breakers();
        breakers.record(HOST, true);
        breakers.record(HOST, true);
        breakers.record(HOST, false);
        breakers.record(HOST, true);
        breakers.record(HOST, true);
        assert_eq!(breakers.state(HOST), BreakerState::Closed);
        assert_eq!(breakers.admit(HOST), Admission::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_trial() {
        let breakers = breakers();
        for _ in 0..3 {
            breakers.record(HOST, true);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.state(HOST), BreakerState::HalfOpen);
        assert_eq!(breakers.admit(HOST), Admission::Trial);
        assert_eq!(breakers.admit(HOST), Admission::Rejected);
        assert_eq!(breakers.admit(HOST), Admission::Rejected);
        breakers.record(HOST, false);
        assert_eq!(breakers.state(HOST), BreakerState::Closed);
        assert_eq!(breakers.admit(HOST), Admission::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_trial_reopens() {
        let breakers = breakers();
        for _ in 0..3 {
            breakers.record(HOST, true);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(HOST), Admission::Trial);
        breakers.record(HOST, true);
        assert_eq!(breakers.state(HOST), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(breakers.admit(HOST), Admission::Rejected);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breakers.admit(HOST), Admission::Trial);
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_trial_is_replaced() {
        let breakers = breakers();
        for _ in 0..3 {
            breakers.record(HOST, true);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(HOST), Admission::Trial);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(breakers.admit(HOST), Admission::Trial);
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_are_independent() {
        let breakers = breakers();
        for _ in 0..3 {
            breakers.record(HOST, true);
        }
        assert_eq!(breakers.admit("other.test:443"), Admission::Allowed);
        assert_eq!(breakers.state("other.test:443"), BreakerState::Closed);
    }
}
