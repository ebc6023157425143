//! Service manager notifications (sd_notify): ready, reloading, stopping, watchdog and status.
//!
//! Without `NOTIFY_SOCKET` in the environment, as outside systemd, every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

/// Sends lifecycle notifications to the service manager.
pub(super) struct Lifecycle {
    /// Watchdog period requested by the unit (`WatchdogSec=`), if any.
    watchdog: Option<Duration>,
}

impl Lifecycle {
    pub(super) fn new() -> Self {
        Lifecycle {
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    fn send(states: &[NotifyState]) {
        if let Err(error) = sd_notify::notify(states) {
            debug!(%error, "sd_notify failed");
        }
    }

    pub(super) fn ready(&self, status: &str) {
        Self::send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub(super) fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => Self::send(&[NotifyState::Reloading, now]),
            Err(_) => Self::send(&[NotifyState::Reloading]),
        }
    }

    pub(super) fn stopping(&self) {
        Self::send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub(super) fn status(&self, status: &str) {
        Self::send(&[NotifyState::Status(status)]);
    }

    /// Pets the watchdog. It is called from the daemon's main loop at half the watchdog
    /// period, so a loop that stops turning stops the pets and the service manager restarts
    /// loftwatch.
    pub(super) fn watchdog(&self) {
        if self.watchdog.is_some() {
            Self::send(&[NotifyState::Watchdog]);
        }
    }

    /// Returns how often the main loop must turn for the watchdog, if one is set.
    pub(super) fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }
}

#[cfg(test)]
mod tests {
    use crate::config::state_directory;

    #[test]
    fn state_directory_takes_first_entry() {
        let env = |name: &str| {
            (name == "STATE_DIRECTORY").then(|| "/var/lib/loftwatch:/var/lib/other".to_owned())
        };
        assert_eq!(
            state_directory(&env),
            Some(std::path::PathBuf::from("/var/lib/loftwatch"))
        );
    }

    #[test]
    fn state_directory_missing_or_empty() {
        assert_eq!(state_directory(&|_: &str| None), None);
        assert_eq!(state_directory(&|_: &str| Some(String::new())), None);
    }
}
