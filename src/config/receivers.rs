//! Validation of the HTTP receivers (Alertmanager and webhook), the heartbeat and the
//! `fallback` keys that hand a failing receiver's notifications to another.

use std::time::Duration;

use super::raw::*;
use super::types::*;
use super::validate::Validator;

/// Default `resend_interval` of the Alertmanager receiver, the default `--rules.alert.resend-delay`
/// of Prometheus.
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);

/// Default deadline of one HTTP request to Alertmanager or a webhook.
const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `fallback_after`.
const DEFAULT_FALLBACK_AFTER: Duration = Duration::from_secs(600);

/// The `fallback` and `fallback_after` keys of one receiver, before the set of configured
/// receivers is known.
pub(super) struct FallbackKeys<'a> {
    pub table: &'static str,
    pub fallback: Option<&'a Text>,
    pub fallback_after: Option<&'a Text>,
}

impl Validator<'_> {
    /// Validates `[receivers.alertmanager]`, `[receivers.webhook]`, `[receivers.heartbeat]` and
    /// every `fallback` key, and adds them to `receivers`.
    pub(super) fn http_receivers(&mut self, raw: &mut RawReceivers, receivers: &mut Receivers) {
        let configured = |name: ReceiverName| match name {
            ReceiverName::Email => raw.email.is_some(),
            ReceiverName::Alertmanager => raw.alertmanager.is_some(),
            ReceiverName::Webhook => raw.webhook.is_some(),
        };
        let configured: Vec<ReceiverName> = [
            ReceiverName::Email,
            ReceiverName::Alertmanager,
            ReceiverName::Webhook,
        ]
        .into_iter()
        .filter(|name| configured(*name))
        .collect();

        if let (Some(email), Some(config)) = (&raw.email, receivers.email.as_mut()) {
            let keys = FallbackKeys {
                table: "receivers.email",
                fallback: email.fallback.as_ref(),
                fallback_after: email.fallback_after.as_ref(),
            };
            config.fallback = self.fallback(&keys, ReceiverName::Email, &configured);
        }
        if let Some(am) = raw.alertmanager.take() {
            receivers.alertmanager = Some(self.alertmanager(am, &configured));
        }
        if let Some(webhook) = raw.webhook.take() {
            receivers.webhook = Some(self.webhook(webhook, &configured));
        }
        if let Some(heartbeat) = raw.heartbeat.take() {
            receivers.heartbeat = self.heartbeat(heartbeat, &configured);
        }
    }

    fn alertmanager(
        &mut self,
        raw: RawAlertmanager,
        configured: &[ReceiverName],
    ) -> AlertmanagerConfig {
        const TABLE: &str = "receivers.alertmanager";
        let url = self.url(&raw.url, &format!("{TABLE}.url"));
        let resend_interval = self.positive(
            raw.resend_interval.as_ref(),
            &format!("{TABLE}.resend_interval"),
            DEFAULT_RESEND_INTERVAL,
        );
        let timeout = self.positive(
            raw.timeout.as_ref(),
            &format!("{TABLE}.timeout"),
            DEFAULT_HTTP_TIMEOUT,
        );
        let generator_url = raw
            .generator_url
            .as_ref()
            .map(|value| self.url(value, &format!("{TABLE}.generator_url")));
        let keys = FallbackKeys {
            table: TABLE,
            fallback: raw.fallback.as_ref(),
            fallback_after: raw.fallback_after.as_ref(),
        };
        let fallback = self.fallback(&keys, ReceiverName::Alertmanager, configured);
        AlertmanagerConfig {
            url,
            resend_interval,
            timeout,
            generator_url,
            fallback,
        }
    }

    fn webhook(&mut self, raw: RawWebhook, configured: &[ReceiverName]) -> WebhookConfig {
        const TABLE: &str = "receivers.webhook";
        let url = self.url(&raw.url, &format!("{TABLE}.url"));
        let secret = raw
            .secret
            .as_ref()
            .map(|secret| self.secret(secret, &format!("{TABLE}.secret")));
        let timeout = self.positive(
            raw.timeout.as_ref(),
            &format!("{TABLE}.timeout"),
            DEFAULT_HTTP_TIMEOUT,
        );
        let external_url = raw
            .external_url
            .as_ref()
            .map(|value| self.url(value, &format!("{TABLE}.external_url")));
        let keys = FallbackKeys {
            table: TABLE,
            fallback: raw.fallback.as_ref(),
            fallback_after: raw.fallback_after.as_ref(),
        };
        let fallback = self.fallback(&keys, ReceiverName::Webhook, configured);
        WebhookConfig {
            url,
            secret,
            timeout,
            external_url,
            fallback,
        }
    }

    fn heartbeat(
        &mut self,
        raw: RawHeartbeat,
        configured: &[ReceiverName],
    ) -> Option<HeartbeatConfig> {
        let key = "receivers.heartbeat.receiver";
        let receiver = self.receiver_name(&raw.receiver, key, configured);
        let interval = self.positive(
            Some(&raw.interval),
            "receivers.heartbeat.interval",
            Duration::from_secs(3600),
        );
        Some(HeartbeatConfig {
            receiver: receiver?,
            interval,
        })
    }

    fn fallback(
        &mut self,
        keys: &FallbackKeys<'_>,
        own: ReceiverName,
        configured: &[ReceiverName],
    ) -> Option<FallbackConfig> {
        let table = keys.table;
        let Some(value) = keys.fallback else {
            if let Some(after) = keys.fallback_after {
                let message = "fallback_after is set without fallback: name the receiver that \
                               takes over in fallback, or remove fallback_after"
                    .to_owned();
                self.error(after.span(), &format!("{table}.fallback_after"), message);
            }
            return None;
        };
        let key = format!("{table}.fallback");
        let receiver = self.receiver_name(value, &key, configured)?;
        if receiver == own {
            let message = format!(
                "fallback {:?} names this receiver itself: name another configured receiver",
                value.get_ref()
            );
            self.error(value.span(), &key, message);
            return None;
        }
        let after = self.positive(
            keys.fallback_after,
            &format!("{table}.fallback_after"),
            DEFAULT_FALLBACK_AFTER,
        );
        Some(FallbackConfig { receiver, after })
    }

    /// Parses a receiver name and checks that the receiver is configured.
    fn receiver_name(
        &mut self,
        value: &Text,
        key: &str,
        configured: &[ReceiverName],
    ) -> Option<ReceiverName> {
        let name = match value.get_ref().trim() {
            "email" => ReceiverName::Email,
            "alertmanager" => ReceiverName::Alertmanager,
            "webhook" => ReceiverName::Webhook,
            other => {
                let message =
                    format!("invalid receiver {other:?}: expected email, alertmanager or webhook");
                self.error(value.span(), key, message);
                return None;
            }
        };
        if !configured.contains(&name) {
            let message = format!(
                "receiver {:?} is not configured: add a [receivers.{}] table or name another \
                 receiver",
                name.as_str(),
                name.as_str()
            );
            self.error(value.span(), key, message);
            return None;
        }
        Some(name)
    }
}
