//! The Alertmanager receiver: posts alerts to Alertmanager's v2 API (`POST /api/v2/alerts`).
//!
//! Alertmanager resolves an alert by itself once its `endsAt` passes, so every firing alert is
//! posted again each `resend_interval` with `endsAt` four intervals ahead, as Prometheus does
//! with its resend delay. Several loftwatch instances that post the same alert (same labels
//! but `location` and `instance`) to one Alertmanager cluster are grouped there, and a
//! duplicate post of one alert is merged by its labels.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tracing::debug;

use super::heartbeat::{HEARTBEAT_NAME, Heartbeat};
use super::http::{client, post_json};
use super::render::format_utc;
use super::{DeliveryError, NotifyError};
use crate::alert::{Transition, TransitionKind};
use crate::config::AlertmanagerConfig;

/// How many resend intervals a firing alert stays valid in Alertmanager without a new post.
const VALIDITY_INTERVALS: u32 = 4;

/// Posts alert transitions and resends of firing alerts to one Alertmanager.
pub struct AlertmanagerReceiver {
    client: reqwest::Client,
    endpoint: String,
    generator_url: Option<String>,
    resend_interval: Duration,
    /// Firing alerts by alert id, posted again at every resend.
    firing: Mutex<BTreeMap<String, Transition>>,
}

/// Returns the rule's condition at the transition: `count(status == 401) > 0 over 1m: value 3,
/// threshold > 0`.
pub(super) fn description(transition: &Transition) -> String {
    format!(
        "{} over {}: value {}, threshold {}",
        transition.expr, transition.window_text, transition.value_text, transition.threshold_text
    )
}

/// Builds the v2 API alert of a transition. A firing alert ends at `now + valid_for` unless it
/// is posted again; a resolved alert ends at the transition time.
pub fn alert_json(
    transition: &Transition,
    now: SystemTime,
    valid_for: Duration,
    generator_url: Option<&str>,
) -> Value {
    let ends_at = match transition.kind {
        TransitionKind::Firing => now + valid_for,
        TransitionKind::Resolved => transition.at,
    };
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(transition.summary));
    annotations.insert("description".into(), json!(description(transition)));
    // A runbook that is a link fills Alertmanager's conventional `runbook_url`.
    let runbook_key = if transition.runbook.starts_with("http://")
        || transition.runbook.starts_with("https://")
    {
        "runbook_url"
    } else {
        "runbook"
    };
    annotations.insert(runbook_key.into(), json!(&*transition.runbook));
    annotations.insert("value".into(), json!(transition.value_text));
    annotations.insert("threshold".into(), json!(transition.threshold_text));
    let mut alert = json!({
        "labels": {
            "alertname": &*transition.rule,
            "severity": transition.severity.as_str(),
            "probe": &*transition.probe,
            "location": &*transition.location,
            "instance": &*transition.location,
        },
        "annotations": annotations,
        "startsAt": format_utc(transition.firing_since),
        "endsAt": format_utc(ends_at),
    });
    if let Some(url) = generator_url {
        alert["generatorURL"] = json!(url);
    }
    alert
}

/// Builds the heartbeat alert: always firing while heartbeats arrive, and resolved by
/// Alertmanager two intervals after the last one, which an inhibition or a dead-man's-switch
/// route can page on.
pub fn heartbeat_alert_json(heartbeat: &Heartbeat) -> Value {
    json!({
        "labels": {
            "alertname": HEARTBEAT_NAME,
            "severity": "none",
            "location": &*heartbeat.location,
            "instance": &*heartbeat.location,
        },
        "annotations": {
            "summary": format!("loftwatch in {} is alive", heartbeat.location),
        },
        "startsAt": format_utc(heartbeat.started),
        "endsAt": format_utc(heartbeat.at + heartbeat.interval * 2),
    })
}

impl AlertmanagerReceiver {
    /// Builds the HTTP client; alerts go to `{url}/api/v2/alerts`.
    pub fn new(config: &AlertmanagerConfig) -> Result<AlertmanagerReceiver, NotifyError> {
        Ok(AlertmanagerReceiver {
            client: client("alertmanager", config.timeout)?,
            endpoint: format!("{}/api/v2/alerts", config.url.trim_end_matches('/')),
            generator_url: config.generator_url.clone(),
            resend_interval: config.resend_interval,
            firing: Mutex::new(BTreeMap::new()),
        })
    }

    /// Returns how often firing alerts are posted again.
    pub fn resend_interval(&self) -> Duration {
        self.resend_interval
    }

    fn valid_for(&self) -> Duration {
        self.resend_interval * VALIDITY_INTERVALS
    }

    /// Posts one transition. A firing alert joins the resend list before the post, so an alert
    /// whose first post failed still reaches Alertmanager at the next resend. A resolved alert
    /// leaves the list.
    pub async fn deliver(&self, transition: &Transition) -> Result<(), DeliveryError> {
        {
            let mut firing = self.firing.lock().expect("firing lock is never poisoned");
            match transition.kind {
                TransitionKind::Firing => {
                    firing.insert(transition.alert_id.clone(), transition.clone());
                }
                TransitionKind::Resolved => {
                    firing.remove(&transition.alert_id);
                }
            }
        }
        let alert = alert_json(
            transition,
            SystemTime::now(),
            self.valid_for(),
            self.generator_url.as_deref(),
        );
        self.post(vec![alert]).await
    }

    /// Posts the heartbeat alert.
    pub async fn deliver_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), DeliveryError> {
        self.post(vec![heartbeat_alert_json(heartbeat)]).await
    }

    /// Posts every firing alert again in one request, or does nothing when none fires.
    /// Returns how many alerts were posted.
    pub async fn resend_firing(&self) -> Result<usize, DeliveryError> {
        let now = SystemTime::now();
        let alerts: Vec<Value> = {
            let firing = self.firing.lock().expect("firing lock is never poisoned");
            firing
                .values()
                .map(|transition| {
                    alert_json(
                        transition,
                        now,
                        self.valid_for(),
                        self.generator_url.as_deref(),
                    )
                })
                .collect()
        };
        if alerts.is_empty() {
            return Ok(0);
        }
        let count = alerts.len();
        self.post(alerts).await?;
        debug!(
            receiver = "alertmanager",
            alerts = count,
            "firing alerts posted again"
        );
        Ok(count)
    }

    async fn post(&self, alerts: Vec<Value>) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&alerts)
            .map_err(|error| DeliveryError::permanent(format!("cannot encode alerts: {error}")))?;
        post_json(&self.client, &self.endpoint, body, HeaderMap::new()).await
    }
}
