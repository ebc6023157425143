//! Validation: raw TOML structs to a [`Config`], collecting every problem with its position.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigIssue, Positions};
use super::raw::*;
use super::types::*;
use crate::salesloft::{MAX_ATTEMPTS, RetryPolicy};

/// Default SalesLoft API host.
pub const DEFAULT_BASE_URL: &str = "https://api.salesloft.com";
/// Default OAuth token endpoint of SalesLoft.
pub const DEFAULT_TOKEN_URL: &str = "https://accounts.salesloft.com/oauth/token";
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
        let server = self.server(raw.server);
        let store = self.store(raw.store);
        let routing = self.routing(raw.routing, raw.route, raw.inhibit, raw.maintenance);
        if !self.issues.is_empty() {
            return None;
        }
        Some(Config {
            salesloft,
            engine,
            probes,
            rules,
            receivers,
            server,
            store,
            routing,
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
            auth: None,
            token_url: None,
            client_id: None,
            client_secret: None,
            refresh_token: None,
            state_dir: None,
            retry_attempts: None,
            retry_backoff: None,
            retry_backoff_max: None,
            pause_on_429: None,
            breaker_failures: None,
            breaker_open_for: None,
            budget_per_minute: None,
            budget_share: None,
            budget_floor: None,
        });
        let auth = self.auth(&raw);
        let retry = self.retry(&raw);
        let breaker = self.breaker(&raw);
        let budget = self.budget(&raw);
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
            auth,
            retry,
            pause_on_429: raw.pause_on_429.unwrap_or(true),
            breaker,
            budget,
        }
    }

    /// Reads `auth` and the OAuth keys, which are rejected with `auth = "api_key"`.
    fn auth(&mut self, raw: &RawSalesloft) -> AuthConfig {
        let mode = raw
            .auth
            .as_ref()
            .map_or("api_key", |value| value.get_ref().as_str());
        match mode {
            "api_key" => {
                let oauth_keys = [
                    (
                        "salesloft.token_url",
                        raw.token_url.as_ref().map(Spanned::span),
                    ),
                    (
                        "salesloft.client_id",
                        raw.client_id.as_ref().map(Spanned::span),
                    ),
                    (
                        "salesloft.client_secret",
                        raw.client_secret.as_ref().map(Spanned::span),
                    ),
                    (
                        "salesloft.refresh_token",
                        raw.refresh_token.as_ref().map(Spanned::span),
                    ),
                    (
                        "salesloft.state_dir",
                        raw.state_dir.as_ref().map(Spanned::span),
                    ),
                ];
                for (key, span) in oauth_keys {
                    if let Some(span) = span {
                        let message = "applies only to auth = \"oauth\": set auth = \"oauth\" \
                                       or remove the key"
                            .to_owned();
                        self.error(span, key, message);
                    }
                }
                AuthConfig::ApiKey
            }
            "oauth" => {
                let token_url = match &raw.token_url {
                    Some(value) => self.url(value, "salesloft.token_url"),
                    None => DEFAULT_TOKEN_URL.to_owned(),
                };
                let auth_span = raw.auth.as_ref().map(Spanned::span).unwrap_or_default();
                let client_id = match &raw.client_id {
                    Some(value) if !value.get_ref().trim().is_empty() => {
                        value.get_ref().trim().to_owned()
                    }
                    Some(value) => {
                        self.error(
                            value.span(),
                            "salesloft.client_id",
                            "client_id is empty".to_owned(),
                        );
                        String::new()
                    }
                    None => {
                        let message = "missing: auth = \"oauth\" requires the client id of the \
                                       OAuth app"
                            .to_owned();
                        self.error(auth_span.clone(), "salesloft.client_id", message);
                        String::new()
                    }
                };
                let mut required_secret =
                    |value: &Option<Spanned<RawSecret>>, key: &str| match value {
                        Some(value) => self.secret(value, key),
                        None => {
                            let message = format!(
                                "missing: auth = \"oauth\" requires {key} as a secret source, \
                                 such as {{ credential = \"name\" }} or {{ file = \"/path\" }}"
                            );
                            self.error(auth_span.clone(), key, message);
                            SecretSource::default()
                        }
                    };
                let client_secret = required_secret(&raw.client_secret, "salesloft.client_secret");
                let refresh_token = required_secret(&raw.refresh_token, "salesloft.refresh_token");
                let state_dir = raw
                    .state_dir
                    .as_ref()
                    .map(|value| PathBuf::from(value.get_ref().trim()));
                AuthConfig::OAuth(Box::new(OAuthConfig {
                    token_url,
                    client_id,
                    client_secret,
                    refresh_token,
                    state_dir,
                }))
            }
            other => {
                let span = raw.auth.as_ref().map(Spanned::span).unwrap_or_default();
                let message = format!("invalid auth {other:?}: use \"api_key\" or \"oauth\"");
                self.error(span, "salesloft.auth", message);
                AuthConfig::ApiKey
            }
        }
    }

    /// Reads the retry keys of idempotent requests.
    fn retry(&mut self, raw: &RawSalesloft) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        if let Some(value) = &raw.retry_attempts {
            match u32::try_from(*value.get_ref()) {
                Ok(attempts) if (1..=MAX_ATTEMPTS).contains(&attempts) => {
                    policy.max_attempts = attempts;
                }
                _ => {
                    let message = format!(
                        "invalid retry_attempts {}: use 1 (no retry) to {MAX_ATTEMPTS}",
                        value.get_ref()
                    );
                    self.error(value.span(), "salesloft.retry_attempts", message);
                }
            }
        }
        policy.backoff_base = self.duration_or(
            raw.retry_backoff.as_ref(),
            "salesloft.retry_backoff",
            policy.backoff_base,
        );
        policy.backoff_max = self.duration_or(
            raw.retry_backoff_max.as_ref(),
            "salesloft.retry_backoff_max",
            policy.backoff_max,
        );
        if policy.backoff_max < policy.backoff_base {
            if let Some(value) = &raw.retry_backoff_max {
                let message = format!(
                    "retry_backoff_max {:?} is below retry_backoff: raise it or lower retry_backoff",
                    value.get_ref()
                );
                self.error(value.span(), "salesloft.retry_backoff_max", message);
            }
        }
        policy
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
