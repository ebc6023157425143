//! Host name resolution with failures classified as timeout, SERVFAIL, NXDOMAIN or other.
//!
//! reqwest reports every failure before the first response byte as a connect error. Resolving
//! names here lets the prober find a [`DnsError`] in the error's source chain. So it tells a
//! name that does not resolve from a port that refuses connections, and a slow or failing
//! resolver from a name that does not exist.
//!
//! [`DnsResolver`] queries `salesloft.dns_server` directly over UDP when it is set, so the
//! response code of the server is seen as it is. Otherwise it calls `getaddrinfo`, whose error
//! codes say less (see [`DnsError::failure`]). Either way resolution ends after
//! `salesloft.dns_timeout`, which is shorter than every probe timeout, so a stuck resolver
//! shows as `dns_timeout` rather than as the probe's `timeout`.

mod udp;
mod wire;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Default deadline of one name resolution.
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// The `dns_server` and `dns_timeout` keys of `[salesloft]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSettings {
    /// DNS server queried directly over UDP; `None` uses the system resolver (`getaddrinfo`).
    pub server: Option<SocketAddr>,
    /// Deadline of one name resolution, below every probe's timeout.
    pub timeout: Duration,
}

impl Default for DnsSettings {
    fn default() -> DnsSettings {
        DnsSettings {
            server: None,
            timeout: DEFAULT_DNS_TIMEOUT,
        }
    }
}

/// The class of a DNS failure, which decides the probe outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFailure {
    /// No answer arrived in time, or the system resolver reported a temporary failure.
    Timeout,
    /// The server returned SERVFAIL.
    ServerFailure,
    /// The server returned NXDOMAIN, or the system resolver does not know the name.
    NameNotFound,
    /// Any other failure: a rejected query, a malformed answer, no address record.
    Other,
}

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
    /// The system resolver returned nothing within `dns_timeout`.
    #[error(
        "resolving host {host} with the system resolver timed out after {timeout:?}; check \
         /etc/resolv.conf or raise salesloft.dns_timeout"
    )]
    SystemTimeout {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_timeout`.
        timeout: Duration,
    },
    /// The DNS server sent no response within `dns_timeout`.
    #[error(
        "DNS server {server} sent no response for {host} within {timeout:?}; check that the \
         server runs, or raise salesloft.dns_timeout"
    )]
    Timeout {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
        /// The configured `dns_timeout`.
        timeout: Duration,
    },
    /// The DNS server answered SERVFAIL.
    #[error(
        "DNS server {server} answered SERVFAIL for {host}: it could not resolve the name; check \
         the server and the zone's name servers"
    )]
    ServerFailure {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
    },
    /// The DNS server answered NXDOMAIN.
    #[error(
        "DNS server {server} answered NXDOMAIN for {host}: the name does not exist; check the \
         host name in salesloft.base_url"
    )]
    NameNotFound {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
    },
    /// The DNS server answered with another error code, such as REFUSED.
    #[error("DNS server {server} answered {rcode} for {host}; check the server's configuration")]
    Rejected {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
        /// Name of the response code.
        rcode: String,
    },
    /// The DNS server sent a response that could not be read.
    #[error("DNS server {server} sent an invalid response for {host}: {reason}")]
    Malformed {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
        /// What was wrong with the response.
        reason: String,
    },
    /// Sending to or receiving from the DNS server failed, for example because nothing
    /// listens on its port.
    #[error("cannot query DNS server {server} for {host} ({error}); check salesloft.dns_server")]
    Io {
        /// The host name as it appears in the URL.
        host: String,
        /// The configured `dns_server`.
        server: SocketAddr,
        /// The socket error.
        error: io::Error,
    },
    /// The host name cannot be put in a DNS query.
    #[error("invalid host name {host:?} for a DNS query: {reason}")]
    InvalidName {
        /// The host name as it appears in the URL.
        host: String,
        /// Why the name cannot be encoded.
        reason: String,
    },
}

impl DnsError {
    /// Returns the class of the failure.
    ///
    /// With `dns_server` the class comes from the server's response code and is exact. With
    /// the system resolver only the `getaddrinfo` message is known, as glibc and musl word
    /// `gai_strerror`:
    /// - `EAI_NONAME` is `NameNotFound`. glibc returns it for NXDOMAIN, and also when a name
    ///   is in none of the sources of `/etc/nsswitch.conf`.
    /// - `EAI_AGAIN` is `Timeout`. glibc returns it for a timeout and for SERVFAIL alike, so
    ///   the system resolver never yields `ServerFailure`.
    /// - Every other code (`EAI_FAIL`, `EAI_NODATA`, ...) is `Other`.
    pub fn failure(&self) -> DnsFailure {
        match self {
            DnsError::Timeout { .. } | DnsError::SystemTimeout { .. } => DnsFailure::Timeout,
            DnsError::ServerFailure { .. } => DnsFailure::ServerFailure,
            DnsError::NameNotFound { .. } => DnsFailure::NameNotFound,
            DnsError::Lookup { error, .. } => classify_gai(&error.to_string()),
            DnsError::NoAddress { .. }
            | DnsError::Rejected { .. }
            | DnsError::Malformed { .. }
            | DnsError::Io { .. }
            | DnsError::InvalidName { .. } => DnsFailure::Other,
        }
    }
}

/// Classifies a `getaddrinfo` error by the `gai_strerror` text that std puts in its message.
fn classify_gai(message: &str) -> DnsFailure {
    // glibc: "Name or service not known"; musl: "Name does not resolve".
    const NONAME: [&str; 2] = ["Name or service not known", "Name does not resolve"];
    // glibc: "Temporary failure in name resolution"; musl: "Try again".
    const AGAIN: [&str; 2] = ["Temporary failure in name resolution", "Try again"];
    if NONAME.iter().any(|text| message.contains(text)) {
        DnsFailure::NameNotFound
    } else if AGAIN.iter().any(|text| message.contains(text)) {
        DnsFailure::Timeout
    } else {
        DnsFailure::Other
    }
}

/// Resolves names with `getaddrinfo` through [`tokio::net::lookup_host`], with no deadline of
/// its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct GaiResolver;

impl Resolve for GaiResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = lookup_system(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves names as [`DnsSettings`] say: through the configured DNS server over UDP, or
/// through `getaddrinfo`, within the settings' timeout either way.
#[derive(Debug, Clone, Copy, Default)]
pub struct DnsResolver {
    settings: DnsSettings,
}

impl DnsResolver {
    /// Builds a resolver for `settings`.
    pub fn new(settings: DnsSettings) -> DnsResolver {
        DnsResolver { settings }
    }

    /// Resolves `host` to its addresses, with port 0.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, DnsError> {
        let timeout = self.settings.timeout;
        match self.settings.server {
            Some(server) => {
                let ips = udp::resolve(host, server, timeout).await?;
                Ok(ips.into_iter().map(with_port_zero).collect())
            }
            None => {
                // NOTE: on a timeout the `getaddrinfo` call keeps running on tokio's blocking
                // pool until the system resolver gives up; only the probe stops waiting.
                match tokio::time::timeout(timeout, lookup_system(host)).await {
                    Ok(found) => found,
                    Err(_elapsed) => Err(DnsError::SystemTimeout {
                        host: host.to_owned(),
                        timeout,
                    }),
                }
            }
        }
    }
}

impl Resolve for DnsResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.lookup(&host).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves `host` with `getaddrinfo`.
async fn lookup_system(host: &str) -> Result<Vec<SocketAddr>, DnsError> {
    // The port is replaced by the connector with the one of the URL.
    let found = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|error| DnsError::Lookup {
            host: host.to_owned(),
            error,
        })?;
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err(DnsError::NoAddress {
            host: host.to_owned(),
        });
    }
    Ok(addrs)
}

fn with_port_zero(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_error(text: &str) -> DnsError {
        DnsError::Lookup {
            host: "catalog.test".to_owned(),
            error: io::Error::other(format!("failed to lookup address information: {text}")),
        }
    }

    #[test]
    fn gai_noname_is_name_not_found() {
        for text in ["Name or service not known", "Name does not resolve"] {
            assert_eq!(
                lookup_error(text).failure(),
                DnsFailure::NameNotFound,
                "{text}"
            );
        }
    }

    #[test]
    fn gai_again_is_timeout() {
        for text in ["Temporary failure in name resolution", "Try again"] {
            assert_eq!(lookup_error(text).failure(), DnsFailure::Timeout, "{text}");
        }
    }

    #[test]
    fn gai_other_codes_are_other() {
        for text in [
            "Non-recoverable failure in name resolution",
            "No address associated with hostname",
        ] {
            assert_eq!(lookup_error(text).failure(), DnsFailure::Other, "{text}");
        }
    }

    #[test]
    fn server_errors_keep_their_class() {
        let server: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let host = "catalog.test".to_owned();
        let timeout = DnsError::Timeout {
            host: host.clone(),
            server,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.failure(), DnsFailure::Timeout);
        let servfail = DnsError::ServerFailure {
            host: host.clone(),
            server,
        };
        assert_eq!(servfail.failure(), DnsFailure::ServerFailure);
        let nxdomain = DnsError::NameNotFound {
            host: host.clone(),
            server,
        };
        assert_eq!(nxdomain.failure(), DnsFailure::NameNotFound);
        let refused = DnsError::Rejected {
            host,
            server,
            rcode: "REFUSED".to_owned(),
        };
        assert_eq!(refused.failure(), DnsFailure::Other);
    }

    #[tokio::test]
    async fn closed_server_port_is_other() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = closed.local_addr().unwrap();
        drop(closed);
        let settings = DnsSettings {
            server: Some(server),
            timeout: Duration::from_secs(5),
        };
        let error = DnsResolver::new(settings)
            .lookup("catalog.test")
            .await
            .unwrap_err();
        // Linux reports the ICMP port unreachable of the loopback as a refused connection.
        assert!(matches!(error, DnsError::Io { .. }), "{error}");
        assert_eq!(error.failure(), DnsFailure::Other);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_server_times_out() {
        // A bound socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let settings = DnsSettings {
            server: Some(silent.local_addr().unwrap()),
            timeout: Duration::from_millis(300),
        };
        let started = tokio::time::Instant::now();
        let error = DnsResolver::new(settings)
            .lookup("catalog.test")
            .await
            .unwrap_err();
        assert_eq!(error.failure(), DnsFailure::Timeout, "{error}");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    }
}
