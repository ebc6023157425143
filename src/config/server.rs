//! Validation of the `[server]` table: where `/health` and `/metrics` listen.

use std::net::{Ipv4Addr, SocketAddr};

use super::raw::RawServer;
use super::types::ServerConfig;
use super::validate::Validator;

/// Default listen address: loopback only, so nothing is exposed unless configured.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9898);

impl Validator<'_> {
    pub(super) fn server(&mut self, raw: Option<RawServer>) -> ServerConfig {
        let Some(raw) = raw else {
            return ServerConfig {
                listen: DEFAULT_LISTEN,
                health_freshness: None,
                token: None,
            };
        };
        let listen = match &raw.listen {
            Some(value) => match value.get_ref().trim().parse::<SocketAddr>() {
                Ok(address) => address,
                Err(_) => {
                    let message = format!(
                        "invalid listen address {:?}: write an IP address and port, such as \
                         127.0.0.1:9898 or [::1]:9898",
                        value.get_ref()
                    );
                    self.error(value.span(), "server.listen", message);
                    DEFAULT_LISTEN
                }
            },
            None => DEFAULT_LISTEN,
        };
        let health_freshness = raw.health_freshness.as_ref().and_then(|value| {
            let duration = self.duration(value, "server.health_freshness")?;
            if duration.is_zero() {
                let message = format!(
                    "invalid duration {:?}: it must be above zero",
                    value.get_ref()
                );
                self.error(value.span(), "server.health_freshness", message);
                return None;
            }
            Some(duration)
        });
        let token = raw
            .token
            .as_ref()
            .map(|value| self.secret(value, "server.token"));
        ServerConfig {
            listen,
            health_freshness,
            token,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{DEFAULT_LISTEN, parse};

    const PROBE: &str = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";

    #[test]
    fn server_defaults_to_loopback() {
        let config = parse(PROBE, "test.toml").expect("valid configuration");
        assert_eq!(config.server.listen, DEFAULT_LISTEN);
        assert!(config.server.listen.ip().is_loopback());
        assert_eq!(config.server.health_freshness, None);
        assert!(config.server.token.is_none());
    }

    #[test]
    fn server_table_is_read() {
        let text = format!(
            "{PROBE}[server]\nlisten = \"[::1]:9000\"\nhealth_freshness = \"45s\"\n\
             token = {{ env = \"LOFTWATCH_TOKEN\" }}\n"
        );
        let config = parse(&text, "test.toml").expect("valid configuration");
        assert_eq!(config.server.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(
            config.server.health_freshness,
            Some(Duration::from_secs(45))
        );
        let token = config.server.token.expect("token source");
        assert_eq!(token.env.as_deref(), Some("LOFTWATCH_TOKEN"));
    }

    #[test]
    fn server_rejects_bad_values() {
        let text = format!("{PROBE}[server]\nlisten = \"localhost\"\nhealth_freshness = \"0s\"\n");
        let error = parse(&text, "test.toml").expect_err("invalid configuration");
        let keys: Vec<&str> = error
            .issues
            .iter()
            .map(|issue| issue.key.as_str())
            .collect();
        assert!(keys.contains(&"server.listen"), "{keys:?}");
        assert!(keys.contains(&"server.health_freshness"), "{keys:?}");
    }
}
