//! The webhook receiver: posts each notification as Alertmanager's webhook payload (version
//! 4), signed with HMAC-SHA256 so the receiving end can check that loftwatch sent it.
//!
//! Each transition is its own group of one alert, so `groupLabels`, `commonLabels` and
//! `commonAnnotations` repeat that alert's labels and annotations.

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use super::alertmanager::description;
use super::heartbeat::{HEARTBEAT_NAME, Heartbeat};
use super::http::{client, post_json};
use super::render::{format_utc, transition_key};
use super::{DeliveryError, NotifyError};
use crate::alert::{Transition, TransitionKind};
use crate::config::WebhookConfig;

/// Header that carries the signature: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Loftwatch-Signature";

/// `receiver` of the payload.
const RECEIVER_NAME: &str = "loftwatch";

/// `endsAt` of an alert that has not ended, as Alertmanager writes it.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Posts signed webhook payloads to one URL.
pub struct WebhookReceiver {
    client: reqwest::Client,
    url: String,
    secret: Option<Vec<u8>>,
    external_url: String,
}

/// Returns the `X-Loftwatch-Signature` value of `body`: `sha256=` and the lowercase hex
/// HMAC-SHA256 of the raw bytes keyed by `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Builds the webhook payload of one alert with the given labels, annotations and status.
fn payload(
    status: &str,
    labels: Value,
    annotations: Value,
    starts_at: String,
    ends_at: String,
    fingerprint: &str,
    external_url: &str,
) -> Value {
    let group_key = format!(
        "{{}}:{{alertname={:?}}}",
        labels["alertname"].as_str().unwrap_or("")
    );
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER_NAME,
        "groupLabels": { "alertname": labels["alertname"] },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": external_url,
            "fingerprint": fingerprint,
        }],
    })
}

/// Builds the webhook v4 payload of a transition. The fingerprint is the alert id, the same
/// for the firing and the resolved payload of one alert.
pub fn webhook_payload(transition: &Transition, external_url: &str) -> Value {
    let status = transition.kind.as_str();
    let ends_at = match transition.kind {
        TransitionKind::Firing => ZERO_TIME.to_owned(),
        TransitionKind::Resolved => format_utc(transition.at),
    };
    let labels = json!({
        "alertname": &*transition.rule,
        "severity": transition.severity.as_str(),
        "probe": &*transition.probe,
        "location": &*transition.location,
        "instance": &*transition.location,
    });
    let annotations = json!({
        "summary": transition.summary,
        "description": description(transition),
        "runbook": &*transition.runbook,
        "value": transition.value_text,
        "threshold": transition.threshold_text,
        "transition": transition_key(transition),
    });
    payload(
        status,
        labels,
        annotations,
        format_utc(transition.firing_since),
        ends_at,
        &transition.alert_id,
        external_url,
    )
}

/// Builds the webhook v4 payload of a heartbeat: a firing `LoftwatchHeartbeat` alert.
fn heartbeat_payload(heartbeat: &Heartbeat, external_url: &str) -> Value {
    let labels = json!({
        "alertname": HEARTBEAT_NAME,
        "severity": "none",
        "location": &*heartbeat.location,
        "instance": &*heartbeat.location,
    });
    let annotations = json!({
        "summary": format!("loftwatch in {} is alive", heartbeat.location),
        "heartbeat": heartbeat.sequence.to_string(),
        "next_in": humantime::format_duration(heartbeat.interval).to_string(),
    });
    let fingerprint = format!("heartbeat/{}", heartbeat.location);
    payload(
        "firing",
        labels,
        annotations,
        format_utc(heartbeat.started),
        ZERO_TIME.to_owned(),
        &fingerprint,
        external_url,
    )
}

impl WebhookReceiver {
    /// Builds the HTTP client and reads the signing secret through `secrets`.
    pub fn new(
        config: &WebhookConfig,
        secrets: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookReceiver, NotifyError> {
        let secret = match &config.secret {
            Some(source) => Some(
                source
                    .load("receivers.webhook.secret", secrets)
                    .map_err(|source| NotifyError::ReceiverSecret {
                        key: "receivers.webhook.secret",
                        source,
                    })?
                    .into_bytes(),
            ),
            None => None,
        };
        Ok(WebhookReceiver {
            client: client("webhook", config.timeout)?,
            url: config.url.clone(),
            secret,
            external_url: config.external_url.clone().unwrap_or_default(),
        })
    }

    /// Posts the payload of one transition.
    pub async fn deliver(&self, transition: &Transition) -> Result<(), DeliveryError> {
        self.post(&webhook_payload(transition, &self.external_url))
            .await
    }

    /// Posts the payload of one heartbeat.
    pub async fn deliver_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), DeliveryError> {
        self.post(&heartbeat_payload(heartbeat, &self.external_url))
            .await
    }

    async fn post(&self, payload: &Value) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(payload)
            .map_err(|error| DeliveryError::permanent(format!("cannot encode payload: {error}")))?;
        let mut headers = HeaderMap::new();
        if let Some(secret) = &self.secret {
            let signature = sign(secret, &body);
            let value = HeaderValue::from_str(&signature).expect("hex is a valid header value");
            headers.insert(SIGNATURE_HEADER, value);
        }
        post_json(&self.client, &self.url, body, headers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signature = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
