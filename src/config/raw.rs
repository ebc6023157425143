//! Raw configuration as serde reads it from TOML, before validation.
//!
//! Every table rejects unknown keys. Values that validation checks further are wrapped in
//! [`Spanned`] so that an error can point at the line and column of the bad value.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub(crate) type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub salesloft: Option<RawSalesloft>,
    pub engine: Option<RawEngine>,
    #[serde(default)]
    pub probe: Vec<RawProbe>,
    #[serde(default)]
    pub rule: Vec<RawRule>,
    pub receivers: Option<RawReceivers>,
    pub server: Option<RawServer>,
    pub store: Option<RawStore>,
    pub history: Option<RawHistory>,
    pub routing: Option<RawGroupSettings>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub inhibit: Vec<RawInhibit>,
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
}

/// `[routing]`: grouping defaults of every route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroupSettings {
    pub group_by: Option<Vec<Text>>,
    pub group_wait: Option<Text>,
    pub group_interval: Option<Text>,
    pub repeat_interval: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(default)]
    pub matchers: Vec<Text>,
    pub receivers: Option<Vec<Text>>,
    #[serde(rename = "continue", default)]
    pub continue_matching: bool,
    pub group_by: Option<Vec<Text>>,
    pub group_wait: Option<Text>,
    pub group_interval: Option<Text>,
    pub repeat_interval: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInhibit {
    #[serde(default)]
    pub source_matchers: Vec<Text>,
    #[serde(default)]
    pub target_matchers: Vec<Text>,
    #[serde(default)]
    pub equal: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    pub name: Text,
    pub cron: Text,
    pub duration: Text,
    pub timezone: Option<Text>,
    #[serde(default)]
    pub matchers: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub path: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHistory {
    pub retention: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSalesloft {
    pub base_url: Option<Text>,
    pub credential: Option<Spanned<RawSecret>>,
    pub location: Option<Text>,
    pub user_agent: Option<Text>,
    pub auth: Option<Text>,
    pub token_url: Option<Text>,
    pub client_id: Option<Text>,
    pub client_secret: Option<Spanned<RawSecret>>,
    pub refresh_token: Option<Spanned<RawSecret>>,
    pub state_dir: Option<Text>,
    pub retry_attempts: Option<Spanned<i64>>,
    pub retry_backoff: Option<Text>,
    pub retry_backoff_max: Option<Text>,
    pub pause_on_429: Option<bool>,
    pub breaker_failures: Option<Spanned<i64>>,
    pub breaker_open_for: Option<Text>,
    pub budget_per_minute: Option<Spanned<i64>>,
    pub budget_share: Option<Spanned<f64>>,
    pub budget_floor: Option<Spanned<f64>>,
    pub dns_server: Option<Text>,
    pub dns_timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecret {
    pub credential: Option<String>,
    pub file: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEngine {
    pub eval_interval: Option<Text>,
    pub histogram_max: Option<Text>,
    pub keep_firing_for: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub name: Text,
    pub method: Option<Text>,
    pub path: Text,
    pub interval: Option<Text>,
    pub cron: Option<Text>,
    pub timezone: Option<Text>,
    pub timeout: Option<Text>,
    pub max_body: Option<Spanned<RawSize>>,
    pub expect_status: Option<Spanned<Vec<i64>>>,
    pub expect_json: Option<BTreeMap<String, Text>>,
    pub latency_baseline: Option<Text>,
    pub priority: Option<Text>,
}

/// A byte size: an integer, or a string such as `"1MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Text,
    pub severity: Text,
    pub expr: Text,
    pub window: Option<Text>,
    #[serde(rename = "for")]
    pub for_: Option<Text>,
    pub keep_firing_for: Option<Text>,
    pub min_samples: Option<Spanned<i64>>,
    pub runbook: Text,
    pub summary: Option<Text>,
    pub probes: Option<Spanned<Vec<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReceivers {
    pub email: Option<RawEmail>,
    pub otlp: Option<RawOtlp>,
    pub alertmanager: Option<RawAlertmanager>,
    pub webhook: Option<RawWebhook>,
    pub heartbeat: Option<RawHeartbeat>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlertmanager {
    pub url: Text,
    pub resend_interval: Option<Text>,
    pub timeout: Option<Text>,
    pub generator_url: Option<Text>,
    pub fallback: Option<Text>,
    pub fallback_after: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub url: Text,
    pub secret: Option<Spanned<RawSecret>>,
    pub timeout: Option<Text>,
    pub external_url: Option<Text>,
    pub fallback: Option<Text>,
    pub fallback_after: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeartbeat {
    pub receiver: Text,
    pub interval: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    pub host: Text,
    pub port: Option<Spanned<i64>>,
    pub tls: Option<Text>,
    pub ca_file: Option<Text>,
    pub username: Option<Text>,
    pub password: Option<Spanned<RawSecret>>,
    pub from: Text,
    pub to: Spanned<Vec<Text>>,
    pub timeout: Option<Text>,
    pub fallback: Option<Text>,
    pub fallback_after: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtlp {
    pub endpoint: Text,
    pub export_interval: Option<Text>,
    pub timeout: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<Text>,
    pub health_freshness: Option<Text>,
    pub token: Option<Spanned<RawSecret>>,
}
