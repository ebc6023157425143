//! Notifications: delivers alert transitions to the configured receivers.
//!
//! [`Notifier::send`] only enqueues. The receivers are email over SMTP, OTLP log records,
//! Alertmanager's v2 API, a signed webhook in Alertmanager's webhook format, and the demo's file
//! sink. Each runs in its own tokio task with its own queue and retries with
//! exponential backoff, so a dead server behind one receiver never stalls the caller or the
//! others.

mod alertmanager;
mod ca_file;
mod email;
mod file_sink;
mod heartbeat;
mod http;
mod notifier;
mod otlp;
mod render;
mod retry;
mod stats;
mod webhook;

use std::path::PathBuf;

pub use alertmanager::{AlertmanagerReceiver, alert_json, heartbeat_alert_json};
pub use ca_file::{CaFileError, read_ca_file};
pub use email::{EmailReceiver, is_loopback_host};
pub use file_sink::{FileSink, file_name_part};
pub use heartbeat::{HEARTBEAT_NAME, Heartbeat};
pub use notifier::{Notifier, NotifierOptions, ReceiverKind};
pub use otlp::OtlpLogReceiver;
pub use render::{
    AlertLogRecord, AttributeValue, body, fired_for, format_utc, log_severity, message_id,
    render_message, subject, transition_key,
};
pub use retry::Backoff;
pub use stats::{FailureReason, LatencyCounts, NOTIFICATION_LATENCY_BUCKETS, ReceiverCounts};
pub use webhook::{SIGNATURE_HEADER, WebhookReceiver, sign, webhook_payload};

use crate::config::SecretError;

/// A notifier or receiver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "email.tls = \"none\" sends mail and the password unencrypted, so it is allowed only for \
         a loopback host (127.0.0.0/8, ::1, localhost), but email.host is {host:?}: set email.tls \
         to \"starttls\" or \"implicit\""
    )]
    PlainSmtpNotLoopback { host: String },
    #[error("invalid {key} address {address:?}: {source}")]
    InvalidAddress {
        key: &'static str,
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("email.to is empty: list at least one recipient")]
    NoRecipients,
    #[error("cannot set up smtp to {host:?}: {source}")]
    SmtpTransport {
        host: String,
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot use email.ca_file: {0}")]
    CaFile(#[from] CaFileError),
    #[error("cannot read the smtp password: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot set up the otlp exporter for {endpoint:?}: {source}; check otlp.endpoint")]
    OtlpExporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot start the otlp log export thread: {source}")]
    OtlpThread { source: std::io::Error },
    #[error("cannot prepare the notification folder {}: {source}", folder.display())]
    FileSink {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {key}: {source}")]
    ReceiverSecret {
        key: &'static str,
        source: SecretError,
    },
    #[error("cannot set up the http client of {receiver}: {source}")]
    HttpClient {
        receiver: &'static str,
        source: reqwest::Error,
    },
    #[error("cannot build the email for alert {alert_id:?}: {source}")]
    RenderEmail {
        alert_id: String,
        source: lettre::error::Error,
    },
}

/// One failed delivery attempt, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// Description of the failure, with no secret in it.
    pub message: String,
    /// True when the receiver rejected the notification for good (an SMTP 5xx reply, an
    /// HTTP 400, an email that cannot be built), so retrying is pointless.
    pub permanent: bool,
    /// Class of the failure, the `reason` label of the receiver error metrics.
    pub reason: FailureReason,
}

impl DeliveryError {
    /// Builds an error that a later attempt may not hit, with reason `other`.
    pub fn transient(message: String) -> DeliveryError {
        DeliveryError {
            message,
            permanent: false,
            reason: FailureReason::Other,
        }
    }

    /// Builds an error that every attempt would hit, with reason `other`.
    pub fn permanent(message: String) -> DeliveryError {
        DeliveryError {
            message,
            permanent: true,
            reason: FailureReason::Other,
        }
    }

    /// Sets the class of the failure.
    pub fn with_reason(mut self, reason: FailureReason) -> DeliveryError {
        self.reason = reason;
        self
    }
}
