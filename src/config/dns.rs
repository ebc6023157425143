//! The `dns_server` and `dns_timeout` keys of `[salesloft]`.
//!
//! Name resolution must end before the probe's own deadline, or a stuck resolver shows as a
//! probe `timeout` instead of `dns_timeout`. So an explicit `dns_timeout` must be below every
//! probe's `timeout`, and the default shrinks below the shortest one.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::raw::RawSalesloft;
use super::types::ProbeSpec;
use super::validate::Validator;
use crate::salesloft::{DEFAULT_DNS_TIMEOUT, DnsSettings};

/// Port of a `dns_server` given as an address alone.
const DNS_PORT: u16 = 53;

/// The DNS keys as read, before the check against the probes' timeouts.
pub(super) struct DnsKeys {
    settings: DnsSettings,
    /// Position of an explicit `dns_timeout`; `None` when the default is used.
    timeout_span: Option<Range<usize>>,
}

impl Validator<'_> {
    /// Reads `dns_server` and `dns_timeout`.
    pub(super) fn dns(&mut self, raw: Option<&RawSalesloft>) -> DnsKeys {
        let mut keys = DnsKeys {
            settings: DnsSettings::default(),
            timeout_span: None,
        };
        let Some(raw) = raw else {
            return keys;
        };
        if let Some(value) = &raw.dns_server {
            match parse_server(value.get_ref()) {
                Some(server) => keys.settings.server = Some(server),
                None => {
                    let message = format!(
                        "invalid dns_server {:?}: use an IP address with an optional port, such \
                         as \"127.0.0.1:5353\" or \"::1\" (port 53); a host name cannot be used",
                        value.get_ref()
                    );
                    self.error(value.span(), "salesloft.dns_server", message);
                }
            }
        }
        if let Some(value) = &raw.dns_timeout {
            keys.settings.timeout =
                self.positive(Some(value), "salesloft.dns_timeout", DEFAULT_DNS_TIMEOUT);
            keys.timeout_span = Some(value.span());
        }
        keys
    }

    /// Checks an explicit `dns_timeout` against every probe's timeout. Without one, the
    /// default of 2 s is lowered to half the shortest probe timeout when that is shorter.
    pub(super) fn dns_within_probe_timeouts(
        &mut self,
        keys: DnsKeys,
        probes: &[ProbeSpec],
    ) -> DnsSettings {
        let mut settings = keys.settings;
        let Some(shortest) = probes.iter().min_by_key(|probe| probe.timeout) else {
            return settings;
        };
        match keys.timeout_span {
            Some(span) if settings.timeout >= shortest.timeout => {
                let message = format!(
                    "dns_timeout {:?} is not below the timeout {:?} of probe {:?}; lower \
                     salesloft.dns_timeout or raise the probe's timeout",
                    settings.timeout, shortest.timeout, shortest.name
                );
                self.error(span, "salesloft.dns_timeout", message);
            }
            Some(_) => {}
            None => settings.timeout = settings.timeout.min(shortest.timeout / 2),
        }
        settings
    }
}

/// Parses `ip:port`, `[ipv6]:port` or an address alone (port 53).
fn parse_server(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    let server = text
        .parse::<SocketAddr>()
        .ok()
        .or_else(|| Some(SocketAddr::new(text.parse::<IpAddr>().ok()?, DNS_PORT)))?;
    (server.port() != 0).then_some(server)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::parse;

    fn config_with(salesloft: &str, probe_timeout: &str) -> String {
        format!(
            "[salesloft]\n{salesloft}\n\n[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n\
             timeout = \"{probe_timeout}\"\n"
        )
    }

    #[test]
    fn server_forms() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server(" 127.0.0.1 "),
            Some("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("dns.example:53"), None);
        assert_eq!(parse_server("127.0.0.1:0"), None);
        assert_eq!(parse_server(""), None);
    }

    #[test]
    fn defaults_use_system_resolver() {
        let config = parse(&config_with("", "10s"), "alerts.toml").unwrap();
        assert_eq!(config.salesloft.dns, DnsSettings::default());
    }

    #[test]
    fn keys_are_read() {
        let text = config_with(
            "dns_server = \"127.0.0.1:5353\"\ndns_timeout = \"1s\"",
            "5s",
        );
        let config = parse(&text, "alerts.toml").unwrap();
        assert_eq!(
            config.salesloft.dns.server,
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(config.salesloft.dns.timeout, Duration::from_secs(1));
    }

    #[test]
    fn host_name_server_is_rejected() {
        let text = config_with("dns_server = \"dns.example\"", "10s");
        let error = parse(&text, "alerts.toml").unwrap_err().to_string();
        assert!(error.contains("salesloft.dns_server"), "{error}");
        assert!(error.contains("dns.example"), "{error}");
    }

    #[test]
    fn timeout_at_probe_timeout_is_rejected() {
        let text = config_with("dns_timeout = \"5s\"", "5s");
        let error = parse(&text, "alerts.toml").unwrap_err().to_string();
        assert!(error.contains("salesloft.dns_timeout"), "{error}");
        assert!(error.contains("\"me\""), "{error}");
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let text = config_with("dns_timeout = \"0s\"", "5s");
        let error = parse(&text, "alerts.toml").unwrap_err().to_string();
        assert!(error.contains("salesloft.dns_timeout"), "{error}");
    }

    #[test]
    fn default_timeout_stays_below_short_probe() {
        let config = parse(&config_with("", "1s"), "alerts.toml").unwrap();
        assert_eq!(config.salesloft.dns.timeout, Duration::from_millis(500));
    }
}
