//! The SalesLoft API client that every probe sends its request through.
//!
//! [`Client`] contains the base URL, the authentication (an API key or an [`OAuthSession`]),
//! the [`RetryPolicy`] and the rate-limit pauses of its host ([`RateLimitPauses`]), so probes
//! never handle credentials or connection policy themselves. Its [`CircuitBreakers`] and
//! [`RateBudget`] decide, per host, whether a probe tick may send a request.

mod breaker;
mod budget;
mod client;
mod dns;
mod oauth;
mod retry;
mod retry_after;
mod secret;

pub use breaker::{
    Admission, BreakerSettings, BreakerState, CircuitBreakers, DEFAULT_BREAKER_FAILURES,
    DEFAULT_BREAKER_OPEN_FOR,
};
pub use budget::{
    BudgetSettings, DEFAULT_BUDGET_FLOOR, DEFAULT_BUDGET_PER_MINUTE, DEFAULT_BUDGET_SHARE,
    MAX_CHEAP_PAGE, RateBudget, page_cost, page_of, path_cost,
};
pub use client::{Client, ClientError};
pub use dns::{DEFAULT_DNS_TIMEOUT, DnsError, DnsFailure, DnsResolver, DnsSettings, GaiResolver};
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
