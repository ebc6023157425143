//! Reads and writes of the silence table.

use std::time::SystemTime;

use rusqlite::params;

use super::codec::{from_millis, to_millis};
use super::{Store, StoreError};
use crate::route::{Matcher, Silence};

impl Store {
    /// Saves a new silence.
    pub fn insert_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let matchers: Vec<String> = silence.matchers.iter().map(ToString::to_string).collect();
        let matchers = serde_json::to_string(&matchers).unwrap_or_default();
        let connection = self.lock();
        connection
            .execute(
                "INSERT INTO silence (id, matchers, starts_ms, ends_ms, created_by, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    silence.id,
                    matchers,
                    to_millis(silence.starts_at),
                    to_millis(silence.ends_at),
                    silence.created_by,
                    silence.comment,
                ],
            )
            .map_err(|error| self.sql_error(error))?;
        Ok(())
    }

    /// Sets the end of silence `id`.
    pub fn expire_silence(&self, id: &str, ends_at: SystemTime) -> Result<(), StoreError> {
        let connection = self.lock();
        connection
            .execute(
                "UPDATE silence SET ends_ms = ?2 WHERE id = ?1",
                params![id, to_millis(ends_at)],
            )
            .map_err(|error| self.sql_error(error))?;
        Ok(())
    }

    /// Loads every silence in creation order.
    pub fn load_silences(&self) -> Result<Vec<Silence>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT rowid, id, matchers, starts_ms, ends_ms, created_by, comment
                 FROM silence ORDER BY rowid",
            )
            .map_err(|error| self.sql_error(error))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|error| self.sql_error(error))?;
        let mut silences = Vec::with_capacity(rows.len());
        for (rowid, id, matchers, starts, ends, created_by, comment) in rows {
            let invalid = |detail: String| StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!("silence row {rowid}: {detail}"),
            };
            let texts: Vec<String> = serde_json::from_str(&matchers)
                .map_err(|error| invalid(format!("invalid matchers of silence {id}: {error}")))?;
            let matchers = texts
                .iter()
                .map(|text| Matcher::parse(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| invalid(format!("silence {id}: {error}")))?;
            silences.push(Silence {
                id,
                matchers,
                starts_at: from_millis(starts),
                ends_at: from_millis(ends),
                created_by,
                comment,
            });
        }
        Ok(silences)
    }
}
