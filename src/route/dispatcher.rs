//! The dispatcher: decides which receivers get each transition, mutes silenced, inhibited and
//! maintained alerts, delays notifications for `group_wait` and `group_interval`, and repeats
//! firing alerts after `repeat_interval`.
//!
//! Grouping batches the committed notifications of one group (one route and one value of its
//! `group_by` labels) and releases them together, but each transition still becomes its own
//! notification: an email per alert, never a digest. A new group waits `group_wait`, and
//! firing notifications that join a group which already notified wait until `group_interval`
//! has passed since its last release. Unlike Alertmanager, resolved notifications of such a
//! group are not held for `group_interval`: with no digest to re-send, holding them would only
//! delay the all-clear. The outbox rows are written before a group waits, so a notification
//! held when loftwatch stops is sent at the next start.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::info;

use super::matcher::{Labels, labels_of};
use super::routes::RoutingConfig;
use super::silence::SilenceBook;
use crate::alert::{Transition, TransitionKind};
use crate::store::OutboxEntry;

/// A committed notification and the receivers it goes to.
pub type RoutedEntry = (OutboxEntry, Vec<&'static str>);

/// Reason an alert's notifications are muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteReason {
    Silenced,
    Inhibited,
    Maintenance,
}

impl MuteReason {
    /// Returns the name used in logs: `silenced`, `inhibited` or `maintenance`.
    pub fn as_str(self) -> &'static str {
        match self {
            MuteReason::Silenced => "silenced",
            MuteReason::Inhibited => "inhibited",
            MuteReason::Maintenance => "maintenance",
        }
    }
}

/// A firing alert as the dispatcher tracks it.
struct FiringAlert {
    transition: Transition,
    labels: Labels,
    /// Receivers that got its firing notification; empty while it was muted.
    notified: Vec<&'static str>,
    last_notified: Instant,
}

/// Notifications of one group that wait for their release.
struct Group {
    created: Instant,
    group_wait: Duration,
    group_interval: Duration,
    last_flush: Option<Instant>,
    pending: Vec<RoutedEntry>,
    /// Alert ids of the group that fire, so an empty group can be dropped after a flush.
    firing: Vec<String>,
}

impl Group {
    fn due_at(&self) -> Instant {
        match self.last_flush {
            None => self.created + self.group_wait,
            Some(flushed) => flushed + self.group_interval,
        }
    }
}

/// Routing state of one daemon.
pub struct Dispatcher {
    config: RoutingConfig,
    silences: Option<SilenceBook>,
    firing: HashMap<String, FiringAlert>,
    groups: HashMap<(Option<usize>, String), Group>,
}

impl Dispatcher {
    /// Creates a dispatcher; without `silences`, no alert is silenced.
    pub fn new(config: RoutingConfig, silences: Option<SilenceBook>) -> Dispatcher {
        Dispatcher {
            config,
            silences,
            firing: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// Tracks alerts that were firing when loftwatch stopped, each with the receivers its
    /// firing was queued for, so that they repeat and their resolves reach those receivers.
    /// Their repeat_interval counts from `now`.
    pub fn restore_firing(
        &mut self,
        firing: Vec<(Transition, Vec<String>)>,
        running: &[&'static str],
        now: Instant,
    ) {
        for (transition, receivers) in firing {
            let notified = running
                .iter()
                .copied()
                .filter(|name| receivers.iter().any(|receiver| receiver == name))
                .collect();
            self.firing.insert(
                transition.alert_id.clone(),
                FiringAlert {
                    labels: labels_of(&transition),
                    transition,
                    notified,
                    last_notified: now,
                },
            );
        }
    }

    /// Replaces the routing configuration after a reload. Groups already waiting keep their
    /// times, and silences are untouched.
    pub fn set_config(&mut self, config: RoutingConfig) {
        self.config = config;
    }

    /// Returns the silences, when the dispatcher has them.
    pub fn silences(&self) -> Option<&SilenceBook> {
        self.silences.as_ref()
    }

    /// Returns why the alert with `labels` is muted at `now`, or `None` when it is not.
    pub fn mute_reason(&self, labels: &Labels, now: SystemTime) -> Option<MuteReason> {
        if self
            .silences
            .as_ref()
            .is_some_and(|book| book.mutes(labels, now))
        {
            return Some(MuteReason::Silenced);
        }
        let firing: Vec<Labels> = self.firing.values().map(|a| a.labels.clone()).collect();
        if self
            .config
            .inhibit
            .iter()
            .any(|rule| rule.inhibits(labels, &firing))
        {
            return Some(MuteReason::Inhibited);
        }
        if self
            .config
            .maintenance
            .iter()
            .any(|window| window.mutes(labels, now))
        {
            return Some(MuteReason::Maintenance);
        }
        None
    }

    /// Returns the receivers of each transition, to commit with it. A muted alert gets none. A
    /// resolved alert goes to the receivers that got its firing, so the resolve of an alert
    /// whose firing was muted is not sent either. The resolve of an alert that loftwatch did not
    /// see fire since its start follows the routes.
    pub fn plan(
        &mut self,
        transitions: Vec<Transition>,
        running: &[&'static str],
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(Transition, Vec<&'static str>)> {
        // Alerts that fire in this batch inhibit others of the same batch.
        for transition in &transitions {
            if transition.kind == TransitionKind::Firing {
                self.firing.insert(
                    transition.alert_id.clone(),
                    FiringAlert {
                        transition: transition.clone(),
                        labels: labels_of(transition),
                        notified: Vec::new(),
                        last_notified: now,
                    },
                );
            }
        }
        let mut planned = Vec::with_capacity(transitions.len());
        for transition in transitions {
            let labels = labels_of(&transition);
            let previous = match transition.kind {
                TransitionKind::Resolved => self.firing.remove(&transition.alert_id),
                TransitionKind::Firing => None,
            };
            let receivers = match self.mute_reason(&labels, wall) {
                Some(reason) => {
                    info!(
                        alert = %transition.rule,
                        probe = %transition.probe,
                        kind = transition.kind.as_str(),
                        reason = reason.as_str(),
                        "notification muted"
                    );
                    Vec::new()
                }
                None => match previous {
                    Some(previous) => previous.notified,
                    None => self.route_receivers(&labels, running),
                },
            };
            if let Some(alert) = self.firing.get_mut(&transition.alert_id) {
                alert.notified = receivers.clone();
            }
            planned.push((transition, receivers));
        }
        planned
    }

    /// Adds committed notifications to their groups.
    pub fn enqueue(&mut self, entries: Vec<RoutedEntry>, now: Instant) {
        for (entry, receivers) in entries {
            let labels = labels_of(&entry.transition);
            for route in self.config.routes_for(&labels, &receivers) {
                if route.receivers.is_empty() {
                    continue;
                }
                let settings = self.config.settings(route.route);
                let key = (route.route, settings.group_key(&labels));
                let group = self.groups.entry(key).or_insert_with(|| Group {
                    created: now,
                    group_wait: settings.group_wait_for(entry.transition.severity),
                    group_interval: settings.group_interval,
                    last_flush: None,
                    pending: Vec::new(),
                    firing: Vec::new(),
                });
                let alert_id = &entry.transition.alert_id;
                group.firing.retain(|id| id != alert_id);
                if entry.transition.kind == TransitionKind::Firing {
                    group.firing.push(alert_id.clone());
                }
                group.pending.push((entry.clone(), route.receivers));
            }
        }
    }

    /// Takes the notifications whose group is due at `now`, oldest transition first.
    pub fn take_due(&mut self, now: Instant) -> Vec<RoutedEntry> {
        let mut due = Vec::new();
        for group in self.groups.values_mut() {
            if group.pending.is_empty() {
                continue;
            }
            if group.due_at() <= now {
                due.append(&mut group.pending);
                group.last_flush = Some(now);
            } else if group.last_flush.is_some() {
                // Resolves of a group that already notified are not held for group_interval.
                let (resolved, firing): (Vec<_>, Vec<_>) = group
                    .pending
                    .drain(..)
                    .partition(|(entry, _)| entry.transition.kind == TransitionKind::Resolved);
                group.pending = firing;
                due.extend(resolved);
            }
        }
        // repeat_interval counts from when the firing left, after its group_wait.
        for (entry, _) in &due {
            if let Some(alert) = self.firing.get_mut(&entry.transition.alert_id) {
                alert.last_notified = now;
            }
        }
        self.groups
            .retain(|_, group| !group.pending.is_empty() || !group.firing.is_empty());
        due.sort_by_key(|(entry, _)| entry.id);
        due
    }

    /// Returns the firing notifications to send again at `now`, each with its receivers: those
    /// of alerts notified `repeat_interval` ago or longer, and those of alerts whose firing was
    /// muted and that are no longer muted. Both are sent without an outbox row.
    pub fn take_repeats(
        &mut self,
        running: &[&'static str],
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(Transition, Vec<&'static str>)> {
        let mut ids: Vec<String> = self.firing.keys().cloned().collect();
        ids.sort();
        let mut repeats = Vec::new();
        for id in ids {
            let alert = &self.firing[&id];
            let repeat_interval = self.repeat_interval(&alert.labels, running);
            let receivers = if alert.notified.is_empty() {
                self.route_receivers(&alert.labels, running)
            } else if now >= alert.last_notified + repeat_interval {
                alert.notified.clone()
            } else {
                continue;
            };
            if receivers.is_empty() || self.mute_reason(&alert.labels, wall).is_some() {
                continue;
            }
            let alert = self.firing.get_mut(&id).expect("id taken from the map");
            alert.notified = receivers.clone();
            alert.last_notified = now;
            repeats.push((alert.transition.clone(), receivers));
        }
        repeats
    }

    fn route_receivers(&self, labels: &Labels, running: &[&'static str]) -> Vec<&'static str> {
        self.config
            .routes_for(labels, running)
            .into_iter()
            .flat_map(|route| route.receivers)
            .collect()
    }

    /// Returns the shortest `repeat_interval` of the routes that `labels` take.
    fn repeat_interval(&self, labels: &Labels, running: &[&'static str]) -> Duration {
        self.config
            .routes_for(labels, running)
            .iter()
            .map(|route| self.config.settings(route.route).repeat_interval)
            .min()
            .unwrap_or(self.config.defaults.repeat_interval)
    }
}

#[cfg(test)]
#[path = "dispatcher_tests.rs"]
mod tests;
