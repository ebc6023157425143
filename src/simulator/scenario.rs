//! Scenario files: a TOML timeline of faults that start at `at` and end after `duration`.
//!
//! ```toml
//! name = "me outage"
//!
//! [[step]]
//! at = "10s"
//! duration = "30s"
//! kind = "status"
//! path = "/v2/me.json"
//! statuses = [500, 503]
//! ```
//!
//! A step is a fault table (see [`RawFault`]) plus `at` (required) and `duration` (absent means
//! until the faults are cleared). Times are on the tokio clock from the moment the scenario
//! starts playing, so a paused clock drives them in tests.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use toml::Value;

use super::fault::{Fault, RawFault};
use super::state::{FaultId, State};

/// Keys of a step besides `at` and `duration`, with the TOML type each takes.
const FAULT_KEYS: [(&str, &str); 12] = [
    ("kind", "string"),
    ("path", "string"),
    ("share", "float"),
    ("status", "integer"),
    ("statuses", "array"),
    ("latency", "string"),
    ("latency_min", "string"),
    ("latency_max", "string"),
    ("latency_mean", "string"),
    ("latency_std_dev", "string"),
    ("body_duration", "string"),
    ("bytes", "integer"),
];

/// Errors of a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The text is not valid TOML.
    #[error("invalid scenario TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A top-level key other than `name` and `step`.
    #[error("unknown top-level key `{0}`: use `name` and `[[step]]` tables")]
    UnknownKey(String),
    /// The scenario has no `[[step]]` tables.
    #[error("scenario has no steps: add at least one [[step]] table")]
    NoSteps,
    /// A step has an invalid or unknown key.
    #[error("step {step}: key `{key}`: {message}")]
    Step {
        /// Position of the step in the file, from 1.
        step: usize,
        /// Key to change.
        key: String,
        /// Problem with the value and how to fix it.
        message: String,
    },
}

/// One step of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Time after the start of the scenario when the fault is set.
    pub at: Duration,
    /// How long the fault stays; `None` keeps it until faults are cleared.
    pub duration: Option<Duration>,
    /// The fault.
    pub fault: Fault,
}

/// A timeline of faults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    /// Name shown in logs.
    pub name: Option<String>,
    /// Steps in file order.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Parses a scenario file.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let table: toml::Table = toml::from_str(text)?;
        let mut scenario = Scenario::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("name", Value::String(name)) => scenario.name = Some(name),
                ("step", Value::Array(steps)) => {
                    for (index, step) in steps.into_iter().enumerate() {
                        scenario.steps.push(parse_step(index + 1, step)?);
                    }
                }
                _ => return Err(ScenarioError::UnknownKey(key)),
            }
        }
        if scenario.steps.is_empty() {
            return Err(ScenarioError::NoSteps);
        }
        Ok(scenario)
    }
}

fn step_error(step: usize, key: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Step {
        step,
        key: key.to_owned(),
        message: message.into(),
    }
}

fn parse_time(step: usize, key: &str, value: &Value) -> Result<Duration, ScenarioError> {
    match value {
        Value::Integer(seconds) if *seconds >= 0 => Ok(Duration::from_secs(*seconds as u64)),
        Value::String(text) => humantime::parse_duration(text).map_err(|error| {
            step_error(
                step,
                key,
                format!("invalid duration {text:?} ({error}): write \"10s\""),
            )
        }),
        _ => Err(step_error(
            step,
            key,
            "expected a duration such as \"10s\" or whole seconds",
        )),
    }
}

fn parse_step(step: usize, value: Value) -> Result<Step, ScenarioError> {
    let Value::Table(mut table) = value else {
        return Err(step_error(step, "step", "expected a table: write [[step]]"));
    };
    let at = match table.remove("at") {
        Some(value) => parse_time(step, "at", &value)?,
        None => return Err(step_error(step, "at", "missing: set when the fault starts")),
    };
    let duration = match table.remove("duration") {
        Some(value) => Some(parse_time(step, "duration", &value)?),
        None => None,
    };
    for (key, value) in &table {
        let Some((_, expected)) = FAULT_KEYS.iter().find(|(name, _)| name == key) else {
            return Err(step_error(step, key, "unknown key"));
        };
        let type_matches = match *expected {
            "string" => value.is_str(),
            "integer" => value.is_integer(),
            "float" => value.is_float() || value.is_integer(),
            "array" => value.is_array(),
            _ => true,
        };
        if !type_matches {
            return Err(step_error(
                step,
                key,
                format!("expected {expected}, found {}", value.type_str()),
            ));
        }
        check_integer_range(step, key, value)?;
    }
    // TOML integers are valid `share` values but serde expects a float there.
    if let Some(Value::Integer(share)) = table.get("share") {
        let share = *share as f64;
        table.insert("share".to_owned(), Value::Float(share));
    }
    let raw: RawFault = Value::Table(table)
        .try_into()
        .map_err(|error: toml::de::Error| step_error(step, "step", error.message().to_owned()))?;
    let fault = Fault::try_from(raw).map_err(|error| step_error(step, error.key, error.message))?;
    Ok(Step {
        at,
        duration,
        fault,
    })
}

/// Rejects integers that do not fit the field, which serde would report without the key.
fn check_integer_range(step: usize, key: &str, value: &Value) -> Result<(), ScenarioError> {
    let fits = match (key, value) {
        ("status", Value::Integer(code)) => u16::try_from(*code).is_ok(),
        ("statuses", Value::Array(codes)) => codes.iter().all(|code| {
            code.as_integer()
                .is_some_and(|code| u16::try_from(code).is_ok())
        }),
        ("bytes", Value::Integer(bytes)) => usize::try_from(*bytes).is_ok(),
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(step_error(
            step,
            key,
            "out of range: use status codes 100..=599 and bytes >= 0",
        ))
    }
}

enum Event {
    Add(usize),
    Remove(usize),
}

/// Plays `scenario` on `state` from now; [`State::scenario_tasks`] keeps the task so that
/// clearing faults stops it.
pub(crate) fn play(state: &Arc<State>, scenario: Scenario) {
    let start = Instant::now();
    let mut events: Vec<(Duration, Event)> = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        events.push((step.at, Event::Add(index)));
        if let Some(duration) = step.duration {
            events.push((step.at + duration, Event::Remove(index)));
        }
    }
    // At equal times, removals go first so that back-to-back steps never overlap.
    events.sort_by_key(|(time, event)| (*time, matches!(event, Event::Add(_))));

    let task_state = Arc::clone(state);
    let name = scenario.name.clone().unwrap_or_default();
    let task = tokio::spawn(async move {
        tracing::info!(scenario = %name, steps = scenario.steps.len(), "scenario started");
        let mut ids: Vec<Option<FaultId>> = vec![None; scenario.steps.len()];
        for (time, event) in events {
            tokio::time::sleep_until(start + time).await;
            let mut inner = task_state.lock();
            match event {
                Event::Add(index) => {
                    ids[index] = Some(inner.add_fault(scenario.steps[index].fault.clone()));
                }
                Event::Remove(index) => {
                    if let Some(id) = ids[index].take() {
                        inner.remove_fault(id);
                    }
                }
            }
        }
        tracing::info!(scenario = %name, "scenario finished");
    });
    let mut tasks = state
        .scenario_tasks
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tasks.retain(|task| !task.is_finished());
    tasks.push(task.abort_handle());
}
