//! The SalesLoft credentials of the daemon and the client built from them.

use std::sync::Arc;

use super::{EnvLookup, StartError};
use crate::config::{AuthConfig, SalesloftConfig};
use crate::salesloft::{Client, OAuthSession, RateLimitPauses, Secret};

/// The SalesLoft credentials in use: what a reload compares to decide whether the client changes.
#[derive(Clone)]
pub enum Credentials {
    ApiKey(Secret),
    OAuth(Arc<OAuthSession>),
}

impl Credentials {
    /// Reads the API key, or opens the OAuth session. An OAuth session whose settings did not
    /// change is reused, so two sessions never spend the same rotating refresh token.
    pub fn load(
        config: &SalesloftConfig,
        env: &EnvLookup,
        current: Option<(&SalesloftConfig, &Credentials)>,
    ) -> Result<Credentials, StartError> {
        match &config.auth {
            AuthConfig::ApiKey => {
                let token = config.credential.load("salesloft.credential", &**env)?;
                Ok(Credentials::ApiKey(token.into()))
            }
            AuthConfig::OAuth(oauth) => {
                if let Some((old, Credentials::OAuth(session))) = current
                    && old.auth == config.auth
                {
                    return Ok(Credentials::OAuth(session.clone()));
                }
                let session = OAuthSession::from_config(oauth, &config.user_agent, &**env)
                    .map_err(|error| StartError::Client(error.to_string()))?;
                Ok(Credentials::OAuth(Arc::new(session)))
            }
        }
    }

    pub fn same(&self, other: &Credentials) -> bool {
        match (self, other) {
            (Credentials::ApiKey(a), Credentials::ApiKey(b)) => a == b,
            (Credentials::OAuth(a), Credentials::OAuth(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Builds the SalesLoft client; every client of one daemon shares `pauses`, so a
/// `Retry-After` outlives a reload.
pub fn build_client(
    config: &SalesloftConfig,
    credentials: &Credentials,
    pauses: &Arc<RateLimitPauses>,
) -> Result<Client, StartError> {
    let client = match credentials {
        Credentials::ApiKey(token) => Client::new(config, token.clone()),
        Credentials::OAuth(session) => Client::with_oauth(config, session.clone()),
    };
    client
        .map(|client| client.with_pauses(pauses.clone()))
        .map_err(|error| StartError::Client(error.to_string()))
}
