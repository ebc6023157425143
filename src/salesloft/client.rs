//! The HTTP client for the SalesLoft API: base URL, bearer token and connection policy.

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use std::sync::Arc;

use reqwest::{Method, Response, Url};
use tokio::time::Instant;

use super::{
    Bearer, BudgetSettings, CircuitBreakers, DnsResolver, OAuthError, OAuthSession, RateBudget,
    RateLimitPauses, RetryPolicy, Secret,
};
use crate::config::SalesloftConfig;

/// The client could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `salesloft.base_url` is not an absolute http or https URL.
    #[error(
        "invalid salesloft.base_url {url:?}: {reason}; use a URL such as https://api.salesloft.com"
    )]
    InvalidBaseUrl {
        /// The configured value.
        url: String,
        /// The reason the value is invalid.
        reason: String,
    },
    /// The token contains characters that cannot be sent in an HTTP header.
    #[error(
        "the SalesLoft token contains characters not allowed in an HTTP header; check the credential"
    )]
    InvalidToken,
    /// `salesloft.user_agent` contains characters that cannot be sent in an HTTP header.
    #[error("invalid salesloft.user_agent {0:?}: use printable ASCII only")]
    InvalidUserAgent(String),
    /// reqwest could not build its client, for example because TLS failed to initialise.
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// The authentication of a client's requests.
#[derive(Debug, Clone)]
enum Auth {
    /// A fixed bearer token: an API key or a long-lived access token.
    ApiKey(Secret),
    /// Access tokens of an OAuth session shared with other clients.
    OAuth(Arc<OAuthSession>),
}

/// A client for one SalesLoft API base URL.
///
/// It follows no redirects (a redirect is an unexpected status for a probe), ignores system
/// proxy settings, resolves names with a [`DnsResolver`] for `config.dns` and sends
/// `Authorization: Bearer`, `Accept: application/json` and the configured user agent. Deadlines are left to the caller,
/// because the prober wraps each attempt in one total timeout.
///
/// It keeps no idle connections, so every request opens a new one and every probe resolves
/// the name, connects and checks the certificate. A pooled keep-alive connection that the
/// server closed meanwhile therefore never exists to be written to and reported as an API
/// error.
///
/// A 429 response pauses the client's host in its [`RateLimitPauses`], which clients of the
/// same daemon can share through [`Client::with_pauses`].
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    host: String,
    auth: Auth,
    retry: RetryPolicy,
    pauses: Arc<RateLimitPauses>,
    pause_on_429: bool,
    breakers: Arc<CircuitBreakers>,
    budget: Arc<RateBudget>,
    budget_settings: BudgetSettings,
}

impl Client {
    /// Builds a client for `config.base_url`, sending `token` as the bearer token.
    pub fn new(config: &SalesloftConfig, token: Secret) -> Result<Client, ClientError> {
        bearer_header(&token).map_err(|_| ClientError::InvalidToken)?;
        Client::build(config, Auth::ApiKey(token))
    }

    /// Builds a client for `config.base_url` that takes its access tokens from `session`.
    pub fn with_oauth(
        config: &SalesloftConfig,
        session: Arc<OAuthSession>,
    ) -> Result<Client, ClientError> {
        Client::build(config, Auth::OAuth(session))
    }

    fn build(config: &SalesloftConfig, auth: Auth) -> Result<Client, ClientError> {
        let (base_url, host) = validate_base_url(&config.base_url)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let user_agent = HeaderValue::try_from(config.user_agent.as_str())
            .map_err(|_| ClientError::InvalidUserAgent(config.user_agent.clone()))?;

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // A fresh connection per request: see the type's documentation.
            .pool_max_idle_per_host(0)
            // Every attempt is counted by the prober, so reqwest must not resend on its own.
            .retry(reqwest::retry::never())
            .dns_resolver(DnsResolver::new(config.dns))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base_url,
            host,
            auth,
            retry: config.retry,
            pause_on_429: config.pause_on_429,
            pauses: Arc::new(RateLimitPauses::new()),
            breakers: Arc::new(CircuitBreakers::new(config.breaker)),
            budget: Arc::new(RateBudget::new()),
            budget_settings: config.budget,
        })
    }

    /// Shares `pauses` with other clients, so a 429 on one pauses every probe of the host.
    pub fn with_pauses(mut self, pauses: Arc<RateLimitPauses>) -> Client {
        self.pauses = pauses;
        self
    }

    /// Replaces the retry policy of the configuration.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// Returns the base URL, with no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Returns the host and port that rate-limit pauses are kept for, such as
    /// `api.salesloft.com:443`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the full URL of `path`, which starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Returns the retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Returns the rate-limit pauses this client records into.
    pub fn pauses(&self) -> &Arc<RateLimitPauses> {
        &self.pauses
    }

    /// Returns the circuit breakers this client's probes report to.
    pub fn breakers(&self) -> &Arc<CircuitBreakers> {
        &self.breakers
    }

    /// Returns the latest remaining budget seen per host.
    pub fn budget(&self) -> &Arc<RateBudget> {
        &self.budget
    }

    /// Returns the configured rate budget.
    pub fn budget_settings(&self) -> BudgetSettings {
        self.budget_settings
    }

    /// Returns the end of the rate-limit pause of this client's host, if one is running.
    pub fn paused_until(&self) -> Option<Instant> {
        self.pauses.paused_until(&self.host)
    }

    /// Returns the OAuth session, when the client uses one.
    pub fn oauth(&self) -> Option<&Arc<OAuthSession>> {
        match &self.auth {
            Auth::ApiKey(_) => None,
            Auth::OAuth(session) => Some(session),
        }
    }

    /// Returns the bearer token for the next request, refreshing an OAuth token that is due.
    pub async fn bearer(&self) -> Result<Bearer, OAuthError> {
        match &self.auth {
            Auth::ApiKey(token) => Ok(Bearer {
                token: token.clone(),
                generation: 0,
            }),
            Auth::OAuth(session) => session.bearer().await,
        }
    }

    /// Refreshes the OAuth token after `rejected` got a 401, once for all requests that used
    /// it. Returns `None` for an API key, which cannot be refreshed.
    pub async fn refresh_after_401(&self, rejected: &Bearer) -> Option<Result<Bearer, OAuthError>> {
        match &self.auth {
            Auth::ApiKey(_) => None,
            Auth::OAuth(session) => Some(session.refresh_after_401(rejected).await),
        }
    }

    /// Sends one request to `path` with `bearer` and returns at the response headers; the
    /// body is read by the caller. A 429 pauses the host from the moment the request started.
    pub async fn send(
        &self,
        bearer: &Bearer,
        method: Method,
        path: &str,
    ) -> Result<Response, reqwest::Error> {
        let started = Instant::now();
        let mut request = self.http.request(method, self.url(path));
        if let Ok(header) = bearer_header(&bearer.token) {
            request = request.header(AUTHORIZATION, header);
        }
        let response = request.send().await?;
        let rate_limit = crate::probe::read_rate_limit(response.headers());
        tracing::debug!(
            host = %self.host,
            %path,
            status = response.status().as_u16(),
            cost = rate_limit.cost,
            remaining = rate_limit.remaining,
            "rate-limit headers"
        );
        if let Some(remaining) = rate_limit.remaining {
            self.budget.record(&self.host, remaining);
        }
        if response.status().as_u16() == 429 && self.pause_on_429 {
            self.pauses
                .record_429(&self.host, started, response.headers());
        }
        Ok(response)
    }

    /// Replaces every secret the client knows in `text` with `[redacted]`, for messages built
    /// from server or library output.
    pub fn redact(&self, text: &str) -> String {
        match &self.auth {
            Auth::ApiKey(token) => token.redact(text),
            Auth::OAuth(session) => session.redact(text),
        }
    }
}

/// Builds the `Authorization` header of `token`, marked sensitive so it is never printed.
fn bearer_header(token: &Secret) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut header = HeaderValue::try_from(format!("Bearer {}", token.expose()))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Returns the base URL with no trailing slash and its `host:port`.
fn validate_base_url(raw: &str) -> Result<(String, String), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidBaseUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(raw).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(invalid("the URL has no host"));
    };
    let port = parsed.port_or_known_default().unwrap_or(0);
    let host = format!("{host}:{port}");
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok((raw.trim_end_matches('/').to_owned(), host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;

    fn config(base_url: &str) -> SalesloftConfig {
        SalesloftConfig {
            base_url: base_url.to_owned(),
            credential: SecretSource::default(),
            location: Arc::from("test"),
            user_agent: "loftwatch-test".to_owned(),
            auth: crate::config::AuthConfig::ApiKey,
            retry: RetryPolicy::default(),
            pause_on_429: true,
            breaker: Default::default(),
            budget: Default::default(),
            dns: Default::default(),
        }
    }

    #[test]
    fn new_trims_trailing_slash() {
        let client = Client::new(&config("http://127.0.0.1:9/"), Secret::new("t")).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
        assert_eq!(client.url("/v2/me.json"), "http://127.0.0.1:9/v2/me.json");
        assert_eq!(client.host(), "127.0.0.1:9");
        let https = Client::new(&config("https://api.test"), Secret::new("t")).unwrap();
        assert_eq!(https.host(), "api.test:443");
    }

    #[test]
    fn new_rejects_bad_base_urls() {
        for url in ["ftp://127.0.0.1", "127.0.0.1:80", "http://127.0.0.1/?a=1"] {
            let error = Client::new(&config(url), Secret::new("t")).unwrap_err();
            assert!(
                matches!(error, ClientError::InvalidBaseUrl { .. }),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn new_rejects_token_with_newline() {
        let error = Client::new(&config("http://127.0.0.1:9"), Secret::new("a\nb")).unwrap_err();
        assert!(matches!(error, ClientError::InvalidToken));
    }

    #[test]
    fn debug_hides_token() {
        let client = Client::new(&config("http://127.0.0.1:9"), Secret::new("sekrit-token"));
        let printed = format!("{:?}", client.unwrap());
        assert!(!printed.contains("sekrit-token"), "{printed}");
    }
}
