//! The scheduler: one tokio task per probe that runs it on its interval or cron schedule.
//!
//! A probe never has two requests in flight. Ticks that pass while a run is in flight are not
//! queued. They are reported once as [`ProbeEvent::Skipped`] when the run ends, and the next run
//! waits for the next tick, so a slow SalesLoft gets no burst of catch-up requests.
//!
//! While the probe's host is paused after a 429, each tick that comes before the end of the
//! pause is reported as skipped with [`SkipReason::RetryAfter`] instead of running. The first
//! tick at or after the end runs, so the pause ends with one request, not a burst. Ticks are
//! also skipped while the host's circuit breaker is open ([`SkipReason::CircuitOpen`]) and,
//! for `priority = "low"` probes, while the team's remaining budget is under the floor
//! ([`SkipReason::BudgetFloor`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ProbeResult, next_cron_after, run};
use crate::config::{Priority, ProbeSpec, Schedule};
use crate::salesloft::{Admission, Client};

/// Maximum single sleep before a cron probe reads the wall clock again, so a clock step delays
/// a run by at most this much.
const MAX_CRON_SLEEP: Duration = Duration::from_secs(60);

/// A report from the scheduler of one probe.
#[derive(Debug, Clone)]
pub enum ProbeEvent {
    /// A run finished.
    Result(ProbeResult),
    /// Ticks passed without a run.
    Skipped {
        /// Name of the probe.
        probe: Arc<str>,
        /// Cause of the skip.
        reason: SkipReason,
        /// Number of ticks that passed.
        count: u64,
    },
}

/// The cause of a scheduled tick passing without a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The previous run of the same probe was still in flight.
    InFlight,
    /// The probe's host was paused by a 429 response (its `Retry-After`, or the next minute).
    RetryAfter,
    /// The circuit breaker of the probe's host was open, or half-open with its trial in flight.
    CircuitOpen,
    /// The probe has `priority = "low"` and the team's remaining budget was under
    /// `budget_floor`.
    BudgetFloor,
}

impl SkipReason {
    /// Every reason, for exporters that pre-register series.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::InFlight,
        SkipReason::RetryAfter,
        SkipReason::CircuitOpen,
        SkipReason::BudgetFloor,
    ];

    /// Returns the name used in logs and metrics: `in_flight`, `retry_after`, `circuit_open`
    /// or `budget_floor`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InFlight => "in_flight",
            SkipReason::RetryAfter => "retry_after",
            SkipReason::CircuitOpen => "circuit_open",
            SkipReason::BudgetFloor => "budget_floor",
        }
    }
}

/// Returns the delay of a probe's first run after start-up, in `[0, every)`.
///
/// The delay comes from an FNV-1a hash of the name, so it is the same on every start and on
/// every host, while probes with different names spread over the interval.
pub fn splay_for(name: &str, every: Duration) -> Duration {
    let every_nanos = every.as_nanos();
    if every_nanos == 0 {
        return Duration::ZERO;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let nanos = u128::from(hash) % every_nanos;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Starts the task that runs `spec` on its schedule through `client`, sending each result and
/// skip to `events`. When `shutdown` turns true the task starts no new run, lets a run in
/// flight finish and send its result, then ends. When the sender of `shutdown` is dropped or
/// `events` is closed, the task ends at once and abandons a run in flight. Ticks are skipped
/// by [`admit`].
pub fn spawn_probe(
    spec: Arc<ProbeSpec>,
    client: Arc<Client>,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let gate_client = client.clone();
    let priority = spec.priority;
    let gate = move || admit(&gate_client, priority);
    let runner = move |spec: Arc<ProbeSpec>| {
        let client = client.clone();
        async move { run(&client, &spec).await }
    };
    tokio::spawn(drive_paused(
        spec,
        runner,
        gate,
        events,
        shutdown,
        SystemWallClock,
    ))
}

/// Decides whether a tick of a probe with `priority` runs through `client`, or why it is
/// skipped. A 429 pause comes first, then the budget floor of low-priority probes, and the
/// circuit breaker last, because admitting a half-open breaker's trial takes its one slot.
pub fn admit(client: &Client, priority: Priority) -> Option<SkipReason> {
    if client.paused_until().is_some() {
        return Some(SkipReason::RetryAfter);
    }
    if priority == Priority::Low {
        let floor = client.budget_settings().floor_remaining();
        if client
            .budget()
            .remaining(client.host())
            .is_some_and(|remaining| remaining < floor)
        {
            return Some(SkipReason::BudgetFloor);
        }
    }
    match client.breakers().admit(client.host()) {
        Admission::Allowed | Admission::Trial => None,
        Admission::Rejected => Some(SkipReason::CircuitOpen),
    }
}

/// A source of wall-clock time, so tests can drive cron schedules with a paused tokio clock.
pub(crate) trait WallClock: Send + 'static {
    /// Returns the current wall-clock time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub(crate) struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Runs one probe on its schedule with no rate-limit pause; `runner` performs one run.
#[cfg(test)]
pub(crate) async fn drive<R, F>(
    spec: Arc<ProbeSpec>,
    runner: R,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: watch::Receiver<bool>,
    wall: impl WallClock,
) where
    R: Fn(Arc<ProbeSpec>) -> F + Send + 'static,
    F: Future<Output = ProbeResult> + Send,
{
    drive_paused(spec, runner, || None, events, shutdown, wall).await;
}

/// Runs one probe on its schedule. `runner` performs one run, and `gate` returns why a tick
/// must be skipped, or `None` to run it.
pub(crate) async fn drive_paused<R, F, P>(
    spec: Arc<ProbeSpec>,
    runner: R,
    gate: P,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: watch::Receiver<bool>,
    wall: impl WallClock,
) where
    R: Fn(Arc<ProbeSpec>) -> F + Send + 'static,
    F: Future<Output = ProbeResult> + Send,
    P: Fn() -> Option<SkipReason> + Send + 'static,
{
    let mut driver = Driver {
        spec: spec.clone(),
        runner,
        gate,
        events,
        shutdown,
    };
    tracing::debug!(probe = %spec.name, "probe scheduler started");
    match &spec.schedule {
        Schedule::Interval { every, splay } => driver.on_interval(*every, *splay).await,
        Schedule::Cron { cron, zone, .. } => driver.on_cron(cron, *zone, &wall).await,
    }
    tracing::debug!(probe = %spec.name, "probe scheduler stopped");
}

/// The loop state of one probe's task.
struct Driver<R, P> {
    spec: Arc<ProbeSpec>,
    runner: R,
    gate: P,
    events: mpsc::UnboundedSender<ProbeEvent>,
    shutdown: watch::Receiver<bool>,
}

/// Whether the task goes on after a step.
enum Flow {
    Continue,
    Stop,
}

impl<R, F, P> Driver<R, P>
where
    R: Fn(Arc<ProbeSpec>) -> F,
    F: Future<Output = ProbeResult>,
    P: Fn() -> Option<SkipReason>,
{
    /// Runs at `start + splay + k * every` on the monotonic clock.
    async fn on_interval(&mut self, every: Duration, splay: Duration) {
        // NOTE: a zero interval is a configuration error. The 1 ms floor only prevents a
        // division by zero, and the probe then runs back to back.
        let every = every.max(Duration::from_millis(1));
        let first = Instant::now() + splay;
        let mut index: u64 = 0;
        loop {
            let tick = first + every_times(every, index);
            if let Flow::Stop = self.sleep_until(tick).await {
                return;
            }
            if let Some(reason) = (self.gate)() {
                if let Flow::Stop = self.report(reason, 1) {
                    return;
                }
                index += 1;
                continue;
            }
            let lateness = Instant::now().saturating_duration_since(tick);
            if let Flow::Stop = self.run_once(lateness).await {
                return;
            }
            // The next tick is the first one at or after the end of the run. The ticks before it
            // passed while the run was in flight.
            let since_first = Instant::now().saturating_duration_since(first);
            let next = ticks_until(since_first, every).max(index + 1);
            if let Flow::Stop = self.report_skipped(next - index - 1) {
                return;
            }
            index = next;
        }
    }

    /// Runs at the times of `cron` in `zone`, waiting on the wall clock.
    async fn on_cron(&mut self, cron: &croner::Cron, zone: Tz, wall: &impl WallClock) {
        let mut after = wall.now();
        loop {
            let Some(next) = next_cron_after(cron, zone, after) else {
                tracing::warn!(probe = %self.spec.name, "cron schedule has no future run");
                let _ = wait_for_shutdown(&mut self.shutdown).await;
                return;
            };
            if let Flow::Stop = self.sleep_until_wall(next, wall).await {
                return;
            }
            if let Some(reason) = (self.gate)() {
                if let Flow::Stop = self.report(reason, 1) {
                    return;
                }
                after = next;
                continue;
            }
            let started = wall.now();
            let lateness = (started - next).to_std().unwrap_or_default();
            if let Flow::Stop = self.run_once(lateness).await {
                return;
            }
            let finished = wall.now();
            let skipped = count_cron_runs(cron, zone, started.max(next), finished);
            if let Flow::Stop = self.report_skipped(skipped) {
                return;
            }
            // The next run comes after the time just served and after the start of the run. A
            // time equal to the end of the run still runs.
            after = (finished - chrono::TimeDelta::nanoseconds(1))
                .max(started)
                .max(next);
        }
    }

    /// Sleeps on the tokio clock until the wall clock reaches `target`. The wall clock is read
    /// again after each sleep, so a clock stepped back does not run the probe early, and a
    /// clock stepped forward runs it once, late by at most [`MAX_CRON_SLEEP`].
    async fn sleep_until_wall(&mut self, target: DateTime<Utc>, wall: &impl WallClock) -> Flow {
        loop {
            let now = wall.now();
            let Ok(remaining) = (target - now).to_std() else {
                return Flow::Continue;
            };
            if remaining.is_zero() {
                return Flow::Continue;
            }
            let step = remaining.min(MAX_CRON_SLEEP);
            if let Flow::Stop = self.sleep_until(Instant::now() + step).await {
                return Flow::Stop;
            }
        }
    }

    async fn sleep_until(&mut self, deadline: Instant) -> Flow {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => Flow::Continue,
            stop = wait_for_shutdown(&mut self.shutdown) => stop,
        }
    }

    /// Runs the probe once and sends its result. A stop request (`true`) lets the run finish,
    /// so its result is still recorded; a dropped stop sender abandons the run. `lateness` is
    /// how long after its scheduled time the run started, logged for jitter measurements.
    async fn run_once(&mut self, lateness: Duration) -> Flow {
        let run = (self.runner)(self.spec.clone());
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return Flow::Stop;
                    }
                }
            }
        };
        tracing::debug!(
            probe = %self.spec.name,
            outcome = %result.outcome,
            latency_ms = result.latency.as_millis(),
            latency_us = result.latency.as_micros(),
            lateness_us = lateness.as_micros(),
            "probe finished"
        );
        self.send(ProbeEvent::Result(result))
    }

    fn report_skipped(&mut self, count: u64) -> Flow {
        self.report(SkipReason::InFlight, count)
    }

    fn report(&mut self, reason: SkipReason, count: u64) -> Flow {
        if count == 0 {
            return Flow::Continue;
        }
        match reason {
            SkipReason::InFlight => {
                tracing::warn!(probe = %self.spec.name, count, reason = reason.as_str(), "probe ticks skipped");
            }
            // The pause, the breaker and the budget log their own changes; a line per tick
            // would repeat them.
            SkipReason::RetryAfter | SkipReason::CircuitOpen | SkipReason::BudgetFloor => {
                tracing::debug!(probe = %self.spec.name, count, reason = reason.as_str(), "probe ticks skipped");
            }
        }
        self.send(ProbeEvent::Skipped {
            probe: self.spec.name.clone(),
            reason,
            count,
        })
    }

    fn send(&self, event: ProbeEvent) -> Flow {
        match self.events.send(event) {
            Ok(()) => Flow::Continue,
            Err(_) => {
                tracing::debug!(probe = %self.spec.name, "probe event receiver closed");
                Flow::Stop
            }
        }
    }
}

/// Waits until shutdown is requested or its sender is dropped.
async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) -> Flow {
    let _ = shutdown.wait_for(|stop| *stop).await;
    Flow::Stop
}

/// Returns `every * index`, saturating at the largest duration.
fn every_times(every: Duration, index: u64) -> Duration {
    let nanos = every.as_nanos().saturating_mul(u128::from(index));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Returns the index of the first tick at or after `elapsed` since the first tick.
fn ticks_until(elapsed: Duration, every: Duration) -> u64 {
    let every = every.as_nanos();
    let ticks = elapsed.as_nanos().div_ceil(every);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Counts the cron runs strictly between `from` and `until`.
fn count_cron_runs(
    cron: &croner::Cron,
    zone: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> u64 {
    let mut count = 0;
    let mut at = from;
    while let Some(next) = next_cron_after(cron, zone, at) {
        if next >= until {
            break;
        }
        count += 1;
        at = next;
    }
    count
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
