//! The rule engine: evaluates every rule against the recorder's windows and turns the results
//! into firing and resolved transitions, one alert instance per (rule, probe).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::state::{AlertStatus, Change, Instance, SavedAlert};
use super::{
    Aggregate, AlertState, EvalContext, Measurement, NoSignals, Transition, TransitionKind, text,
};
use crate::config::{ProbeSpec, RuleSpec};
use crate::stats::Recorder;

/// Evaluates alert rules and keeps the state of every alert instance.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<RuleSpec>,
    /// Probe names in configuration order, with their latency baselines.
    probes: Vec<(Arc<str>, Duration)>,
    location: Arc<str>,
    /// Keyed by (rule name, probe name).
    instances: BTreeMap<(Arc<str>, Arc<str>), Instance>,
    /// Instances dropped since the last [`Engine::take_changes`], as (rule name, probe name).
    removed: Vec<(Arc<str>, Arc<str>)>,
    /// False when no instance changed since the last [`Engine::take_changes`], which then
    /// skips scanning every instance.
    unsaved: bool,
}

/// What changed in the engine since the last [`Engine::take_changes`], for the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertChanges {
    /// Instances whose state or timers changed, in their new form.
    pub saved: Vec<SavedAlert>,
    /// Instances that no longer exist, as (rule name, probe name).
    pub removed: Vec<(Arc<str>, Arc<str>)>,
}

impl AlertChanges {
    /// Returns whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.saved.is_empty() && self.removed.is_empty()
    }

    /// Appends `later` to these changes; applied in order, the later state of an instance wins.
    pub fn extend(&mut self, later: AlertChanges) {
        self.saved.extend(later.saved);
        self.removed.extend(later.removed);
    }
}

impl Engine {
    /// Creates an engine with every alert inactive. `location` labels the transitions.
    pub fn new(rules: &[RuleSpec], probes: &[ProbeSpec], location: Arc<str>) -> Engine {
        let probes = probes
            .iter()
            .map(|probe| (Arc::clone(&probe.name), probe.latency_baseline))
            .collect();
        Engine {
            rules: rules.to_vec(),
            probes,
            location,
            instances: BTreeMap::new(),
            removed: Vec::new(),
            unsaved: false,
        }
    }

    /// Restores saved alert instances, before the first evaluation after a start, so a firing
    /// alert is not fired again and its `for` and `keep_firing_for` timers keep running. Saved
    /// instances of rules or probes no longer configured are skipped and reported as removed
    /// by the next [`Engine::take_changes`]. Returns the number of instances restored.
    pub fn restore(&mut self, saved: &[SavedAlert], now: Instant, wall: SystemTime) -> usize {
        self.unsaved = true;
        let mut restored = 0;
        for alert in saved {
            let key = (Arc::clone(&alert.rule), Arc::clone(&alert.probe));
            let rule = self.rules.iter().find(|rule| rule.name == alert.rule);
            let probe_known = self.probes.iter().any(|(name, _)| *name == alert.probe);
            match rule {
                Some(rule) if probe_known && selects(rule, &alert.probe) => {
                    self.instances
                        .insert(key, Instance::restore(alert, now, wall));
                    restored += 1;
                }
                _ => self.removed.push(key),
            }
        }
        restored
    }

    /// Returns the instances changed or removed since the last call, with timers converted to
    /// wall-clock times, and clears the record of changes.
    pub fn take_changes(&mut self, now: Instant, wall: SystemTime) -> AlertChanges {
        if !std::mem::take(&mut self.unsaved) {
            return AlertChanges {
                saved: Vec::new(),
                removed: std::mem::take(&mut self.removed),
            };
        }
        let saved = self
            .instances
            .iter_mut()
            .filter(|(_, instance)| instance.changed)
            .map(|((rule, probe), instance)| {
                instance.changed = false;
                instance.save(rule, probe, now, wall)
            })
            .collect();
        AlertChanges {
            saved,
            removed: std::mem::take(&mut self.removed),
        }
    }

    /// Evaluates the rules of `probe` (right after one of its results was recorded), or of
    /// every probe when `probe` is `None` (on the periodic tick). `now` measures `for` and
    /// `keep_firing_for`, and ends the windows; `wall` stamps the transitions.
    pub fn evaluate(
        &mut self,
        recorder: &Recorder,
        now: Instant,
        wall: SystemTime,
        probe: Option<&str>,
    ) -> Vec<Transition> {
        self.evaluate_with(recorder, &NoSignals, now, wall, probe)
    }

    /// Evaluates like [`Engine::evaluate`], reading the live values of signal rules such as
    /// `circuit_open` from `context`.
    pub fn evaluate_with(
        &mut self,
        recorder: &Recorder,
        context: &dyn EvalContext,
        now: Instant,
        wall: SystemTime,
        probe: Option<&str>,
    ) -> Vec<Transition> {
        let mut transitions = Vec::new();
        // After one result only that probe's instances are evaluated, found once rather than
        // compared per rule.
        let probes: &[(Arc<str>, Duration)] = match probe {
            Some(only) => match self.probes.iter().position(|(name, _)| &**name == only) {
                Some(index) => std::slice::from_ref(&self.probes[index]),
                None => &[],
            },
            None => &self.probes,
        };
        let mut unsaved = false;
        for rule in &self.rules {
            for (name, baseline) in probes {
                if !selects(rule, name) {
                    continue;
                }
                let window = recorder.window(name, now, rule.window);
                let signals = context.signals(name);
                let evaluation =
                    rule.expr
                        .evaluate_with(&window, rule.min_samples, *baseline, &signals);
                let key = (Arc::clone(&rule.name), Arc::clone(name));
                let instance = self
                    .instances
                    .entry(key)
                    .or_insert_with(|| Instance::new(wall));
                if let Some(evaluation) = evaluation {
                    instance.last_value = Some(evaluation.value);
                }
                let holds = evaluation.map(|evaluation| evaluation.holds);
                let change = instance.step(holds, now, wall, rule.for_, rule.keep_firing_for);
                unsaved |= instance.changed;
                let kind = match change {
                    Change::None => continue,
                    Change::Fire => TransitionKind::Firing,
                    Change::Resolve => TransitionKind::Resolved,
                };
                let context = Context {
                    rule,
                    probe: name,
                    baseline: *baseline,
                    location: &self.location,
                };
                transitions.push(context.transition(kind, instance, wall));
                if kind == TransitionKind::Resolved {
                    instance.firing_since = None;
                }
            }
        }
        self.unsaved |= unsaved;
        transitions
    }

    /// Returns the state of every alert instance evaluated so far, ordered by rule and probe
    /// name.
    pub fn snapshot(&self) -> Vec<AlertStatus> {
        let severities: HashMap<&str, _> = self
            .rules
            .iter()
            .map(|rule| (&*rule.name, rule.severity))
            .collect();
        self.instances
            .iter()
            .filter_map(|((rule, probe), instance)| {
                Some(AlertStatus {
                    alert_id: text::alert_id(rule, probe),
                    rule: Arc::clone(rule),
                    probe: Arc::clone(probe),
                    severity: *severities.get(&**rule)?,
                    state: instance.state,
                    value_text: instance.last_value.map(|value| value.to_string()),
                    since: instance.since,
                })
            })
            .collect()
    }

    /// Keeps only the probes named in `names`, for a reload that removed probes. Every firing
    /// alert of a removed probe resolves, so receivers do not show it firing forever; the
    /// returned transitions carry its last value.
    pub fn retain_probes(&mut self, names: &[&str], wall: SystemTime) -> Vec<Transition> {
        self.unsaved = true;
        let baselines: HashMap<Arc<str>, Duration> = self.probes.iter().cloned().collect();
        self.probes.retain(|(name, _)| names.contains(&&**name));
        let mut transitions = Vec::new();
        let removed: Vec<_> = self
            .instances
            .keys()
            .filter(|(_, probe)| !names.contains(&&**probe))
            .cloned()
            .collect();
        for key in removed {
            let Some(mut instance) = self.instances.remove(&key) else {
                continue;
            };
            self.removed.push(key.clone());
            let rule = self.rules.iter().find(|rule| rule.name == key.0);
            if let (AlertState::Firing, Some(rule)) = (instance.state, rule) {
                let baseline = baselines.get(&key.1).copied().unwrap_or_default();
                let context = Context {
                    rule,
                    probe: &key.1,
                    baseline,
                    location: &self.location,
                };
                instance.sequence += 1;
                transitions.push(context.transition(TransitionKind::Resolved, &instance, wall));
            }
        }
        transitions
    }

    /// Applies a reloaded configuration and keeps the state of every alert instance whose rule
    /// and probe still exist, so a reload neither re-sends nor drops an alert. Every firing
    /// alert whose rule or probe was removed, or whose rule no longer selects its probe,
    /// resolves; the returned transitions carry its last value.
    pub fn reconfigure(
        &mut self,
        rules: &[RuleSpec],
        probes: &[ProbeSpec],
        location: Arc<str>,
        wall: SystemTime,
    ) -> Vec<Transition> {
        self.unsaved = true;
        let kept = |rule_name: &str, probe: &str| {
            rules
                .iter()
                .any(|rule| &*rule.name == rule_name && selects(rule, probe))
                && probes.iter().any(|spec| &*spec.name == probe)
        };
        let removed: Vec<_> = self
            .instances
            .keys()
            .filter(|(rule, probe)| !kept(rule, probe))
            .cloned()
            .collect();
        let baselines: HashMap<Arc<str>, Duration> = self.probes.iter().cloned().collect();
        let mut transitions = Vec::new();
        for key in removed {
            let Some(instance) = self.instances.remove(&key) else {
                continue;
            };
            let rule = self.rules.iter().find(|rule| rule.name == key.0);
            if let (AlertState::Firing, Some(rule)) = (instance.state, rule) {
                let context = Context {
                    rule,
                    probe: &key.1,
                    baseline: baselines.get(&key.1).copied().unwrap_or_default(),
                    location: &self.location,
                };
                transitions.push(context.transition(TransitionKind::Resolved, &instance, wall));
            }
        }
        let fresh = Engine::new(rules, probes, location);
        self.rules = fresh.rules;
        self.probes = fresh.probes;
        self.location = fresh.location;
        transitions
    }
}

/// Returns whether `rule` applies to the probe `name`: an empty probe list selects every probe.
fn selects(rule: &RuleSpec, name: &str) -> bool {
    rule.probes.is_empty() || rule.probes.iter().any(|probe| &**probe == name)
}

/// Inputs of a transition besides the alert instance.
struct Context<'a> {
    rule: &'a RuleSpec,
    probe: &'a Arc<str>,
    baseline: Duration,
    location: &'a Arc<str>,
}

impl Context<'_> {
    fn transition(
        &self,
        kind: TransitionKind,
        instance: &Instance,
        wall: SystemTime,
    ) -> Transition {
        let rule = self.rule;
        let value = instance.last_value;
        let value_text = value.map_or_else(|| "no data".to_owned(), |value| value.to_string());
        let threshold_text = rule.expr.threshold_text(self.baseline);
        let window_text = text::window(rule.window);
        let summary = match &rule.summary {
            Some(template) => template
                .replace("{value}", &value_text)
                .replace("{threshold}", &threshold_text)
                .replace("{probe}", self.probe)
                .replace("{window}", &window_text),
            None => self.default_summary(value, &value_text, &threshold_text, &window_text),
        };
        Transition {
            alert_id: text::alert_id(&rule.name, self.probe),
            sequence: instance.sequence,
            kind,
            rule: Arc::clone(&rule.name),
            probe: Arc::clone(self.probe),
            location: Arc::clone(self.location),
            severity: rule.severity,
            expr: Arc::clone(&rule.expr_text),
            value: value.map(Measurement::display_value),
            value_text,
            threshold_text,
            window_text,
            runbook: Arc::clone(&rule.runbook),
            summary,
            at: wall,
            firing_since: instance.firing_since.unwrap_or(wall),
        }
    }

    /// Builds the summary of a rule without a template: `3 responses matching status == 401 in
    /// 1m on probe me`, `p99 latency 2450 ms in 5m on probe me (threshold > 2000 ms)`.
    fn default_summary(
        &self,
        measurement: Option<Measurement>,
        value: &str,
        threshold: &str,
        window: &str,
    ) -> String {
        let subject = self.rule.expr.subject_text(measurement);
        let probe = self.probe;
        match self.rule.expr.aggregate {
            Aggregate::Count(_) | Aggregate::Ratio(_) => {
                format!("{value} {subject} in {window} on probe {probe}")
            }
            Aggregate::Rate(_) => format!("{value} {subject} over {window} on probe {probe}"),
            Aggregate::Quantile(_)
            | Aggregate::Max
            | Aggregate::MinRemaining
            | Aggregate::LastRemaining => {
                format!("{subject} {value} in {window} on probe {probe} (threshold {threshold})")
            }
            Aggregate::Signal(_) => {
                format!("{subject}: {value} on probe {probe} (threshold {threshold})")
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
