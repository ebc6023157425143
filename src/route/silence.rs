//! Silences: matchers with a start, an end, an author and a comment. A silenced alert keeps its
//! state, and only its notifications stop. Silences are kept in SQLite, so they outlive restarts
//! and reloads, and an in-memory copy answers the checks of the dispatcher.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::matcher::{Labels, Matcher, all_match};
use crate::store::{Store, StoreError};

/// Phase of a silence: pending, active or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    /// Its start is in the future.
    Pending,
    /// It mutes matching alerts now.
    Active,
    /// Its end has passed.
    Expired,
}

impl SilenceState {
    /// Returns the name used by the HTTP API: `pending`, `active` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// Random id of 16 hexadecimal digits.
    pub id: String,
    /// Matchers that an alert's labels must all satisfy; never empty.
    pub matchers: Vec<Matcher>,
    pub starts_at: SystemTime,
    pub ends_at: SystemTime,
    /// Author of the silence.
    pub created_by: String,
    /// Reason the alerts are silenced.
    pub comment: String,
}

impl Silence {
    /// Returns a new random silence id.
    pub fn new_id() -> String {
        format!("{:016x}", rand::random::<u64>())
    }

    /// Returns the state of the silence at `now`. The end is exclusive.
    pub fn state(&self, now: SystemTime) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Returns whether the silence is active at `now` and matches `labels`.
    pub fn mutes(&self, labels: &Labels, now: SystemTime) -> bool {
        self.state(now) == SilenceState::Active && all_match(&self.matchers, labels)
    }
}

/// The silences of one daemon: the database and a copy in memory. Clones share both.
#[derive(Debug, Clone)]
pub struct SilenceBook {
    store: Store,
    silences: Arc<Mutex<Vec<Silence>>>,
}

impl SilenceBook {
    /// Loads every silence that `store` contains.
    pub fn load(store: Store) -> Result<SilenceBook, StoreError> {
        let silences = store.load_silences()?;
        Ok(SilenceBook {
            store,
            silences: Arc::new(Mutex::new(silences)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Silence>> {
        self.silences
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Saves `silence`, then makes it take effect.
    pub fn add(&self, silence: Silence) -> Result<(), StoreError> {
        self.store.insert_silence(&silence)?;
        self.lock().push(silence);
        Ok(())
    }

    /// Returns every silence, expired ones included, in creation order.
    pub fn list(&self) -> Vec<Silence> {
        self.lock().clone()
    }

    /// Ends silence `id` at `now`. Returns `false` when no silence has that id; ending an
    /// expired silence changes nothing and returns `true`.
    pub fn expire(&self, id: &str, now: SystemTime) -> Result<bool, StoreError> {
        let mut silences = self.lock();
        let Some(silence) = silences.iter_mut().find(|silence| silence.id == id) else {
            return Ok(false);
        };
        if silence.state(now) == SilenceState::Expired {
            return Ok(true);
        }
        let ends_at = now.max(silence.starts_at);
        self.store.expire_silence(id, ends_at)?;
        silence.ends_at = ends_at;
        Ok(true)
    }

    /// Returns whether an active silence matches `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: SystemTime) -> bool {
        self.lock().iter().any(|silence| silence.mutes(labels, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn silence(start: u64, end: u64) -> Silence {
        let epoch = SystemTime::UNIX_EPOCH;
        Silence {
            id: Silence::new_id(),
            matchers: vec![Matcher::parse("probe = \"me\"").unwrap()],
            starts_at: epoch + Duration::from_secs(start),
            ends_at: epoch + Duration::from_secs(end),
            created_by: "ana".to_owned(),
            comment: "token rotation".to_owned(),
        }
    }

    #[test]
    fn silence_states_by_time() {
        let silence = silence(100, 200);
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(silence.state(at(99)), SilenceState::Pending);
        assert_eq!(silence.state(at(100)), SilenceState::Active);
        assert_eq!(silence.state(at(199)), SilenceState::Active);
        assert_eq!(silence.state(at(200)), SilenceState::Expired);
    }

    #[test]
    fn book_persists_and_expires() {
        let store = Store::open_in_memory().unwrap();
        let book = SilenceBook::load(store.clone()).unwrap();
        let added = silence(100, 200);
        book.add(added.clone()).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(150);
        let me = Labels::from([("probe", "me".to_owned())]);
        let other = Labels::from([("probe", "team".to_owned())]);
        assert!(book.mutes(&me, at));
        assert!(!book.mutes(&other, at));

        assert!(book.expire(&added.id, at).unwrap());
        assert!(!book.expire("0000000000000000", at).unwrap());
        assert!(!book.mutes(&me, at));
        let reloaded = SilenceBook::load(store).unwrap().list();
        assert_eq!(reloaded.len(), 1);
        assert_eq!(reloaded[0].ends_at, at);
        assert_eq!(reloaded[0].matchers, added.matchers);
        assert_eq!(reloaded[0].comment, "token rotation");
    }
}
