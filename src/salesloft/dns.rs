//! Host name resolution through the system resolver, with an error type of its own.
//!
//! reqwest reports every failure before the first response byte as a connect error. Resolving
//! names here lets the prober find a [`DnsError`] in the error's source chain and tell a name
//! that does not resolve from a port that refuses connections.

use std::io;
use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A host name could not be resolved to any address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The system resolver returned an error.
    // The lookup error is part of the message rather than a source, so the message reads
    // whole where reqwest and hyper-util print their layers of the chain.
    #[error("cannot resolve host {host} ({error}); check the host name in salesloft.base_url")]
    Lookup {
        /// The host name as it appears in the URL.
        host: String,
        /// The error of `getaddrinfo`.
        error: io::Error,
    },
    /// The resolver succeeded but returned no address.
    #[error("host {host} resolved to no address; check the host name in salesloft.base_url")]
    NoAddress {
        /// The host name as it appears in the URL.
        host: String,
    },
}

/// Resolves names with `getaddrinfo` through [`tokio::net::lookup_host`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GaiResolver;

impl Resolve for GaiResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The port is replaced by the connector with the one of the URL.
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| DnsError::Lookup {
                    host: host.clone(),
                    error,
                })?;
            let addrs: Vec<SocketAddr> = found.collect();
            if addrs.is_empty() {
                return Err(DnsError::NoAddress { host }.into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
