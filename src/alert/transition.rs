//! Alert transitions: what the engine hands to the notifiers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

/// Priority of an alert rule, as in the go-live checklist: P1 pages, P3 informs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    P1,
    P2,
    P3,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "P1" | "p1" => Ok(Severity::P1),
            "P2" | "p2" => Ok(Severity::P2),
            "P3" | "p3" => Ok(Severity::P3),
            other => Err(format!("invalid severity {other:?}: expected P1, P2 or P3")),
        }
    }
}

/// Whether an alert started or stopped firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionKind {
    Firing,
    Resolved,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Firing => "firing",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// One firing or resolved event of one alert instance (a rule applied to a probe).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Stable id of the alert instance: the same for its firing and its resolved event.
    pub alert_id: String,
    /// Number of this transition among the transitions of its alert instance, starting at 1
    /// and kept across restarts; with `alert_id` it identifies the transition.
    pub sequence: u64,
    pub kind: TransitionKind,
    /// Rule name, such as `Auth down`.
    pub rule: Arc<str>,
    /// Probe name, such as `me`.
    pub probe: Arc<str>,
    /// Location label of this loftwatch instance.
    pub location: Arc<str>,
    pub severity: Severity,
    /// The rule's expression as written in the configuration.
    pub expr: Arc<str>,
    /// Value the rule's left-hand side had at the transition, when it had data.
    pub value: Option<f64>,
    /// The value as shown to a person, with its unit: `3`, `2450 ms`, `21.5 %`.
    pub value_text: String,
    /// The threshold as shown to a person: `> 0`, `> 2000 ms`.
    pub threshold_text: String,
    /// Window the rule looks at, as written: `1m`.
    pub window_text: String,
    /// What to do, from the rule's `runbook` key.
    pub runbook: Arc<str>,
    /// One-line summary with the value filled in.
    pub summary: String,
    /// Wall-clock time of this transition.
    pub at: SystemTime,
    /// Wall-clock time the alert started firing; equal to `at` for a firing transition.
    pub firing_since: SystemTime,
}
