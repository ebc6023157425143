//! Opening the database: where it lives, the pragmas it runs with, and the errors of a missing,
//! locked or corrupt file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tracing::info;

use super::{DATABASE_FILE, Store, StoreError, schema};

/// How long opening waits for a lock held by another connection before reporting it locked.
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// Returns the default database path: `$STATE_DIRECTORY/loftwatch.db` when systemd set
/// `STATE_DIRECTORY` (its first entry when it lists several), else `None`, which means an
/// in-memory store. `env` looks up environment variables.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    crate::config::state_directory(env).map(|folder| folder.join(DATABASE_FILE))
}

impl Store {
    /// Opens the database at `path`, creating the file and its folder when missing, takes an
    /// exclusive lock on it for the life of the store, and migrates its schema. A file that is
    /// locked by another process or corrupt is reported and never modified.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| StoreError::CreateFolder {
                path: path.to_owned(),
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(path, flags).map_err(|error| classify(path, error))?;
        configure(&connection).map_err(|error| classify(path, error))?;
        check_integrity(&connection, path)?;
        let store = Store {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_owned(),
        };
        store.migrate()?;
        info!(path = %path.display(), "database opened");
        Ok(store)
    }

    /// Opens a store that lives in memory only: alert state and the outbox are lost at exit.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let connection = Connection::open_in_memory().map_err(|error| classify(&path, error))?;
        let store = Store {
            connection: Arc::new(Mutex::new(connection)),
            path,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut connection = self.lock();
        schema::migrate(&mut connection, &self.path)
    }
}

/// Sets the pragmas and takes the exclusive lock. The first statement reads the file header,
/// so a file that is not a database fails here.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Set before WAL mode so that SQLite keeps the lock and uses no shared-memory file.
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "database did not switch to WAL mode");
    }
    // Every commit reaches the disk before it returns, so a committed transition survives a
    // power loss and is never delivered without being recorded.
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    // A write transaction takes the exclusive lock now, instead of at the first transition.
    connection.execute_batch("BEGIN EXCLUSIVE; COMMIT;")?;
    Ok(())
}

/// Runs SQLite's quick check, which reads every page without comparing indexes to tables.
fn check_integrity(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare("PRAGMA quick_check")
        .map_err(|error| classify(path, error))?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|error| classify(path, error))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_owned(),
        detail: problems.join("; "),
    })
}

/// Turns an SQLite error into a [`StoreError`] that names the path and what to do.
pub(super) fn classify(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: path.to_owned(),
        },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        _ => StoreError::Sql {
            path: path.to_owned(),
            source: error,
        },
    }
}
