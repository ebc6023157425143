//! The journal: commits the engine's changes and transitions, and keeps them in memory while
//! the database rejects writes (a full disk, an I/O error) so that nothing accepted is lost.

use tracing::{error, info};

use super::{OutboxEntry, Store};
use crate::alert::{AlertChanges, Transition};

/// Commits alert changes and transitions before they are handed to the receivers.
#[derive(Debug)]
pub struct Journal {
    store: Store,
    receivers: Vec<&'static str>,
    changes: AlertChanges,
    /// Transitions not committed yet, each with the receivers that get an outbox row.
    transitions: Vec<(Transition, Vec<&'static str>)>,
    failures: u64,
}

impl Journal {
    /// Creates a journal that writes to `store` and queues each transition for `receivers`
    /// (names such as `email`).
    pub fn new(store: Store, receivers: Vec<&'static str>) -> Journal {
        Journal {
            store,
            receivers,
            changes: AlertChanges::default(),
            transitions: Vec::new(),
            failures: 0,
        }
    }

    /// Returns the store the journal writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues later transitions for `receivers`, after a reload changed them.
    pub fn set_receivers(&mut self, receivers: Vec<&'static str>) {
        self.receivers = receivers;
    }

    /// Returns the number of transitions accepted but not committed yet.
    pub fn backlog(&self) -> usize {
        self.transitions.len()
    }

    /// Adds `changes` and `transitions` to what is not committed yet and tries to commit it
    /// all, queueing each transition for every receiver of the journal. Returns the committed
    /// transitions, ready to deliver, or nothing when the commit failed: the failure is logged
    /// and the next call tries again with everything kept.
    pub fn commit(
        &mut self,
        changes: AlertChanges,
        transitions: Vec<Transition>,
    ) -> Vec<OutboxEntry> {
        let routed = transitions
            .into_iter()
            .map(|transition| (transition, self.receivers.clone()))
            .collect();
        self.commit_routed(changes, routed)
            .into_iter()
            .map(|(entry, _receivers)| entry)
            .collect()
    }

    /// Commits like [`Journal::commit`], queueing each transition only for the receivers
    /// listed next to it. Returns each committed transition with its receivers.
    pub fn commit_routed(
        &mut self,
        changes: AlertChanges,
        transitions: Vec<(Transition, Vec<&'static str>)>,
    ) -> Vec<(OutboxEntry, Vec<&'static str>)> {
        self.changes.extend(changes);
        self.transitions.extend(transitions);
        if self.changes.is_empty() && self.transitions.is_empty() {
            return Vec::new();
        }
        let routed: Vec<(Transition, Vec<&str>)> = self
            .transitions
            .iter()
            .map(|(transition, receivers)| (transition.clone(), receivers.clone()))
            .collect();
        match self.store.commit_routed(&self.changes, &routed) {
            Ok(entries) => {
                if self.failures > 0 {
                    info!(
                        path = %self.store.path().display(),
                        failed_attempts = self.failures,
                        transitions = entries.len(),
                        "database commit succeeded again"
                    );
                }
                self.failures = 0;
                self.changes = AlertChanges::default();
                let receivers = self.transitions.drain(..).map(|(_, receivers)| receivers);
                entries.into_iter().zip(receivers).collect()
            }
            Err(store_error) => {
                self.failures += 1;
                // Logged on the first failure and then every 100th, to keep a long outage
                // from flooding the log at every evaluation.
                if self.failures == 1 || self.failures % 100 == 0 {
                    let alert_ids: Vec<&str> = self
                        .transitions
                        .iter()
                        .map(|(transition, _)| transition.alert_id.as_str())
                        .collect();
                    error!(
                        error = %store_error,
                        failed_attempts = self.failures,
                        backlog = self.transitions.len(),
                        ?alert_ids,
                        "database commit failed, keeping the transitions in memory and retrying"
                    );
                }
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, SavedAlert};
    use crate::store::DeliveryStatus;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn saved(rule: &str, state: AlertState, sequence: u64) -> SavedAlert {
        let at = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        SavedAlert {
            rule: Arc::from(rule),
            probe: Arc::from("me"),
            state,
            since: at,
            firing_since: (state == AlertState::Firing).then_some(at),
            pending_since: None,
            false_since: Some(at + Duration::from_millis(1500)),
            sequence,
        }
    }

    #[test]
    fn alert_state_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let changes = AlertChanges {
            saved: vec![
                saved("Auth down", AlertState::Firing, 3),
                saved("API errors", AlertState::Inactive, 2),
            ],
            removed: Vec::new(),
        };
        store.commit(&changes, &[], &["email"]).unwrap();
        let loaded = store.load_alerts().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0], changes.saved[1]);
        assert_eq!(loaded[1], changes.saved[0]);
    }

    #[test]
    fn removed_alert_deleted() {
        let store = Store::open_in_memory().unwrap();
        let changes = AlertChanges {
            saved: vec![saved("Auth down", AlertState::Firing, 1)],
            removed: Vec::new(),
        };
        store.commit(&changes, &[], &[]).unwrap();
        let removal = AlertChanges {
            saved: Vec::new(),
            removed: vec![(Arc::from("Auth down"), Arc::from("me"))],
        };
        store.commit(&removal, &[], &[]).unwrap();
        assert!(store.load_alerts().unwrap().is_empty());
    }

    fn transition(sequence: u64) -> Transition {
        let at = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        Transition {
            alert_id: "0d4975750d6a7031".to_owned(),
            sequence,
            kind: crate::alert::TransitionKind::Firing,
            rule: Arc::from("Auth down"),
            probe: Arc::from("me"),
            location: Arc::from("default"),
            severity: crate::alert::Severity::P1,
            expr: Arc::from("count(status == 401) > 0"),
            value: Some(1.0),
            value_text: "1".to_owned(),
            threshold_text: "> 0".to_owned(),
            window_text: "1m".to_owned(),
            runbook: Arc::from("Rotate the token."),
            summary: "1 response matching status == 401 in 1m on probe me".to_owned(),
            at,
            firing_since: at,
        }
    }

    #[test]
    fn outbox_pending_until_delivered() {
        let store = Store::open_in_memory().unwrap();
        let changes = AlertChanges::default();
        let entries = store
            .commit(
                &changes,
                &[transition(1), transition(2)],
                &["email", "otlp"],
            )
            .unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(store.pending("email").unwrap(), entries);

        store
            .record_delivery(entries[0].id, "email", DeliveryStatus::Delivered, 1, None)
            .unwrap();
        let failed = Some("550 mailbox unavailable");
        store
            .record_delivery(entries[1].id, "email", DeliveryStatus::Failed, 1, failed)
            .unwrap();
        assert!(store.pending("email").unwrap().is_empty());
        assert_eq!(store.pending("otlp").unwrap().len(), 2);
    }

    #[test]
    fn firing_notifications_latest_firing_only() {
        let store = Store::open_in_memory().unwrap();
        let changes = AlertChanges::default();
        let mut resolved = transition(2);
        resolved.kind = crate::alert::TransitionKind::Resolved;
        let mut other = transition(1);
        other.alert_id = "1e5a86861e7b8142".to_owned();
        let routed = [
            (transition(1), vec!["email", "otlp"]),
            (resolved, vec!["email"]),
            (transition(3), vec!["otlp"]),
            (other, Vec::new()),
        ];
        store.commit_routed(&changes, &routed).unwrap();
        let firing = store.firing_notifications().unwrap();
        assert_eq!(firing.len(), 2);
        assert_eq!(firing[0].0.transition.sequence, 3);
        assert_eq!(firing[0].1, ["otlp"]);
        assert_eq!(firing[1].0.transition.alert_id, "1e5a86861e7b8142");
        assert!(firing[1].1.is_empty());
    }

    #[test]
    fn failed_commit_kept_and_retried() {
        let store = Store::open_in_memory().unwrap();
        let mut journal = Journal::new(store.clone(), vec!["email"]);
        store
            .lock()
            .pragma_update(None, "query_only", true)
            .unwrap();
        let committed = journal.commit(AlertChanges::default(), vec![transition(1)]);
        assert!(committed.is_empty());
        assert_eq!(journal.backlog(), 1);

        store
            .lock()
            .pragma_update(None, "query_only", false)
            .unwrap();
        let committed = journal.commit(AlertChanges::default(), vec![transition(2)]);
        let sequences: Vec<u64> = committed
            .iter()
            .map(|entry| entry.transition.sequence)
            .collect();
        assert_eq!(sequences, [1, 2]);
        assert_eq!(journal.backlog(), 0);
        assert_eq!(store.pending("email").unwrap().len(), 2);
    }
}
