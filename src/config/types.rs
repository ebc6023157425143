//! The validated configuration: what the rest of loftwatch reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::alert::{Expr, Severity};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub salesloft: SalesloftConfig,
    pub engine: EngineConfig,
    pub probes: Vec<ProbeSpec>,
    pub rules: Vec<RuleSpec>,
    pub receivers: Receivers,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub history: HistoryConfig,
    /// `[routing]`, `[[route]]`, `[[inhibit]]` and `[[maintenance]]`.
    pub routing: crate::route::RoutingConfig,
}

/// Location of the database of alert state and the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// Path of the SQLite database, relative to the working folder unless absolute. When unset,
    /// `$STATE_DIRECTORY/loftwatch.db` is used under systemd (`StateDirectory=`), and otherwise
    /// state lives in memory only and is lost at exit.
    pub path: Option<PathBuf>,
}

/// How long the per-minute probe history of the dashboard is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Age after which per-minute rollups are deleted from the database, 7 days unless
    /// configured.
    pub retention: Duration,
}

/// Settings of the calls to SalesLoft.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesloftConfig {
    /// Base URL with no trailing slash, such as `https://api.salesloft.com`.
    pub base_url: String,
    /// Source of the API key or access token.
    pub credential: SecretSource,
    /// Location label of this instance, attached to metrics and alerts.
    pub location: Arc<str>,
    /// `User-Agent` header sent with every probe.
    pub user_agent: String,
    /// Authentication of requests: the credential as an API key, or OAuth.
    pub auth: AuthConfig,
    /// Retries of idempotent requests after a 5xx or a connection error.
    pub retry: crate::salesloft::RetryPolicy,
    /// Whether a 429 pauses the host's probes until `Retry-After` or the next minute, as
    /// SalesLoft asks of clients. Off, every tick still probes and counts each 429.
    pub pause_on_429: bool,
    /// `breaker_failures` and `breaker_open_for`: the circuit breaker of each host.
    pub breaker: crate::salesloft::BreakerSettings,
    /// `budget_per_minute`, `budget_share` and `budget_floor`: the team's rate budget.
    pub budget: crate::salesloft::BudgetSettings,
    /// `dns_server` and `dns_timeout`: how the API's host name is resolved.
    pub dns: crate::salesloft::DnsSettings,
}

/// The authentication of requests to SalesLoft.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthConfig {
    /// `credential` is sent as the bearer token (an API key or a long-lived access token).
    #[default]
    ApiKey,
    /// Access tokens come from the refresh grant of an OAuth app; `credential` is unused.
    OAuth(Box<OAuthConfig>),
}

/// The OAuth app and the refresh token that access tokens are obtained with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// Token endpoint, by default `https://accounts.salesloft.com/oauth/token`.
    pub token_url: String,
    /// Client id of the OAuth app.
    pub client_id: String,
    /// Source of the client secret of the OAuth app.
    pub client_secret: SecretSource,
    /// Source of the first refresh token. A rotated one stored in `state_dir` wins over it.
    pub refresh_token: SecretSource,
    /// Directory of the rotated refresh token; `None` means `$STATE_DIRECTORY` or `./state`.
    pub state_dir: Option<PathBuf>,
}

impl OAuthConfig {
    /// Returns the state directory: the configured one, else the first directory of
    /// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`), else `./state`. `env` looks up
    /// variables, so tests never touch the process environment.
    pub fn resolve_state_dir(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        state_directory(env).unwrap_or_else(|| PathBuf::from("./state"))
    }
}

/// Returns the folder systemd created for loftwatch's state (`StateDirectory=`), from
/// `$STATE_DIRECTORY`. systemd passes a colon-separated list when the unit names several
/// folders; the first one is returned.
pub fn state_directory(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let value = env("STATE_DIRECTORY")?;
    let first = value.split(':').next().unwrap_or_default();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// Settings of the rule engine and the recorder.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How often every rule is evaluated even without new results.
    pub eval_interval: Duration,
    /// Largest latency the histograms track; larger samples are clamped and counted.
    pub histogram_max: Duration,
}

/// Sources of a secret. The first source that is present wins, in the order
/// systemd credential, file, environment variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSource {
    /// Name of a systemd credential, read from `$CREDENTIALS_DIRECTORY/<name>`.
    pub credential: Option<String>,
    /// Path of a file that contains the secret (surrounding whitespace is trimmed).
    pub file: Option<PathBuf>,
    /// Name of an environment variable that contains the secret.
    pub env: Option<String>,
}

/// One synthetic check against SalesLoft.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub name: Arc<str>,
    /// HTTP method, upper case.
    pub method: String,
    /// Path and query appended to the base URL, starting with `/`.
    pub path: String,
    pub schedule: Schedule,
    /// Total deadline: connect, headers and body.
    pub timeout: Duration,
    /// Largest body read, in bytes; a larger body is the `body_too_large` outcome.
    pub max_body: usize,
    /// Statuses that count as success.
    pub expect_status: Vec<u16>,
    /// Checks on the JSON body, run when the status is expected.
    pub assertions: Vec<JsonAssertion>,
    /// Latency baseline for the `baseline` variable of rule expressions.
    pub latency_baseline: Duration,
    /// Whether the probe pauses while the team's budget is under `budget_floor`.
    pub priority: Priority,
}

/// The `priority` of a probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// Runs whatever the team's remaining budget.
    #[default]
    Normal,
    /// Pauses while the team's remaining budget is under `budget_floor`.
    Low,
}

impl ProbeSpec {
    /// Returns whether the probe only reads (GET or HEAD), which sets its default baseline.
    pub fn is_read(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// When a probe runs.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `every`, starting `splay` after start-up so probes do not all fire together.
    Interval { every: Duration, splay: Duration },
    /// At the times of a 5-field crontab(5) line, in an IANA time zone.
    Cron {
        line: String,
        cron: Box<croner::Cron>,
        zone: chrono_tz::Tz,
    },
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Schedule::Interval { every, splay },
                Schedule::Interval {
                    every: other_every,
                    splay: other_splay,
                },
            ) => every == other_every && splay == other_splay,
            (
                Schedule::Cron { line, zone, .. },
                Schedule::Cron {
                    line: other_line,
                    zone: other_zone,
                    ..
                },
            ) => line == other_line && zone == other_zone,
            _ => false,
        }
    }
}

/// One check on a JSON response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonAssertion {
    /// Dotted path into the body: `data.id`, `metadata.paging.total_count`, `data.0.id`.
    pub path: String,
    pub check: JsonCheck,
}

/// Requirement of a JSON assertion on the value at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonCheck {
    Present,
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    NonEmpty,
}

/// One alert rule, applied to every probe it selects.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: Arc<str>,
    pub severity: Severity,
    /// The expression as written.
    pub expr_text: Arc<str>,
    pub expr: Expr,
    /// Sliding window the expression looks at.
    pub window: Duration,
    /// How long the condition must hold before the alert fires.
    pub for_: Duration,
    /// How long the condition must stay false before the alert resolves.
    pub keep_firing_for: Duration,
    /// Fewer results (latency samples for quantiles) than this in the window is no data.
    pub min_samples: u32,
    pub runbook: Arc<str>,
    /// Optional summary template; `{value}`, `{threshold}`, `{probe}` and `{window}` are filled.
    pub summary: Option<String>,
    /// Names of the probes this rule applies to; empty means every probe.
    pub probes: Vec<Arc<str>>,
}

/// The HTTP server of `/health` and `/metrics`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address and port the server binds, `127.0.0.1:9898` unless configured.
    pub listen: std::net::SocketAddr,
    /// Maximum age of the latest probe result that `/health` uses. `None` derives it from the
    /// probe schedules (see `server::default_health_freshness`).
    pub health_freshness: Option<Duration>,
    /// Bearer token that mutating endpoints require. Without it they are served only on a
    /// loopback address.
    pub token: Option<SecretSource>,
}

/// Receivers of notifications.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Receivers {
    pub email: Option<EmailConfig>,
    pub otlp: Option<OtlpConfig>,
    /// `[receivers.alertmanager]`: alerts posted to Alertmanager's v2 API.
    pub alertmanager: Option<AlertmanagerConfig>,
    /// `[receivers.webhook]`: Alertmanager webhook v4 JSON, signed with HMAC-SHA256.
    pub webhook: Option<WebhookConfig>,
    /// `[receivers.heartbeat]`: a periodic notification that loftwatch is alive.
    pub heartbeat: Option<HeartbeatConfig>,
}

/// The receivers that `fallback` and `heartbeat.receiver` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiverName {
    Email,
    Alertmanager,
    Webhook,
}

impl ReceiverName {
    /// Returns the name as written in the configuration: `email`, `alertmanager` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverName::Email => "email",
            ReceiverName::Alertmanager => "alertmanager",
            ReceiverName::Webhook => "webhook",
        }
    }
}

/// Receiver that takes over a receiver's pending notifications once it has failed for too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackConfig {
    /// `fallback`: the receiver that takes over.
    pub receiver: ReceiverName,
    /// `fallback_after`: how long delivery attempts must have failed without a success in
    /// between before notifications are handed over.
    pub after: Duration,
}

/// The Alertmanager receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// Base URL such as `http://127.0.0.1:9093`; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
    /// How often every firing alert is posted again, because Alertmanager resolves an alert
    /// whose `endsAt` passes without a new post.
    pub resend_interval: Duration,
    /// Deadline of one request.
    pub timeout: Duration,
    /// `generatorURL` of every alert, such as the loftwatch dashboard; omitted when unset.
    pub generator_url: Option<String>,
    pub fallback: Option<FallbackConfig>,
}

/// The webhook receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// URL that receives a `POST` per notification.
    pub url: String,
    /// Key of the `X-Loftwatch-Signature` HMAC; without it the header is not sent.
    pub secret: Option<SecretSource>,
    /// Deadline of one request.
    pub timeout: Duration,
    /// `externalURL` of the payload, such as the loftwatch dashboard; empty when unset.
    pub external_url: Option<String>,
    pub fallback: Option<FallbackConfig>,
}

/// The dead-man's switch: a notification sent every `interval` while loftwatch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// Receiver of the heartbeat; it must be configured.
    pub receiver: ReceiverName,
    /// Time between two heartbeats; the first is sent one interval after start.
    pub interval: Duration,
}

/// TLS mode of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS before AUTH; the upgrade is required.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all; allowed only for a loopback host.
    None,
}

/// The email receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// PEM file of extra root certificates to trust besides the platform's, for a relay whose
    /// certificate comes from a private CA. Validation checks that it contains a certificate.
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub from: String,
    pub to: Vec<String>,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
    pub fallback: Option<FallbackConfig>,
}

/// The OTLP/HTTP receiver for metrics and alert log records.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// Base endpoint such as `http://127.0.0.1:4318`; `/v1/metrics` and `/v1/logs` are appended.
    pub endpoint: String,
    pub export_interval: Duration,
    pub timeout: Duration,
}

/// A secret could not be read from any of its sources.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no source configured for {what}: set `credential`, `file` or `env`")]
    NoSource { what: String },
    #[error(
        "{what} not found: {tried}; create one of them, or change the source in the configuration"
    )]
    NotFound { what: String, tried: String },
    #[error("{what}: cannot read {path}: {source}")]
    Unreadable {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is empty in {origin}")]
    Empty { what: String, origin: String },
}

impl SecretSource {
    /// Reads the secret from the first source present, trimming surrounding whitespace.
    /// `what` names the secret in errors (`salesloft.credential`); `env` looks up variables,
    /// so tests never touch the process environment.
    pub fn load(
        &self,
        what: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, SecretError> {
        let mut tried = Vec::new();
        if let Some(name) = &self.credential {
            match env("CREDENTIALS_DIRECTORY") {
                Some(dir) => {
                    let path = PathBuf::from(dir).join(name);
                    if let Some(secret) = read_secret_file(what, &path)? {
                        return non_empty(what, secret, format!("credential {name}"));
                    }
                    tried.push(format!("systemd credential {}", path.display()));
                }
                None => tried.push(format!(
                    "systemd credential {name} ($CREDENTIALS_DIRECTORY is not set)"
                )),
            }
        }
        if let Some(path) = &self.file {
            if let Some(secret) = read_secret_file(what, path)? {
                return non_empty(what, secret, format!("file {}", path.display()));
            }
            tried.push(format!("file {}", path.display()));
        }
        if let Some(name) = &self.env {
            if let Some(secret) = env(name) {
                return non_empty(what, secret, format!("environment variable {name}"));
            }
            tried.push(format!("environment variable {name}"));
        }
        if tried.is_empty() {
            return Err(SecretError::NoSource {
                what: what.to_owned(),
            });
        }
        Err(SecretError::NotFound {
            what: what.to_owned(),
            tried: tried.join(", "),
        })
    }
}

fn read_secret_file(what: &str, path: &std::path::Path) -> Result<Option<String>, SecretError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Unreadable {
            what: what.to_owned(),
            path: path.to_owned(),
            source,
        }),
    }
}

fn non_empty(what: &str, secret: String, origin: String) -> Result<String, SecretError> {
    let trimmed = secret.trim();
    if trimmed.is_empty() {
        return Err(SecretError::Empty {
            what: what.to_owned(),
            origin,
        });
    }
    Ok(trimmed.to_owned())
}
