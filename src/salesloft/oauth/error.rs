//! The errors of token refreshes. None of them carries a token or the client secret.

use std::time::Duration;

/// A refresh failed, or no access token could be obtained.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The token endpoint could not be reached.
    #[error("token endpoint {url} unreachable ({kind}); check salesloft.token_url and the network")]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// Failure class, such as `connect_error` or `timeout`.
        kind: &'static str,
    },
    /// The token endpoint returned an error other than `invalid_grant`.
    #[error(
        "token endpoint returned {status} {code:?}: {description:?}; check salesloft.client_id \
         and salesloft.client_secret"
    )]
    Rejected {
        /// HTTP status.
        status: u16,
        /// OAuth `error` code, when the body had one.
        code: Option<String>,
        /// OAuth `error_description`, when the body had one.
        description: Option<String>,
    },
    /// The refresh token is spent, revoked or unknown.
    #[error(
        "refresh token rejected (invalid_grant: {description:?}); authorize the OAuth app again \
         and store the new refresh token in salesloft.refresh_token"
    )]
    InvalidGrant {
        /// OAuth `error_description`, when the body had one.
        description: Option<String>,
    },
    /// The token endpoint returned 200 with a body that is not a token response.
    #[error("invalid token response: {reason}")]
    InvalidResponse {
        /// The problem with the body.
        reason: String,
    },
    /// The rotated refresh token could not be written to the state directory.
    #[error(
        "cannot store the rotated refresh token in {path}: {reason}; check salesloft.state_dir"
    )]
    Persist {
        /// The token file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The client secret or the first refresh token could not be read from its source.
    #[error("{0}")]
    Secret(String),
    /// The last refresh failed and its backoff has not passed; no valid token is at hand.
    #[error(
        "no valid access token: the last refresh failed ({last_error}); next try in {retry_in:?}"
    )]
    Backoff {
        /// The error of the last refresh.
        last_error: String,
        /// Time left until a refresh is tried again.
        retry_in: Duration,
    },
}
