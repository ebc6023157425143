//! The SalesLoft API client that every probe sends its request through.
//!
//! [`Client`] contains the base URL, the authentication (an API key or an [`OAuthSession`]),
//! the [`RetryPolicy`] and the rate-limit pauses of its host ([`RateLimitPauses`]), so probes
//! never handle credentials or connection policy themselves.

mod client;
mod dns;
mod oauth;
mod retry;
mod retry_after;
mod secret;

pub use client::{Client, ClientError};
pub use dns::{DnsError, GaiResolver};
pub use oauth::{
    Bearer, OAuthError, OAuthSession, OAuthSettings, OAuthStatus, REFRESH_TOKEN_FILE,
    RefreshTokenStore, TOKEN_REQUEST_TIMEOUT, encode_form,
};
pub use retry::{
    DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, MAX_ATTEMPTS, RetryPolicy, is_idempotent,
};
pub use retry_after::{
    MAX_RETRY_AFTER, RateLimitPauses, RetryAfterStats, RetryAfterValue, parse_retry_after,
    until_next_minute,
};
pub use secret::Secret;
