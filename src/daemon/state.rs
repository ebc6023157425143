//! Opening the SQLite store and restoring alert state, deliveries and silences from it.

use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{info, warn};

use super::StartError;
use crate::alert::Engine;
use crate::config::Config;
use crate::notify::Notifier;
use crate::route::SilenceBook;
use crate::store::{Journal, Store};

/// Opens the store: the configured path, else `$STATE_DIRECTORY/loftwatch.db`, else memory.
pub(super) fn open_database(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Store, StartError> {
    let path = config
        .store
        .path
        .clone()
        .or_else(|| crate::store::default_path(env));
    let store = match path {
        Some(path) => Store::open(&path)?,
        None => {
            warn!(
                "store.path is not set and STATE_DIRECTORY is not either: alert state and \
                 undelivered notifications are kept in memory and lost at exit"
            );
            Store::open_in_memory()?
        }
    };
    Ok(store)
}

/// Restores the engine's alerts from the store, queues the deliveries it still holds and loads
/// the silences.
pub(super) fn restore(
    store: Store,
    engine: &mut Engine,
    notifier: &Notifier,
) -> Result<(Journal, SilenceBook), StartError> {
    let saved = store.load_alerts()?;
    let restored = engine.restore(&saved, Instant::now(), SystemTime::now());
    notifier.attach_store(store.clone());
    let resumed = notifier.resume(&store)?;
    info!(
        path = %store.path().display(),
        restored_alerts = restored,
        resumed_deliveries = resumed,
        "state restored"
    );
    let silences = SilenceBook::load(store.clone())?;
    Ok((Journal::new(store, notifier.receiver_names()), silences))
}
