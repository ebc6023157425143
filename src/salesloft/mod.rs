//! The SalesLoft API client that every probe sends its request through.
//!
//! [`Client`] contains the base URL, the bearer token and a configured reqwest client. Token
//! refresh, retries and the circuit breaker belong here too, so probes never handle
//! credentials or connection policy themselves.

mod client;
mod dns;
mod secret;

pub use client::{Client, ClientError};
pub use dns::{DnsError, GaiResolver};
pub use secret::Secret;
