//! Reads of the most recent transitions with the delivery state of each receiver, for the
//! dashboard's list of notifications.

use rusqlite::params;

use super::codec::decode_transition;
use super::{Store, StoreError};
use crate::alert::Transition;

/// Delivery state of one transition at one receiver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryRecord {
    /// Receiver kind, such as `email` or `otlp`.
    pub receiver: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
}

/// A committed transition and where it was delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    /// Row id in the transition log.
    pub id: i64,
    pub transition: Transition,
    /// One record per receiver the transition was queued for, by receiver name.
    pub deliveries: Vec<DeliveryRecord>,
}

impl Store {
    /// Loads the `limit` most recent transitions, newest first, with their deliveries.
    pub fn recent_notifications(
        &self,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let connection = self.lock();
        let sql_error = |error| self.sql_error(error);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = connection
            .prepare("SELECT id, record FROM transition_log ORDER BY id DESC LIMIT ?1")
            .map_err(sql_error)?;
        let rows: Vec<(i64, String)> = statement
            .query_map([limit], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(sql_error)?;
        let mut deliveries = connection
            .prepare(
                "SELECT receiver, status, attempts, last_error FROM outbox
                 WHERE transition_id = ?1 ORDER BY receiver",
            )
            .map_err(sql_error)?;
        let mut records = Vec::with_capacity(rows.len());
        for (id, record) in rows {
            let transition =
                decode_transition(&record).map_err(|detail| StoreError::InvalidRecord {
                    path: self.path.clone(),
                    id,
                    detail,
                })?;
            let deliveries = deliveries
                .query_map(params![id], |row| {
                    Ok(DeliveryRecord {
                        receiver: row.get(0)?,
                        status: row.get(1)?,
                        attempts: row.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                        last_error: row.get(3)?,
                    })
                })
                .and_then(|rows| rows.collect())
                .map_err(sql_error)?;
            records.push(NotificationRecord {
                id,
                transition,
                deliveries,
            });
        }
        Ok(records)
    }
}
