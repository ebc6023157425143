//! Validation: raw TOML structs to a [`Config`], collecting every problem with its position.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::duration::{format_duration, parse_duration};
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
/// Shortest probe interval and timeout: shorter ones flood SalesLoft, and tests that scale the
/// schedules down still fit above it.
pub const MIN_PROBE_PERIOD: Duration = Duration::from_millis(100);
/// Maximum probe timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Shortest rule evaluation tick: a shorter one only burns CPU.
pub const MIN_EVAL_INTERVAL: Duration = Duration::from_millis(50);
/// Maximum rule window: every probe keeps its results this long in memory.
pub const MAX_WINDOW: Duration = Duration::from_secs(86_400);
/// Maximum duration of any key: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

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

    /// Maps an offset into a string value to an offset into the source text, when exact.
    pub(super) fn source_offset(
        &self,
        span: Range<usize>,
        value: &str,
        offset: usize,
    ) -> Option<usize> {
        self.positions.string_offset(span, value, offset)
    }

    pub(super) fn duration(&mut self, value: &Text, key: &str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Ok(duration) => Some(duration),
            Err(reason) => {
                let message = format!("invalid duration {:?}: {reason}", value.get_ref());
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
        self.bounded(value, key, default, Duration::from_nanos(1), MAX_DURATION)
    }

    /// Reads a duration that must lie in `min..=max`; a value outside is reported and the
    /// default is used.
    pub(super) fn bounded(
        &mut self,
        value: Option<&Text>,
        key: &str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        let Some(duration) = self.duration(value, key) else {
            return default;
        };
        let shown = value.get_ref();
        let problem = if duration.is_zero() {
            Some("it must be above zero".to_owned())
        } else if duration < min {
            Some(format!("the minimum is {}", format_duration(min)))
        } else if duration > max {
            Some(format!("the maximum is {}", format_duration(max)))
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(
                    value.span(),
                    key,
                    format!("invalid duration {shown:?}: {problem}"),
                );
                default
            }
            None => duration,
        }
    }

    pub(crate) fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let dns = self.dns(raw.salesloft.as_ref());
        let mut salesloft = self.salesloft(raw.salesloft);
        let (engine, keep_firing_for) = self.engine(raw.engine.as_ref());
        if raw.probe.is_empty() {
            let message = "no [[probe]] table: add at least one probe, such as [[probe]] with \
                           name = \"me\" and path = \"/v2/me.json\""
                .to_owned();
            self.error(0..0, "probe", message);
        }
        let probes = self.probes(raw.probe);
        salesloft.dns = self.dns_within_probe_timeouts(dns, &probes);
        let rules = self.rules(raw.rule, &probes, keep_firing_for);
        let receivers = self.receivers(raw.receivers);
        let server = self.server(raw.server);
        let store = self.store(raw.store);
        let history = self.history(raw.history);
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
            history,
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
            dns_server: None,
            dns_timeout: None,
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
        let location_ok = raw
            .location
            .as_ref()
            .is_none_or(|value| self.plain_text(value, "salesloft.location"));
        if location_ok && location.trim().is_empty() {
            if let Some(value) = &raw.location {
                self.error(
                    value.span(),
                    "salesloft.location",
                    "location is empty".to_owned(),
                );
            }
        }
        if let Some(value) = &raw.user_agent {
            self.plain_text(value, "salesloft.user_agent");
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
            dns: Default::default(),
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

    fn engine(&mut self, raw: Option<&RawEngine>) -> (EngineConfig, Duration) {
        let eval_interval = self.bounded(
            raw.and_then(|raw| raw.eval_interval.as_ref()),
            "engine.eval_interval",
            DEFAULT_EVAL_INTERVAL,
            MIN_EVAL_INTERVAL,
            MAX_WINDOW,
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
