//! Per-minute rollups of probe results, which keep the dashboard's charts across restarts.
//!
//! One row per probe and wall-clock minute holds the run count, the error count of each
//! outcome class and the latency percentiles of that minute. Writing a minute that already has
//! a row merges the two, so a minute split by a restart is stored once.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::codec::to_millis;
use super::{Store, StoreError};

/// Schema migration that adds the rollup table.
pub(super) const MIGRATION: &str = "CREATE TABLE probe_rollup (
        probe TEXT NOT NULL,
        minute_ms INTEGER NOT NULL,
        count INTEGER NOT NULL,
        errors TEXT NOT NULL,
        latency_samples INTEGER NOT NULL,
        p50_ms REAL,
        p90_ms REAL,
        p99_ms REAL,
        max_ms REAL,
        PRIMARY KEY (probe, minute_ms)
    );
    CREATE INDEX probe_rollup_minute ON probe_rollup (minute_ms);";

/// The results of one probe in one wall-clock minute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MinuteRollup {
    /// Probe name.
    pub probe: String,
    /// Start of the minute, in milliseconds since the Unix epoch.
    pub minute_ms: i64,
    /// Number of runs that finished in the minute.
    pub count: u64,
    /// Runs that did not end `ok`, by outcome class (`http_5xx`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Number of runs with a latency sample; the percentiles are taken over these.
    pub latency_samples: u64,
    /// Median latency in milliseconds, when the minute has latency samples.
    pub p50_ms: Option<f64>,
    /// 90th percentile latency in milliseconds.
    pub p90_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: Option<f64>,
    /// Maximum latency in milliseconds.
    pub max_ms: Option<f64>,
}

impl MinuteRollup {
    /// Merges `other`, a rollup of the same probe and minute, into this one. Counts add up and
    /// the maximum is kept.
    // NOTE: percentiles of the two parts are averaged by their sample counts, which estimates
    // the percentile of the whole minute and can be off when the parts differ widely.
    pub fn merge(&mut self, other: &MinuteRollup) {
        let total = self.latency_samples + other.latency_samples;
        let weighted = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
            (Some(mine), Some(theirs)) => Some(
                (mine * self.latency_samples as f64 + theirs * other.latency_samples as f64)
                    / total as f64,
            ),
            (mine, theirs) => mine.or(theirs),
        };
        self.p50_ms = weighted(self.p50_ms, other.p50_ms);
        self.p90_ms = weighted(self.p90_ms, other.p90_ms);
        self.p99_ms = weighted(self.p99_ms, other.p99_ms);
        self.max_ms = match (self.max_ms, other.max_ms) {
            (Some(mine), Some(theirs)) => Some(mine.max(theirs)),
            (mine, theirs) => mine.or(theirs),
        };
        self.count += other.count;
        self.latency_samples = total;
        for (class, count) in &other.errors {
            *self.errors.entry(class.clone()).or_insert(0) += count;
        }
    }

    /// Returns the number of runs that did not end `ok`.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl Store {
    /// Writes rollups in one transaction, merging each with the stored row of the same probe
    /// and minute when there is one.
    pub fn write_rollups(&self, rollups: &[MinuteRollup]) -> Result<(), StoreError> {
        let mut connection = self.lock();
        let sql_error = |error| self.sql_error(error);
        let transaction = connection.transaction().map_err(sql_error)?;
        for rollup in rollups {
            let stored = transaction
                .query_row(
                    "SELECT count, errors, latency_samples, p50_ms, p90_ms, p99_ms, max_ms
                     FROM probe_rollup WHERE probe = ?1 AND minute_ms = ?2",
                    params![rollup.probe, rollup.minute_ms],
                    |row| read_rollup(&rollup.probe, rollup.minute_ms, row),
                )
                .optional()
                .map_err(sql_error)?;
            let merged = match stored {
                Some(mut stored) => {
                    stored.merge(rollup);
                    stored
                }
                None => rollup.clone(),
            };
            transaction
                .execute(
                    "INSERT OR REPLACE INTO probe_rollup (probe, minute_ms, count, errors,
                        latency_samples, p50_ms, p90_ms, p99_ms, max_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        merged.probe,
                        merged.minute_ms,
                        i64::try_from(merged.count).unwrap_or(i64::MAX),
                        encode_errors(&merged.errors),
                        i64::try_from(merged.latency_samples).unwrap_or(i64::MAX),
                        merged.p50_ms,
                        merged.p90_ms,
                        merged.p99_ms,
                        merged.max_ms,
                    ],
                )
                .map_err(sql_error)?;
        }
        transaction.commit().map_err(sql_error)
    }

    /// Loads the rollups of `probe` whose minute starts at or after `since`, oldest first.
    pub fn load_rollups(
        &self,
        probe: &str,
        since: SystemTime,
    ) -> Result<Vec<MinuteRollup>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT count, errors, latency_samples, p50_ms, p90_ms, p99_ms, max_ms, minute_ms
                 FROM probe_rollup WHERE probe = ?1 AND minute_ms >= ?2 ORDER BY minute_ms",
            )
            .map_err(|error| self.sql_error(error))?;
        statement
            .query_map(params![probe, to_millis(since)], |row| {
                read_rollup(probe, row.get(7)?, row)
            })
            .and_then(|rows| rows.collect())
            .map_err(|error| self.sql_error(error))
    }

    /// Deletes the rollups of minutes that started before `before`; returns how many.
    pub fn prune_rollups(&self, before: SystemTime) -> Result<usize, StoreError> {
        let connection = self.lock();
        connection
            .execute(
                "DELETE FROM probe_rollup WHERE minute_ms < ?1",
                [to_millis(before)],
            )
            .map_err(|error| self.sql_error(error))
    }
}

fn read_rollup(
    probe: &str,
    minute_ms: i64,
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<MinuteRollup> {
    let errors: String = row.get(1)?;
    Ok(MinuteRollup {
        probe: probe.to_owned(),
        minute_ms,
        count: row.get::<_, i64>(0)?.max(0) as u64,
        errors: decode_errors(&errors),
        latency_samples: row.get::<_, i64>(2)?.max(0) as u64,
        p50_ms: row.get(3)?,
        p90_ms: row.get(4)?,
        p99_ms: row.get(5)?,
        max_ms: row.get(6)?,
    })
}

fn encode_errors(errors: &BTreeMap<String, u64>) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "{}".to_owned())
}

/// Decodes the error counts. A value this build cannot read counts as no errors, so that one
/// bad row leaves a gap in a chart instead of failing the dashboard.
fn decode_errors(text: &str) -> BTreeMap<String, u64> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn rollup(minute_ms: i64, count: u64, errors: u64, p50: f64, max: f64) -> MinuteRollup {
        let mut error_map = BTreeMap::new();
        if errors > 0 {
            error_map.insert("http_5xx".to_owned(), errors);
        }
        MinuteRollup {
            probe: "me".to_owned(),
            minute_ms,
            count,
            errors: error_map,
            latency_samples: count,
            p50_ms: Some(p50),
            p90_ms: Some(p50 * 2.0),
            p99_ms: Some(p50 * 3.0),
            max_ms: Some(max),
        }
    }

    #[test]
    fn rollups_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let written = vec![
            rollup(60_000, 4, 1, 10.0, 40.0),
            rollup(120_000, 2, 0, 20.0, 25.0),
        ];
        store.write_rollups(&written).unwrap();
        let loaded = store.load_rollups("me", UNIX_EPOCH).unwrap();
        assert_eq!(loaded, written);
        assert!(store.load_rollups("other", UNIX_EPOCH).unwrap().is_empty());
        let later = store
            .load_rollups("me", UNIX_EPOCH + Duration::from_secs(90))
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].minute_ms, 120_000);
    }

    #[test]
    fn same_minute_merges() {
        let store = Store::open_in_memory().unwrap();
        store
            .write_rollups(&[rollup(60_000, 1, 1, 10.0, 10.0)])
            .unwrap();
        store
            .write_rollups(&[rollup(60_000, 3, 0, 30.0, 50.0)])
            .unwrap();
        let loaded = store.load_rollups("me", UNIX_EPOCH).unwrap();
        assert_eq!(loaded.len(), 1);
        let merged = &loaded[0];
        assert_eq!(merged.count, 4);
        assert_eq!(merged.latency_samples, 4);
        assert_eq!(merged.error_count(), 1);
        assert_eq!(merged.max_ms, Some(50.0));
        assert_eq!(merged.p50_ms, Some(25.0));
    }

    #[test]
    fn prune_deletes_old_minutes() {
        let store = Store::open_in_memory().unwrap();
        let rollups = vec![
            rollup(60_000, 1, 0, 1.0, 1.0),
            rollup(180_000, 1, 0, 1.0, 1.0),
        ];
        store.write_rollups(&rollups).unwrap();
        let pruned = store
            .prune_rollups(UNIX_EPOCH + Duration::from_secs(120))
            .unwrap();
        assert_eq!(pruned, 1);
        let left = store.load_rollups("me", UNIX_EPOCH).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].minute_ms, 180_000);
    }
}
