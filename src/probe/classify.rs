//! Classification of transport errors into probe outcomes.
//!
//! reqwest wraps every failure before the response in layers of hyper and hyper-util errors.
//! The cause that decides the outcome is somewhere in the source chain: a
//! [`DnsError`] from loftwatch's own resolver, whose [`DnsFailure`] class picks one of the
//! `dns_*` outcomes, or a [`rustls::Error`] inside an `io::Error`.

use std::error::Error;
use std::io;

use super::Outcome;
use crate::salesloft::{DnsError, DnsFailure};

/// Returns the outcome for an error that ended a request before a complete response.
pub fn classify_error(error: &(dyn Error + 'static)) -> Outcome {
    let mut dns = None;
    let mut tls = false;
    visit_chain(error, &mut |cause| {
        if let Some(failure) = cause.downcast_ref::<DnsError>().map(DnsError::failure) {
            dns.get_or_insert(failure);
        }
        tls |= cause.is::<rustls::Error>();
    });
    if let Some(failure) = dns {
        dns_outcome(failure)
    } else if tls {
        Outcome::TlsError
    } else {
        Outcome::ConnectError
    }
}

/// Returns the outcome of a DNS failure of class `failure`.
fn dns_outcome(failure: DnsFailure) -> Outcome {
    match failure {
        DnsFailure::Timeout => Outcome::DnsTimeout,
        DnsFailure::ServerFailure => Outcome::DnsServfail,
        DnsFailure::NameNotFound => Outcome::DnsNxdomain,
        DnsFailure::Other => Outcome::DnsError,
    }
}

/// Returns every message of the error chain joined with `: `, leaving out a message that
/// only repeats the end of the one before it.
pub fn describe_error(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    visit_chain(error, &mut |cause| {
        let text = cause.to_string();
        if !parts
            .last()
            .is_some_and(|previous| previous.ends_with(&text))
        {
            parts.push(text);
        }
    });
    parts.join(": ")
}

/// Calls `visit` on each error of the chain. `io::Error::source` skips the error it wraps
/// and returns that error's source, so the wrapped error is visited explicitly.
fn visit_chain(error: &(dyn Error + 'static), visit: &mut dyn FnMut(&(dyn Error + 'static))) {
    let mut current = Some(error);
    while let Some(cause) = current {
        visit(cause);
        if let Some(wrapped) = cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            visit_chain(wrapped, visit);
            return;
        }
        current = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer layer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn dns_error_inside_io_error_is_dns() {
        let dns = DnsError::NoAddress {
            host: "nonexistent.invalid".into(),
        };
        let error = Outer(io::Error::other(dns));
        assert_eq!(classify_error(&error), Outcome::DnsError);
    }

    #[test]
    fn dns_failures_keep_their_class() {
        let server = "127.0.0.1:5353".parse().unwrap();
        let host = "catalog.test".to_owned();
        let cases = [
            (
                DnsError::Timeout {
                    host: host.clone(),
                    server,
                    timeout: std::time::Duration::from_secs(1),
                },
                Outcome::DnsTimeout,
            ),
            (
                DnsError::ServerFailure {
                    host: host.clone(),
                    server,
                },
                Outcome::DnsServfail,
            ),
            (
                DnsError::NameNotFound {
                    host: host.clone(),
                    server,
                },
                Outcome::DnsNxdomain,
            ),
            (
                DnsError::Rejected {
                    host,
                    server,
                    rcode: "REFUSED".to_owned(),
                },
                Outcome::DnsError,
            ),
        ];
        for (dns, expected) in cases {
            let error = Outer(io::Error::other(dns));
            assert_eq!(classify_error(&error), expected, "{error:?}");
        }
    }

    #[test]
    fn rustls_error_inside_io_error_is_tls() {
        let tls = rustls::Error::General("handshake".into());
        let error = Outer(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert_eq!(classify_error(&error), Outcome::TlsError);
    }

    #[test]
    fn refused_connection_is_connect_error() {
        let error = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify_error(&error), Outcome::ConnectError);
    }

    #[test]
    fn describe_joins_chain() {
        let error = Outer(io::Error::other("connection reset"));
        assert_eq!(describe_error(&error), "outer layer: connection reset");
    }
}
