//! Configuration reload: re-read the file, validate it whole, then swap it in while keeping
//! the windows, the alert state and the cadence of unchanged probes.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{error, info};

use super::{Credentials, Daemon, build_client, host_of, retention, start_metrics, start_notifier};

/// Changes made by a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub probes_added: Vec<String>,
    pub probes_removed: Vec<String>,
    pub probes_changed: Vec<String>,
    pub rules: usize,
}

impl Daemon {
    /// Re-reads the configuration from `path`. A file that fails validation, a credential that
    /// cannot be read or a receiver that cannot start rejects the whole reload, and the running
    /// configuration stays as it was.
    pub(super) async fn reload(&mut self, path: Option<&Path>) -> Result<ReloadSummary, String> {
        let result = self.try_reload(path).await;
        match &result {
            Ok(summary) => info!(
                added = ?summary.probes_added,
                removed = ?summary.probes_removed,
                changed = ?summary.probes_changed,
                rules = summary.rules,
                "configuration reloaded"
            ),
            Err(message) => {
                error!(error = %message, "configuration reload rejected, keeping the running one")
            }
        }
        result
    }

    async fn try_reload(&mut self, path: Option<&Path>) -> Result<ReloadSummary, String> {
        let Some(path) = path else {
            return Err("loftwatch was started without a configuration file to re-read".into());
        };
        let config = crate::config::load(path).map_err(|error| error.to_string())?;
        let current = (&self.config.salesloft, &self.credentials);
        let credentials = Credentials::load(&config.salesloft, &self.env, Some(current))
            .map_err(|error| error.to_string())?;
        let client_changed =
            config.salesloft != self.config.salesloft || !credentials.same(&self.credentials);
        let client = if client_changed {
            let client = build_client(&config.salesloft, &credentials, &self.pauses)
                .map_err(|error| error.to_string())?;
            Some(Arc::new(client))
        } else {
            None
        };
        let receivers_changed = config.receivers != self.config.receivers
            || config.salesloft.location != self.config.salesloft.location;
        let notifier = if receivers_changed {
            Some(
                start_notifier(&config, &self.env, self.file_sink.clone())
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let metrics = if receivers_changed {
            Some(start_metrics(&config).map_err(|error| error.to_string())?)
        } else {
            None
        };

        // Everything is valid: swap the new parts in.
        let mut summary = ReloadSummary {
            rules: config.rules.len(),
            ..ReloadSummary::default()
        };
        for spec in &config.probes {
            match self.config.probes.iter().find(|old| old.name == spec.name) {
                None => summary.probes_added.push(spec.name.to_string()),
                Some(old) if old != spec || client_changed => {
                    summary.probes_changed.push(spec.name.to_string())
                }
                Some(_) => {}
            }
        }
        for old in &self.config.probes {
            if !config.probes.iter().any(|spec| spec.name == old.name) {
                summary.probes_removed.push(old.name.to_string());
                self.recorder.remove_probe(&old.name);
            }
        }
        if let Some(client) = client {
            self.client = client;
            self.credentials = credentials;
        }
        self.dispatcher.set_config(config.routing.clone());
        let location = config.salesloft.location.clone();
        let transitions =
            self.engine
                .reconfigure(&config.rules, &config.probes, location, SystemTime::now());
        // Resolved notices of removed alerts go out through the receivers they fired on.
        self.deliver(transitions);
        if let Some(notifier) = notifier {
            notifier.attach_store(self.journal.store().clone());
            self.journal.set_receivers(notifier.receiver_names());
            let old = std::mem::replace(&mut self.notifier, notifier);
            tokio::spawn(old.shutdown(super::SHUTDOWN_GRACE));
        }
        if let Some(metrics) = metrics {
            let old = std::mem::replace(&mut self.metrics, metrics);
            tokio::task::spawn_blocking(move || old.shutdown());
        }
        self.recorder.set_retention(retention(&config));
        self.server_address = host_of(&config.salesloft.base_url);
        self.probes
            .apply(&config.probes, &self.client, client_changed);
        self.config = config;
        Ok(summary)
    }
}
