//! The closed set of probe outcomes, exported as the `error.type` attribute.

use std::fmt;

/// Result class of one probe attempt. The set is closed: dashboards, rules and the `error.type`
/// attribute of exported metrics only ever see these values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The response had an expected status and passed every assertion.
    Ok,
    /// The response status was not expected; the class is the status divided by 100 (1 to 5).
    HttpStatus(u8),
    /// The total timeout (connect, headers and body) ran out.
    Timeout,
    /// The TCP connection was refused, reset or closed before a response.
    ConnectError,
    /// The host name did not resolve for a reason other than the three below: the DNS server
    /// rejected the query or sent a malformed answer, or the name has no address record.
    DnsError,
    /// The DNS server sent no answer within `salesloft.dns_timeout`, or the system resolver
    /// reported a temporary failure (`EAI_AGAIN`).
    DnsTimeout,
    /// The DNS server answered SERVFAIL: it could not resolve the name, usually because the
    /// zone's own servers failed.
    DnsServfail,
    /// The DNS server answered NXDOMAIN, or the system resolver reported that the name is not
    /// known (`EAI_NONAME`).
    DnsNxdomain,
    /// The TLS handshake failed.
    TlsError,
    /// The response body passed the probe's size cap.
    BodyTooLarge,
    /// The response body was not valid JSON.
    InvalidBody,
    /// The response was well formed but an assertion on its body failed.
    AssertionFailed,
}

impl Outcome {
    /// Every outcome, in a stable order, for exporters that pre-register series.
    pub const ALL: [Outcome; 16] = [
        Outcome::Ok,
        Outcome::HttpStatus(1),
        Outcome::HttpStatus(2),
        Outcome::HttpStatus(3),
        Outcome::HttpStatus(4),
        Outcome::HttpStatus(5),
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::DnsError,
        Outcome::DnsTimeout,
        Outcome::DnsServfail,
        Outcome::DnsNxdomain,
        Outcome::TlsError,
        Outcome::BodyTooLarge,
        Outcome::InvalidBody,
        Outcome::AssertionFailed,
    ];

    /// Returns the outcome for an unexpected HTTP status code.
    pub fn from_status(status: u16) -> Outcome {
        Outcome::HttpStatus((status / 100).clamp(1, 5) as u8)
    }

    /// Returns the `error.type` value: `ok`, `http_4xx`, `timeout`, `connect_error`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpStatus(1) => "http_1xx",
            Outcome::HttpStatus(2) => "http_2xx",
            Outcome::HttpStatus(3) => "http_3xx",
            Outcome::HttpStatus(4) => "http_4xx",
            Outcome::HttpStatus(_) => "http_5xx",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::DnsError => "dns_error",
            Outcome::DnsTimeout => "dns_timeout",
            Outcome::DnsServfail => "dns_servfail",
            Outcome::DnsNxdomain => "dns_nxdomain",
            Outcome::TlsError => "tls_error",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::InvalidBody => "invalid_body",
            Outcome::AssertionFailed => "assertion_failed",
        }
    }

    /// Parses an `error.type` value as written in rule expressions.
    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// Returns whether a complete HTTP response was read, so the latency is a real sample.
    /// A timeout also records its elapsed time; connection, DNS and TLS failures do not.
    pub fn has_latency_sample(self) -> bool {
        !(self.is_dns_failure() || matches!(self, Outcome::ConnectError | Outcome::TlsError))
    }

    /// Returns whether the host name failed to resolve, so no request reached the API.
    pub fn is_dns_failure(self) -> bool {
        matches!(
            self,
            Outcome::DnsError | Outcome::DnsTimeout | Outcome::DnsServfail | Outcome::DnsNxdomain
        )
    }

    /// Returns the index of this outcome in [`Outcome::ALL`].
    pub fn index(self) -> usize {
        Outcome::ALL
            .iter()
            .position(|outcome| *outcome == self)
            .expect("every outcome is listed in Outcome::ALL")
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_outcomes_have_their_own_names() {
        assert_eq!(Outcome::DnsError.as_str(), "dns_error");
        assert_eq!(Outcome::DnsTimeout.as_str(), "dns_timeout");
        assert_eq!(Outcome::DnsServfail.as_str(), "dns_servfail");
        assert_eq!(Outcome::DnsNxdomain.as_str(), "dns_nxdomain");
    }

    #[test]
    fn parse_reads_every_name() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome), "{outcome}");
        }
        assert_eq!(Outcome::parse("dns_refused"), None);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = Outcome::ALL
            .iter()
            .map(|outcome| outcome.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
    }

    #[test]
    fn dns_failures_have_no_latency_sample() {
        for outcome in Outcome::ALL {
            let dns = outcome.as_str().starts_with("dns_");
            assert_eq!(outcome.is_dns_failure(), dns, "{outcome}");
            if dns {
                assert!(!outcome.has_latency_sample(), "{outcome}");
            }
        }
        assert!(Outcome::Ok.has_latency_sample());
        assert!(Outcome::Timeout.has_latency_sample());
    }
}
