//! The email receiver: sends each transition as one message over SMTP with lettre.

use std::net::IpAddr;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::heartbeat::Heartbeat;
use super::{DeliveryError, FailureReason, NotifyError, read_ca_file, render};
use crate::alert::Transition;
use crate::config::{EmailConfig, SmtpTls};
use crate::probe::{Outcome, classify_error};

/// Sends transitions to the configured recipients through one SMTP relay.
pub struct EmailReceiver {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: std::time::Duration,
    host: String,
    port: u16,
}

/// Returns whether `host` is `localhost` or a loopback address (127.0.0.0/8 or ::1).
/// Brackets around an IPv6 literal are accepted.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    literal
        .parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

/// Parses one configured address, naming the key it came from in the error.
pub(crate) fn parse_mailbox(key: &'static str, address: &str) -> Result<Mailbox, NotifyError> {
    address
        .parse()
        .map_err(|source| NotifyError::InvalidAddress {
            key,
            address: address.to_owned(),
            source,
        })
}

/// Builds the TLS settings of the relay connection: the platform verifier, plus the roots of
/// `ca_file` when it is set. The relay's certificate must be valid for `host`.
fn tls_parameters(config: &EmailConfig) -> Result<TlsParameters, NotifyError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(path) = &config.ca_file {
        for root in read_ca_file(path)? {
            let certificate = Certificate::from_der(root.to_vec()).map_err(|source| {
                NotifyError::SmtpTransport {
                    host: config.host.clone(),
                    source,
                }
            })?;
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|source| NotifyError::SmtpTransport {
            host: config.host.clone(),
            source,
        })
}

impl EmailReceiver {
    /// Builds the SMTP transport. The password is read from its [`crate::config::SecretSource`]
    /// through `secrets`, and the roots of `ca_file` are read and trusted besides the platform's.
    /// Plain SMTP (`tls = none`) is rejected unless the host is loopback, because it would send
    /// mail and the password unencrypted.
    pub fn new(
        config: &EmailConfig,
        secrets: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EmailReceiver, NotifyError> {
        let from = parse_mailbox("email.from", &config.from)?;
        let to = config
            .to
            .iter()
            .map(|address| parse_mailbox("email.to", address))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(NotifyError::NoRecipients);
        }

        let tls = match config.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters(config)?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(config)?),
            SmtpTls::None => {
                if !is_loopback_host(&config.host) {
                    return Err(NotifyError::PlainSmtpNotLoopback {
                        host: config.host.clone(),
                    });
                }
                Tls::None
            }
        };
        // `builder_dangerous` only means "no TLS yet": the TLS mode is set right after, as
        // lettre's own `relay` and `starttls_relay` do, so that `ca_file` can be applied.
        let builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).tls(tls);
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(username), Some(password)) = (&config.username, &config.password) {
            let password = password.load("email.password", secrets)?;
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }

        Ok(EmailReceiver {
            transport: builder.build(),
            from,
            to,
            timeout: config.timeout,
            host: config.host.clone(),
            port: config.port,
        })
    }

    /// Renders the transition and sends it, within the configured timeout.
    pub async fn deliver(&self, transition: &Transition) -> Result<(), DeliveryError> {
        let message = render::render_message(transition, &self.from, &self.to)
            .map_err(|error| DeliveryError::permanent(error.to_string()))?;
        self.send(message).await
    }

    /// Sends the heartbeat email, within the configured timeout.
    pub async fn deliver_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), DeliveryError> {
        let message = heartbeat
            .render_email(&self.from, &self.to)
            .map_err(|error| DeliveryError::permanent(error.to_string()))?;
        self.send(message).await
    }

    async fn send(&self, message: lettre::Message) -> Result<(), DeliveryError> {
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match sent {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(error)) => {
                let mut text = format!("smtp to {}:{}: {error}", self.host, self.port);
                // A rejected certificate comes back as a connection error with the rustls error
                // inside, so the source chain is searched as well.
                let tls_failed =
                    error.is_tls() || matches!(classify_error(&error), Outcome::TlsError);
                if tls_failed {
                    text.push_str("; check email.tls, email.ca_file and the relay's certificate");
                }
                let reason = smtp_failure_reason(&error, tls_failed);
                let failure = if error.is_permanent() {
                    DeliveryError::permanent(text)
                } else {
                    DeliveryError::transient(text)
                };
                Err(failure.with_reason(reason))
            }
            Err(_elapsed) => Err(DeliveryError::transient(format!(
                "smtp to {}:{} timed out after {:?}",
                self.host, self.port, self.timeout
            ))
            .with_reason(FailureReason::Timeout)),
        }
    }
}

/// Classifies a failed SMTP session. SMTP 530 and 535 reject the credentials.
fn smtp_failure_reason(error: &lettre::transport::smtp::Error, tls_failed: bool) -> FailureReason {
    let auth_codes = ["530", "534", "535"];
    if tls_failed {
        FailureReason::Tls
    } else if error.is_timeout() {
        FailureReason::Timeout
    } else if error
        .status()
        .is_some_and(|code| auth_codes.contains(&code.to_string().as_str()))
    {
        FailureReason::Auth
    } else if error.status().is_some() {
        FailureReason::Other
    } else {
        FailureReason::Connect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.8.9.10"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("[::1]"));
    }

    #[test]
    fn non_loopback_hosts() {
        assert!(!is_loopback_host("smtp.example.com"));
        assert!(!is_loopback_host("10.0.0.1"));
        assert!(!is_loopback_host("0.0.0.0"));
        assert!(!is_loopback_host("::"));
        assert!(!is_loopback_host("localhost.example.com"));
        assert!(!is_loopback_host("128.0.0.1"));
    }
}
