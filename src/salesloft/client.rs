//! The HTTP client for the SalesLoft API: base URL, bearer token and connection policy.

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, Response, Url};

use super::{GaiResolver, Secret};
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

/// A client for one SalesLoft API base URL, authenticated with one bearer token.
///
/// It follows no redirects (a redirect is an unexpected status for a probe), ignores system
/// proxy settings, opens a new connection for every request, resolves names with
/// [`GaiResolver`] and sends `Authorization: Bearer`, `Accept: application/json` and the
/// configured user agent. Deadlines are left to the caller, because the prober wraps each
/// request in one total timeout.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    token: Secret,
}

impl Client {
    /// Builds a client for `config.base_url`, sending `token` as the bearer token.
    pub fn new(config: &SalesloftConfig, token: Secret) -> Result<Client, ClientError> {
        let base_url = validate_base_url(&config.base_url)?;

        let mut auth = HeaderValue::try_from(format!("Bearer {}", token.expose()))
            .map_err(|_| ClientError::InvalidToken)?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let user_agent = HeaderValue::try_from(config.user_agent.as_str())
            .map_err(|_| ClientError::InvalidUserAgent(config.user_agent.clone()))?;

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // A fresh connection per request, so every probe resolves the name, connects and
            // checks the certificate; a pooled connection would hide DNS and TLS failures.
            .pool_max_idle_per_host(0)
            // Every attempt is counted by the prober, so reqwest must not resend on its own.
            .retry(reqwest::retry::never())
            .dns_resolver(GaiResolver)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            base_url,
            token,
        })
    }

    /// Returns the base URL, with no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Returns the full URL of `path`, which starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Sends one request to `path` and returns at the response headers; the body is read by
    /// the caller. This is where token refresh, retries and the circuit breaker go.
    pub async fn send(&self, method: Method, path: &str) -> Result<Response, reqwest::Error> {
        self.http.request(method, self.url(path)).send().await
    }

    /// Replaces the token in `text` with `[redacted]`, for messages built from server or
    /// library output.
    pub fn redact(&self, text: &str) -> String {
        self.token.redact(text)
    }
}

fn validate_base_url(raw: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidBaseUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(raw).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host_str().is_none() {
        return Err(invalid("the URL has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("the URL must not have a query or fragment"));
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::SecretSource;

    fn config(base_url: &str) -> SalesloftConfig {
        SalesloftConfig {
            base_url: base_url.to_owned(),
            credential: SecretSource::default(),
            location: Arc::from("test"),
            user_agent: "loftwatch-test".to_owned(),
        }
    }

    #[test]
    fn new_trims_trailing_slash() {
        let client = Client::new(&config("http://127.0.0.1:9/"), Secret::new("t")).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
        assert_eq!(client.url("/v2/me.json"), "http://127.0.0.1:9/v2/me.json");
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
