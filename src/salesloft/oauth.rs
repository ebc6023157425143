//! OAuth access tokens from a rotating refresh token, shared by every probe.
//!
//! [`OAuthSession`] keeps the current access token and refreshes it ahead of its expiry (at
//! 80 % of its lifetime) and once after a 401. Refreshes are a single flight. The token state
//! sits behind a tokio mutex held for the whole refresh, so probes that need a token at the
//! same time wait for one refresh and never send the same single-use refresh token twice.
//! A failed refresh is not tried again before a backoff has passed, so a broken token endpoint
//! gets a few requests, not one per probe.

mod error;
mod grant;
mod store;

use std::path::Path;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub use error::OAuthError;
pub use grant::{TOKEN_REQUEST_TIMEOUT, encode_form};
pub use store::{REFRESH_TOKEN_FILE, RefreshTokenStore};

use self::grant::{Grant, RefreshRequest, request_refresh};
use super::Secret;
use crate::config::OAuthConfig;

/// Share of the access token lifetime after which it is refreshed ahead of expiry.
const REFRESH_AT_FRACTION: f64 = 0.8;
/// Wait after the first failed refresh; it doubles after each further failure.
const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Maximum wait between two failed refreshes.
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A bearer token handed to one request, with the number of the refresh that issued it.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// The token.
    pub token: Secret,
    /// Number of the refresh that issued it; 0 for an API key.
    pub generation: u64,
}

/// The OAuth state that metrics and alert rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthStatus {
    /// Time until the current access token expires; `None` before the first refresh, zero
    /// once it has expired.
    pub expires_in: Option<Duration>,
    /// True when the last refresh failed.
    pub refresh_failing: bool,
    /// Message of the last refresh error, with no secret in it.
    pub last_error: Option<String>,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Successful refreshes started by a 401.
    pub refreshes_after_401: u64,
    /// Failed refreshes.
    pub refresh_failures: u64,
}

/// The settings and secrets of an OAuth session.
pub struct OAuthSettings<'a> {
    /// The `[salesloft]` OAuth keys.
    pub config: &'a OAuthConfig,
    /// The client secret, read from its secret source.
    pub client_secret: Secret,
    /// The refresh token of the configuration, used when the state directory has none.
    pub refresh_token: Secret,
    /// Directory of the rotated refresh token file.
    pub state_dir: &'a Path,
    /// `User-Agent` of token requests.
    pub user_agent: &'a str,
}

struct TokenState {
    access: Option<AccessToken>,
    refresh_token: Secret,
    /// The configured refresh token while it was not tried yet and differs from the stored one.
    fallback_refresh: Option<Secret>,
    generation: u64,
    failures: u32,
    retry_at: Option<Instant>,
}

struct AccessToken {
    token: Secret,
    expires_at: Instant,
    refresh_at: Instant,
}

/// The cause of a refresh, for counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Expiry,
    Rejected,
}

/// Access tokens for one OAuth app, refreshed on demand and shared by every probe.
pub struct OAuthSession {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    store: RefreshTokenStore,
    backoff_base: Duration,
    backoff_max: Duration,
    state: Mutex<TokenState>,
    status: StdMutex<StatusRecord>,
}

#[derive(Default)]
struct StatusRecord {
    expires_at: Option<Instant>,
    status: OAuthStatus,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for OAuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSession")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl OAuthSession {
    /// Creates a session. The refresh token stored in `state_dir` by an earlier run is
    /// preferred over the configured one, which SalesLoft revoked when it was rotated.
    pub fn new(settings: OAuthSettings<'_>) -> Result<OAuthSession, OAuthError> {
        let store = RefreshTokenStore::new(settings.state_dir);
        let stored = store.load().map_err(|error| OAuthError::Persist {
            path: store.path().display().to_string(),
            reason: error.to_string(),
        })?;
        let (refresh_token, fallback_refresh) = match stored {
            Some(stored) if stored != settings.refresh_token => {
                (stored, Some(settings.refresh_token.clone()))
            }
            _ => (settings.refresh_token.clone(), None),
        };
        let http = reqwest::Client::builder()
            .user_agent(settings.user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .retry(reqwest::retry::never())
            .dns_resolver(super::GaiResolver)
            .build()
            .map_err(|error| OAuthError::InvalidResponse {
                reason: format!("cannot build the HTTP client: {error}"),
            })?;
        let mut secrets = vec![settings.client_secret.clone(), refresh_token.clone()];
        secrets.extend(fallback_refresh.clone());
        Ok(OAuthSession {
            http,
            token_url: settings.config.token_url.clone(),
            client_id: settings.config.client_id.clone(),
            client_secret: settings.client_secret,
            store,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            state: Mutex::new(TokenState {
                access: None,
                refresh_token,
                fallback_refresh,
                generation: 0,
                failures: 0,
                retry_at: None,
            }),
            status: StdMutex::new(StatusRecord {
                secrets,
                ..StatusRecord::default()
            }),
        })
    }

    /// Reads the client secret and the first refresh token from their sources and creates a
    /// session in the resolved state directory. `env` looks up environment variables.
    pub fn from_config(
        config: &OAuthConfig,
        user_agent: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<OAuthSession, OAuthError> {
        let load = |source: &crate::config::SecretSource, what: &str| {
            source
                .load(what, env)
                .map(Secret::new)
                .map_err(|error| OAuthError::Secret(error.to_string()))
        };
        let client_secret = load(&config.client_secret, "salesloft.client_secret")?;
        let refresh_token = load(&config.refresh_token, "salesloft.refresh_token")?;
        let state_dir = config.resolve_state_dir(env);
        OAuthSession::new(OAuthSettings {
            config,
            client_secret,
            refresh_token,
            state_dir: &state_dir,
            user_agent,
        })
    }

    /// Sets the backoff between failed refreshes: `base` after the first failure, doubling up
    /// to `max`.
    pub fn with_refresh_backoff(mut self, base: Duration, max: Duration) -> OAuthSession {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Returns the access token for a request, refreshing it first when it passed 80 % of its
    /// lifetime. When the refresh fails, the old token is returned even if it has expired, so
    /// the server's 401 shows the outage. An error is returned only when no token was ever
    /// issued.
    pub async fn bearer(&self) -> Result<Bearer, OAuthError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state
            .access
            .as_ref()
            .is_some_and(|access| now < access.refresh_at);
        if !fresh {
            if let Err(error) = self.refresh_locked(&mut state, Reason::Expiry).await {
                match &state.access {
                    Some(_) => {
                        tracing::warn!(%error, "access token refresh failed, keeping the old token")
                    }
                    None => return Err(error),
                }
            }
        }
        let access = state
            .access
            .as_ref()
            .expect("a token exists after a refresh");
        Ok(Bearer {
            token: access.token.clone(),
            generation: state.generation,
        })
    }

    /// Refreshes after the server rejected `rejected` with 401, unless another request did so
    /// already, and returns the token to retry with.
    pub async fn refresh_after_401(&self, rejected: &Bearer) -> Result<Bearer, OAuthError> {
        let mut state = self.state.lock().await;
        if state.generation == rejected.generation {
            self.refresh_locked(&mut state, Reason::Rejected).await?;
        }
        let access = state
            .access
            .as_ref()
            .expect("a token exists after a refresh");
        Ok(Bearer {
            token: access.token.clone(),
            generation: state.generation,
        })
    }

    /// Returns the state for metrics and alert rules.
    pub fn status(&self) -> OAuthStatus {
        let record = self.lock_status();
        let mut status = record.status.clone();
        status.expires_in = record
            .expires_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        status
    }

    /// Replaces every token and the client secret in `text` with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        let record = self.lock_status();
        record
            .secrets
            .iter()
            .fold(text.to_owned(), |text, secret| secret.redact(&text))
    }

    /// Refreshes with the state locked. A call during the backoff of an earlier failure
    /// returns [`OAuthError::Backoff`] without a request.
    async fn refresh_locked(
        &self,
        state: &mut TokenState,
        reason: Reason,
    ) -> Result<(), OAuthError> {
        let now = Instant::now();
        if let Some(retry_at) = state.retry_at.filter(|at| now < *at) {
            let last_error = self
                .lock_status()
                .status
                .last_error
                .clone()
                .unwrap_or_default();
            return Err(OAuthError::Backoff {
                last_error,
                retry_in: retry_at - now,
            });
        }
        let mut result = self.request(&state.refresh_token).await;
        if let Err(OAuthError::InvalidGrant { .. }) = &result {
            // The stored token may be older than a refresh token the operator configured after
            // authorizing the app again: try that one once.
            if let Some(configured) = state.fallback_refresh.take() {
                tracing::warn!("stored refresh token rejected, trying the configured one");
                state.refresh_token = configured;
                result = self.request(&state.refresh_token).await;
            }
        }
        let outcome = match result {
            Ok(grant) => self.accept(state, grant, reason),
            Err(error) => Err(error),
        };
        if let Err(error) = &outcome {
            state.failures += 1;
            let doublings = (state.failures - 1).min(16);
            let wait = self
                .backoff_base
                .saturating_mul(1 << doublings)
                .min(self.backoff_max);
            state.retry_at = Some(Instant::now() + wait);
            let message = self.redact(&error.to_string());
            tracing::warn!(error = %message, retry_in_ms = wait.as_millis(), "access token refresh failed");
            let mut record = self.lock_status();
            record.status.refresh_failing = true;
            record.status.last_error = Some(message);
            record.status.refresh_failures += 1;
        }
        outcome
    }

    async fn request(&self, refresh_token: &Secret) -> Result<Grant, OAuthError> {
        let request = RefreshRequest {
            token_url: &self.token_url,
            client_id: &self.client_id,
            client_secret: &self.client_secret,
            refresh_token,
        };
        request_refresh(&self.http, request).await
    }

    /// Stores the rotated refresh token, then installs the new access token.
    fn accept(
        &self,
        state: &mut TokenState,
        grant: Grant,
        reason: Reason,
    ) -> Result<(), OAuthError> {
        if let Some(rotated) = &grant.refresh_token {
            self.lock_status().secrets.push(rotated.clone());
            // The old refresh token is revoked now, so the new one is kept in memory even when
            // it cannot be stored. The new access token is then dropped: the failure shows as
            // refresh_failing now rather than as a daemon logged out after its next restart.
            state.refresh_token = rotated.clone();
            state.fallback_refresh = None;
            self.store
                .save(rotated)
                .map_err(|error| OAuthError::Persist {
                    path: self.store.path().display().to_string(),
                    reason: error.to_string(),
                })?;
        }

        let now = Instant::now();
        let access = AccessToken {
            token: grant.access_token,
            expires_at: now + grant.expires_in,
            refresh_at: now + grant.expires_in.mul_f64(REFRESH_AT_FRACTION),
        };
        state.generation += 1;
        state.failures = 0;
        state.retry_at = None;
        tracing::info!(
            generation = state.generation,
            expires_in_s = grant.expires_in.as_secs(),
            after_401 = reason == Reason::Rejected,
            "access token refreshed"
        );

        let mut record = self.lock_status();
        record.expires_at = Some(access.expires_at);
        record.secrets.push(access.token.clone());
        // Keep the client secret, the configured refresh token and the last few tokens.
        if record.secrets.len() > 16 {
            record.secrets.drain(2..6);
        }
        record.status.refresh_failing = false;
        record.status.last_error = None;
        record.status.refreshes += 1;
        if reason == Reason::Rejected {
            record.status.refreshes_after_401 += 1;
        }
        state.access = Some(access);
        Ok(())
    }

    fn lock_status(&self) -> std::sync::MutexGuard<'_, StatusRecord> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
