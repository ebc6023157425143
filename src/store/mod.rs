//! SQLite persistence: alert state with its timers, the log of transitions, the outbox of
//! notifications still to deliver, per-minute rollups of probe results and the silences.
//!
//! A transition is committed, together with the alert states that produced it and one outbox
//! row per receiver, before any receiver sees it. A receiver marks its row delivered after the
//! delivery succeeded, so a crash between the two sends the notification again at the next
//! start: delivery is at least once. The database runs in WAL mode with `synchronous=FULL`, and
//! with `locking_mode=EXCLUSIVE` so that a second loftwatch on the same file fails at start
//! instead of writing next to the first.

mod codec;
mod history;
mod journal;
mod open;
mod recent;
mod schema;
mod silences;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use history::MinuteRollup;
pub use journal::Journal;
pub use open::default_path;
pub use recent::{DeliveryRecord, NotificationRecord};
pub use tables::{DeliveryStatus, OutboxEntry};

/// File name of the database inside `$STATE_DIRECTORY`.
pub const DATABASE_FILE: &str = "loftwatch.db";

/// A failure to open or use the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database {} is locked: another loftwatch may be running with the same store.path; \
         stop it or give this instance its own store.path",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "database {} is corrupt or not a loftwatch database ({detail}); it was left untouched: \
         restore it from a backup, or move it away to start with empty state",
        path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "database {} has schema version {found}, newer than version {supported} that this \
         loftwatch supports: run the newer loftwatch or point store.path at another file",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot create the folder of database {}: {source}", path.display())]
    CreateFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {}: invalid stored transition {id}: {detail}", path.display())]
    InvalidRecord {
        path: PathBuf,
        id: i64,
        detail: String,
    },
}

/// An open loftwatch database. Clones share one connection.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<rusqlite::Connection>>,
    /// Path of the file, or `:memory:` for a store that is not persisted.
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Returns the path of the database file, `:memory:` for an in-memory store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave a transaction half applied, because
        // SQLite rolls back a transaction that was not committed, so a poisoned lock is safe.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sql_error(&self, source: rusqlite::Error) -> StoreError {
        open::classify(&self.path, source)
    }
}
