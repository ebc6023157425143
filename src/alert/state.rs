//! The lifecycle of one alert instance: inactive, pending while `for` runs, firing, and back
//! to inactive once the condition has stayed false for `keep_firing_for`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Measurement, Severity};

/// Lifecycle state of an alert instance. A resolved alert is inactive again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The condition is false, or has never been evaluated with data.
    Inactive,
    /// The condition is true but has not held for the rule's `for` yet.
    Pending,
    /// The alert fired and has not resolved.
    Firing,
}

impl AlertState {
    /// Returns the state in lower case, as Prometheus names alert states.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current state of one alert instance, for the terminal display and the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertStatus {
    pub alert_id: String,
    pub rule: Arc<str>,
    pub probe: Arc<str>,
    pub severity: Severity,
    pub state: AlertState,
    /// The value at the last evaluation that had data, with its unit, such as `2450 ms`.
    pub value_text: Option<String>,
    /// Wall-clock time the instance entered its current state, or was first evaluated.
    pub since: SystemTime,
}

/// Notification that a step of the state machine requires the engine to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    None,
    Fire,
    Resolve,
}

/// The persisted state of one alert instance, with its timers as wall-clock times so that a
/// restarted daemon can convert them to its own monotonic clock.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedAlert {
    /// Rule name.
    pub rule: Arc<str>,
    /// Probe name.
    pub probe: Arc<str>,
    pub state: AlertState,
    /// Wall-clock time the instance entered its current state.
    pub since: SystemTime,
    /// Wall-clock time of the firing transition, while firing.
    pub firing_since: Option<SystemTime>,
    /// Wall-clock time the condition became true, while pending.
    pub pending_since: Option<SystemTime>,
    /// Wall-clock time the condition became false, while firing and waiting to resolve.
    pub false_since: Option<SystemTime>,
    /// Number of transitions this instance has made, which numbers the next one.
    pub sequence: u64,
}

/// The state of one (rule, probe) pair between evaluations.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) state: AlertState,
    pub(super) since: SystemTime,
    /// Wall-clock time of the firing transition, while firing.
    pub(super) firing_since: Option<SystemTime>,
    /// The value at the last evaluation that had data.
    pub(super) last_value: Option<Measurement>,
    /// When the condition became true, while pending.
    pending_since: Option<Instant>,
    /// First evaluation of the current run of false ones, while firing.
    false_since: Option<Instant>,
    /// Transitions made so far; the next transition gets `sequence + 1`.
    pub(super) sequence: u64,
    /// True when the state or a timer changed since the instance was last saved.
    pub(super) changed: bool,
}

impl Instance {
    pub(super) fn new(wall: SystemTime) -> Instance {
        Instance {
            state: AlertState::Inactive,
            since: wall,
            firing_since: None,
            last_value: None,
            pending_since: None,
            false_since: None,
            sequence: 0,
            changed: false,
        }
    }

    /// Rebuilds an instance from its saved form. Wall-clock timers become instants that lie as
    /// far before `now` as the saved times lie before `wall`; a saved time in the future (the
    /// wall clock stepped back) counts as `now`.
    pub(super) fn restore(saved: &SavedAlert, now: Instant, wall: SystemTime) -> Instance {
        let to_instant = |time: SystemTime| {
            let age = wall.duration_since(time).unwrap_or_default();
            now.checked_sub(age).unwrap_or(now)
        };
        Instance {
            state: saved.state,
            since: saved.since,
            firing_since: saved.firing_since,
            last_value: None,
            pending_since: saved.pending_since.map(to_instant),
            false_since: saved.false_since.map(to_instant),
            sequence: saved.sequence,
            changed: false,
        }
    }

    /// Returns the saved form of this instance, converting its timers to wall-clock times.
    pub(super) fn save(
        &self,
        rule: &Arc<str>,
        probe: &Arc<str>,
        now: Instant,
        wall: SystemTime,
    ) -> SavedAlert {
        let to_wall = |instant: Instant| {
            let age = now.saturating_duration_since(instant);
            wall.checked_sub(age).unwrap_or(wall)
        };
        SavedAlert {
            rule: Arc::clone(rule),
            probe: Arc::clone(probe),
            state: self.state,
            since: self.since,
            firing_since: self.firing_since,
            pending_since: self.pending_since.map(to_wall),
            false_since: self.false_since.map(to_wall),
            sequence: self.sequence,
        }
    }

    /// Advances the state machine with one evaluation. `holds` is `None` for no data, which
    /// changes nothing: it neither fires nor resolves, and neither starts nor stops a timer.
    pub(super) fn step(
        &mut self,
        holds: Option<bool>,
        now: Instant,
        wall: SystemTime,
        for_: Duration,
        keep_firing_for: Duration,
    ) -> Change {
        let Some(holds) = holds else {
            return Change::None;
        };
        match (self.state, holds) {
            (AlertState::Inactive, true) if for_.is_zero() => self.fire(wall),
            (AlertState::Inactive, true) => {
                self.pending_since = Some(now);
                self.enter(AlertState::Pending, wall);
                Change::None
            }
            (AlertState::Pending, true) => {
                let started = self.pending_since.unwrap_or(now);
                if now.duration_since(started) >= for_ {
                    self.fire(wall)
                } else {
                    Change::None
                }
            }
            (AlertState::Pending, false) => {
                self.pending_since = None;
                self.enter(AlertState::Inactive, wall);
                Change::None
            }
            (AlertState::Firing, true) => {
                if self.false_since.take().is_some() {
                    self.changed = true;
                }
                Change::None
            }
            (AlertState::Firing, false) => {
                let started = match self.false_since {
                    Some(started) => started,
                    None => {
                        self.changed = true;
                        *self.false_since.insert(now)
                    }
                };
                if now.duration_since(started) >= keep_firing_for {
                    self.false_since = None;
                    self.sequence += 1;
                    self.enter(AlertState::Inactive, wall);
                    Change::Resolve
                } else {
                    Change::None
                }
            }
            (AlertState::Inactive, false) => Change::None,
        }
    }

    fn fire(&mut self, wall: SystemTime) -> Change {
        self.pending_since = None;
        self.false_since = None;
        self.firing_since = Some(wall);
        self.sequence += 1;
        self.enter(AlertState::Firing, wall);
        Change::Fire
    }

    fn enter(&mut self, state: AlertState, wall: SystemTime) {
        self.state = state;
        self.since = wall;
        self.changed = true;
    }
}
