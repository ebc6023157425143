//! Reads and writes of the tables: alert state, the transition log and the outbox.

use std::time::SystemTime;

use rusqlite::params;

use super::codec::{decode_transition, encode_transition, from_millis, parse_state, to_millis};
use super::{Store, StoreError};
use crate::alert::{AlertChanges, SavedAlert, Transition};

/// A committed transition waiting for delivery to one or more receivers.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Row id in the transition log, which also keys the outbox rows of the transition.
    pub id: i64,
    pub transition: Transition,
}

/// Final state of one outbox row after a delivery run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// The receiver accepted the notification.
    Delivered,
    /// The receiver rejected it for good, so it is not retried.
    Failed,
    /// Every attempt failed with an error that may pass, so it is retried at the next start.
    Pending,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Pending => "pending",
        }
    }
}

impl Store {
    /// Loads the saved state of every alert instance.
    pub fn load_alerts(&self) -> Result<Vec<SavedAlert>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT rule, probe, state, since_ms, firing_since_ms, pending_since_ms,
                        false_since_ms, sequence
                 FROM alert_state ORDER BY rule, probe",
            )
            .map_err(|error| self.sql_error(error))?;
        let rows = statement
            .query_map([], |row| {
                let state: String = row.get(2)?;
                let millis = |index| row.get::<_, Option<i64>>(index);
                Ok((
                    state,
                    SavedAlert {
                        rule: row.get::<_, String>(0)?.into(),
                        probe: row.get::<_, String>(1)?.into(),
                        state: crate::alert::AlertState::Inactive,
                        since: from_millis(row.get(3)?),
                        firing_since: millis(4)?.map(from_millis),
                        pending_since: millis(5)?.map(from_millis),
                        false_since: millis(6)?.map(from_millis),
                        sequence: row.get::<_, i64>(7)?.max(0) as u64,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|error| self.sql_error(error))?;
        let mut alerts = Vec::with_capacity(rows.len());
        for (state, mut alert) in rows {
            let Some(state) = parse_state(&state) else {
                return Err(StoreError::Corrupt {
                    path: self.path.clone(),
                    detail: format!(
                        "alert {}/{} has invalid state {state:?}",
                        alert.rule, alert.probe
                    ),
                });
            };
            alert.state = state;
            alerts.push(alert);
        }
        Ok(alerts)
    }

    // NOTE: the transition log and delivered outbox rows are never pruned, so the file grows
    // by an estimated one kilobyte per transition.
    /// Commits alert changes and transitions in one transaction, with one pending outbox row per
    /// transition and receiver. Returns the transitions with their log ids, in order. Nothing is
    /// written when it fails.
    pub fn commit(
        &self,
        changes: &AlertChanges,
        transitions: &[Transition],
        receivers: &[&str],
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let routed: Vec<(Transition, Vec<&str>)> = transitions
            .iter()
            .map(|transition| (transition.clone(), receivers.to_vec()))
            .collect();
        self.commit_routed(changes, &routed)
    }

    /// Commits like [`Store::commit`], with one pending outbox row for each receiver listed
    /// next to each transition. A transition with no receivers is only written to the
    /// transition log.
    pub fn commit_routed(
        &self,
        changes: &AlertChanges,
        transitions: &[(Transition, Vec<&str>)],
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut connection = self.lock();
        let sql_error = |error| self.sql_error(error);
        let transaction = connection.transaction().map_err(sql_error)?;
        for alert in &changes.saved {
            transaction
                .execute(
                    "INSERT OR REPLACE INTO alert_state (rule, probe, state, since_ms,
                        firing_since_ms, pending_since_ms, false_since_ms, sequence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        &*alert.rule,
                        &*alert.probe,
                        alert.state.as_str(),
                        to_millis(alert.since),
                        alert.firing_since.map(to_millis),
                        alert.pending_since.map(to_millis),
                        alert.false_since.map(to_millis),
                        i64::try_from(alert.sequence).unwrap_or(i64::MAX),
                    ],
                )
                .map_err(sql_error)?;
        }
        for (rule, probe) in &changes.removed {
            transaction
                .execute(
                    "DELETE FROM alert_state WHERE rule = ?1 AND probe = ?2",
                    params![&**rule, &**probe],
                )
                .map_err(sql_error)?;
        }
        let now = to_millis(SystemTime::now());
        let mut entries = Vec::with_capacity(transitions.len());
        for (transition, receivers) in transitions {
            transaction
                .execute(
                    "INSERT INTO transition_log (alert_id, sequence, kind, at_ms, record)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        transition.alert_id,
                        i64::try_from(transition.sequence).unwrap_or(i64::MAX),
                        transition.kind.as_str(),
                        to_millis(transition.at),
                        encode_transition(transition),
                    ],
                )
                .map_err(sql_error)?;
            let id = transaction.last_insert_rowid();
            for receiver in receivers {
                transaction
                    .execute(
                        "INSERT INTO outbox (transition_id, receiver, updated_ms)
                         VALUES (?1, ?2, ?3)",
                        params![id, receiver, now],
                    )
                    .map_err(sql_error)?;
            }
            entries.push(OutboxEntry {
                id,
                transition: transition.clone(),
            });
        }
        transaction.commit().map_err(sql_error)?;
        Ok(entries)
    }

    /// Returns the transitions still pending for `receiver`, oldest first.
    pub fn pending(&self, receiver: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT transition_log.id, transition_log.record
                 FROM outbox JOIN transition_log ON transition_log.id = outbox.transition_id
                 WHERE outbox.receiver = ?1 AND outbox.status = 'pending'
                 ORDER BY transition_log.id",
            )
            .map_err(|error| self.sql_error(error))?;
        let rows = statement
            .query_map([receiver], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|error| self.sql_error(error))?;
        rows.into_iter()
            .map(|(id, record)| match decode_transition(&record) {
                Ok(transition) => Ok(OutboxEntry { id, transition }),
                Err(detail) => Err(StoreError::InvalidRecord {
                    path: self.path.clone(),
                    id,
                    detail,
                }),
            })
            .collect()
    }

    /// Returns the latest transition of every alert whose latest transition is a firing, with
    /// the receivers it was queued for, oldest first. These are the alerts still firing.
    pub fn firing_notifications(&self) -> Result<Vec<(OutboxEntry, Vec<String>)>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT latest.id, latest.record,
                        (SELECT group_concat(receiver, ',') FROM outbox
                         WHERE outbox.transition_id = latest.id)
                 FROM transition_log AS latest
                 WHERE latest.kind = 'firing'
                   AND latest.id = (SELECT MAX(id) FROM transition_log
                                    WHERE alert_id = latest.alert_id)
                 ORDER BY latest.id",
            )
            .map_err(|error| self.sql_error(error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|error| self.sql_error(error))?;
        rows.into_iter()
            .map(|(id, record, receivers)| {
                let transition =
                    decode_transition(&record).map_err(|detail| StoreError::InvalidRecord {
                        path: self.path.clone(),
                        id,
                        detail,
                    })?;
                let receivers = receivers
                    .unwrap_or_default()
                    .split(',')
                    .filter(|name| !name.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok((OutboxEntry { id, transition }, receivers))
            })
            .collect()
    }

    /// Records the outcome of delivering transition `id` to `receiver` after `attempts`
    /// attempts, with the last error when it failed.
    pub fn record_delivery(
        &self,
        id: i64,
        receiver: &str,
        status: DeliveryStatus,
        attempts: u32,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE outbox SET status = ?3, attempts = attempts + ?4, last_error = ?5,
                    updated_ms = ?6
                 WHERE transition_id = ?1 AND receiver = ?2",
                params![
                    id,
                    receiver,
                    status.as_str(),
                    attempts,
                    error,
                    to_millis(SystemTime::now()),
                ],
            )
            .map_err(|error| self.sql_error(error))?;
        Ok(())
    }
}
