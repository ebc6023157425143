//! The schema and its migrations. `schema_version` contains one row, the number of migrations
//! applied. Each migration runs in its own transaction together with the version update.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use tracing::info;

use super::StoreError;
use super::open::classify;

/// Migrations in order; migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1: alert state, the transition log and the outbox.
    "CREATE TABLE alert_state (
        rule TEXT NOT NULL,
        probe TEXT NOT NULL,
        state TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        firing_since_ms INTEGER,
        pending_since_ms INTEGER,
        false_since_ms INTEGER,
        sequence INTEGER NOT NULL,
        PRIMARY KEY (rule, probe)
    );
    CREATE TABLE transition_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT NOT NULL,
        sequence INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE TABLE outbox (
        transition_id INTEGER NOT NULL REFERENCES transition_log (id),
        receiver TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (transition_id, receiver)
    );
    CREATE INDEX outbox_pending ON outbox (receiver, status, transition_id);",
    // Version 2: per-minute rollups of probe results for the dashboard.
    super::history::MIGRATION,
    // Version 3: silences. `matchers` is a JSON array of matcher texts such as `probe = "me"`.
    "CREATE TABLE silence (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_ms INTEGER NOT NULL,
        ends_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL
    );",
];

/// Returns the schema version this build writes.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema to [`current_version`], rejecting a database written by a newer build.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql_error = |error| classify(path, error);
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(sql_error)?;
    let found: Option<i64> = connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    let found = found.unwrap_or(0);
    if found > current_version() {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: current_version(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let transaction = connection.transaction().map_err(sql_error)?;
        transaction.execute_batch(migration).map_err(sql_error)?;
        transaction
            .execute("DELETE FROM schema_version", [])
            .map_err(sql_error)?;
        transaction
            .execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version],
            )
            .map_err(sql_error)?;
        transaction.commit().map_err(sql_error)?;
        info!(path = %path.display(), version, "database schema migrated");
    }
    Ok(())
}
