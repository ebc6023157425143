//! Validation: raw TOML structs to a [`Config`], collecting every problem with its position.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigIssue, Positions};
use super::raw::*;
use super::types::*;

/// Default SalesLoft API host.
pub const DEFAULT_BASE_URL: &str = "https://api.salesloft.com";
/// Default probe period; two probes at this period spend 12 of the team's 600 per minute.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default total deadline of one probe.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default body size cap.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default rule evaluation tick.
pub const DEFAULT_EVAL_INTERVAL: Duration = Duration::from_secs(1);
/// Default largest latency tracked by the histograms.
pub const DEFAULT_HISTOGRAM_MAX: Duration = Duration::from_secs(3600);
/// Smallest `histogram_max` accepted.
pub const MIN_HISTOGRAM_MAX: Duration = Duration::from_secs(600);
/// Default resolve hysteresis of a rule.
pub const DEFAULT_KEEP_FIRING_FOR: Duration = Duration::from_secs(60);
/// Default rule window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

pub(crate) struct Validator<'a> {
    positions: Positions<'a>,
    pub(crate) issues: Vec<ConfigIssue>,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Validator {
            positions: Positions::new(text),
            issues: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, span: Range<usize>, key: &str, message: String) {
        let issue = self.positions.issue(span, key, message);
        self.issues.push(issue);
    }

    pub(super) fn duration(&mut self, value: &Text, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref().trim()) {
            Ok(duration) => Some(duration),
            Err(_) => {
                let message = format!(
                    "invalid duration {:?}: write a number with a unit, such as 30s, 5m or 500ms",
                    value.get_ref()
                );
                self.error(value.span(), key, message);
                None
            }
        }
    }

    pub(super) fn duration_or(
        &mut self,
        value: Option<&Text>,
        key: &str,
        default: Duration,
    ) -> Duration {
        value
            .and_then(|value| self.duration(value, key))
            .unwrap_or(default)
    }

    pub(super) fn positive(
        &mut self,
        value: Option<&Text>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let duration = self.duration_or(value, key, default);
        if duration.is_zero() {
            if let Some(value) = value {
                let message = format!(
                    "invalid duration {:?}: it must be above zero",
                    value.get_ref()
                );
                self.error(value.span(), key, message);
            }
            return default;
        }
        duration
    }

    pub(crate) fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let salesloft = self.salesloft(raw.salesloft);
        let (engine, keep_firing_for) = self.engine(raw.engine.as_ref());
        let probes = self.probes(raw.probe);
        let rules = self.rules(raw.rule, &probes, keep_firing_for);
        let receivers = self.receivers(raw.receivers);
        let store = self.store(raw.store);
        if !self.issues.is_empty() {
            return None;
        }
        Some(Config {
            salesloft,
            engine,
            probes,
            rules,
            receivers,
            store,
        })
    }

    fn store(&mut self, raw: Option<RawStore>) -> StoreConfig {
        let Some(path) = raw.and_then(|raw| raw.path) else {
            return StoreConfig::default();
        };
        if path.get_ref().trim().is_empty() {
            let message = "store.path is empty: set a file path such as \"/var/lib/loftwatch/loftwatch.db\", or remove the key".to_owned();
            self.error(path.span(), "store.path", message);
            return StoreConfig::default();
        }
        StoreConfig {
            path: Some(PathBuf::from(path.into_inner())),
        }
    }

    fn salesloft(&mut self, raw: Option<RawSalesloft>) -> SalesloftConfig {
        let raw = raw.unwrap_or(RawSalesloft {
            base_url: None,
            credential: None,
            location: None,
            user_agent: None,
        });
        let base_url = match &raw.base_url {
            Some(value) => self.url(value, "salesloft.base_url"),
            None => DEFAULT_BASE_URL.to_owned(),
        };
        let credential = match &raw.credential {
            Some(value) => self.secret(value, "salesloft.credential"),
            None => SecretSource {
                credential: Some("salesloft-token".to_owned()),
                file: None,
                env: Some("SALESLOFT_TOKEN".to_owned()),
            },
        };
        let location = raw
            .location
            .as_ref()
            .map_or("default", |value| value.get_ref().as_str());
        if location.trim().is_empty() {
            if let Some(value) = &raw.location {
                self.error(
                    value.span(),
                    "salesloft.location",
                    "location is empty".to_owned(),
                );
            }
        }
        let user_agent = raw.user_agent.map(Spanned::into_inner).unwrap_or_else(|| {
            format!(
                "loftwatch/{} (synthetic monitor)",
                env!("CARGO_PKG_VERSION")
            )
        });
        SalesloftConfig {
            base_url,
            credential,
            location: Arc::from(location),
            user_agent,
        }
    }

    pub(super) fn url(&mut self, value: &Text, key: &str) -> String {
        let text = value.get_ref().trim();
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                text.trim_end_matches('/').to_owned()
            }
            _ => {
                let message =
                    format!("invalid URL {text:?}: expected http:// or https:// and a host");
                self.error(value.span(), key, message);
                String::new()
            }
        }
    }

    pub(super) fn secret(&mut self, value: &Spanned<RawSecret>, key: &str) -> SecretSource {
        let raw = value.get_ref();
        let source = SecretSource {
            credential: raw.credential.clone(),
            file: raw.file.as_ref().map(PathBuf::from),
            env: raw.env.clone(),
        };
        if source == SecretSource::default() {
            let message = "no secret source: set `credential` (a systemd credential name), \
                           `file` or `env`"
                .to_owned();
            self.error(value.span(), key, message);
        }
        source
    }

    fn engine(&mut self, raw: Option<&RawEngine>) -> (EngineConfig, Duration) {
        let eval_interval = self.positive(
            raw.and_then(|raw| raw.eval_interval.as_ref()),
            "engine.eval_interval",
            DEFAULT_EVAL_INTERVAL,
        );
        let histogram_max_raw = raw.and_then(|raw| raw.histogram_max.as_ref());
        let histogram_max = self.duration_or(
            histogram_max_raw,
            "engine.histogram_max",
            DEFAULT_HISTOGRAM_MAX,
        );
        if histogram_max < MIN_HISTOGRAM_MAX {
            if let Some(value) = histogram_max_raw {
                let message = format!(
                    "histogram_max {:?} is too small: it must be at least 10m",
                    value.get_ref()
                );
                self.error(value.span(), "engine.histogram_max", message);
            }
        }
        let keep_firing_for = self.duration_or(
            raw.and_then(|raw| raw.keep_firing_for.as_ref()),
            "engine.keep_firing_for",
            DEFAULT_KEEP_FIRING_FOR,
        );
        (
            EngineConfig {
                eval_interval,
                histogram_max,
            },
            keep_firing_for,
        )
    }
}
