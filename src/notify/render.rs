//! Renders a transition as the text people read: the email subject and body, and the content
//! of the OTLP log record that the OTLP receiver and the file sink share.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, SinglePart};
use opentelemetry::logs::Severity as LogSeverity;
use serde::Serialize;

use super::NotifyError;
use crate::alert::{Severity, Transition, TransitionKind};

/// Formats a wall-clock time as RFC 3339 in UTC with second precision: `2026-03-01T09:30:00Z`.
pub fn format_utc(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Returns how long the alert of a resolved transition fired, rounded down to whole seconds.
/// A firing transition returns zero.
pub fn fired_for(transition: &Transition) -> Duration {
    let elapsed = transition
        .at
        .duration_since(transition.firing_since)
        .unwrap_or_default();
    Duration::from_secs(elapsed.as_secs())
}

fn state_upper(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Firing => "FIRING",
        TransitionKind::Resolved => "RESOLVED",
    }
}

/// Builds the email subject: `[P1 FIRING] Auth down on me: 3 (threshold > 0 in 1m)`.
/// A resolved subject ends with how long the alert fired.
pub fn subject(transition: &Transition) -> String {
    let mut subject = format!(
        "[{} {}] {} on {}: {} (threshold {} in {})",
        transition.severity,
        state_upper(transition.kind),
        transition.rule,
        transition.probe,
        transition.value_text,
        transition.threshold_text,
        transition.window_text,
    );
    if transition.kind == TransitionKind::Resolved {
        let fired = humantime::format_duration(fired_for(transition));
        subject.push_str(&format!(", fired for {fired}"));
    }
    subject
}

/// Builds the plain-text email body: one labelled line per fact of the transition.
pub fn body(transition: &Transition) -> String {
    let mut lines = vec![
        transition.summary.clone(),
        String::new(),
        format!("Severity:   {}", transition.severity),
        format!("State:      {}", state_upper(transition.kind)),
        format!("Alert:      {}", transition.rule),
        format!("Probe:      {}", transition.probe),
        format!("Value:      {}", transition.value_text),
        format!("Threshold:  {}", transition.threshold_text),
        format!("Window:     {}", transition.window_text),
        format!("Expression: {}", transition.expr),
        format!("Runbook:    {}", transition.runbook),
        format!("Location:   {}", transition.location),
        format!("Time:       {}", format_utc(transition.at)),
    ];
    if transition.kind == TransitionKind::Resolved {
        lines.push(format!(
            "Fired at:   {}",
            format_utc(transition.firing_since)
        ));
        let fired = humantime::format_duration(fired_for(transition));
        lines.push(format!("Fired for:  {fired}"));
    }
    lines.push(format!("Alert id:   {}", transition.alert_id));
    lines.push(format!("Transition: {}", transition.sequence));
    lines.push(String::new());
    lines.push("Sent by loftwatch.".to_owned());
    lines.join("\n")
}

/// Returns the key that identifies a transition across retries and restarts:
/// `0d4975750d6a7031 3 firing` (alert id, sequence number, state). A receiver that gets one
/// key twice received a redelivery.
pub fn transition_key(transition: &Transition) -> String {
    format!(
        "{} {} {}",
        transition.alert_id,
        transition.sequence,
        transition.kind.as_str()
    )
}

/// The `X-Loftwatch-Transition` email header, whose value is [`transition_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionHeader(pub String);

impl Header for TransitionHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Loftwatch-Transition")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(TransitionHeader(text.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Returns the `Message-ID` of a transition's email: `<alert id.sequence.state.time@domain>`,
/// with the domain of the From address. Retries and restarts reuse it, so a mailbox can drop a
/// redelivery. The transition time in milliseconds keeps it unique when a wiped store starts
/// the sequence numbers over. Bytes of the alert id outside `[A-Za-z0-9_-]` are written as
/// `=XX`, so the id stays valid and distinct ids stay distinct.
pub fn message_id(transition: &Transition, domain: &str) -> String {
    let mut alert_id = String::new();
    for byte in transition.alert_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            alert_id.push(char::from(byte));
        } else {
            alert_id.push_str(&format!("={byte:02X}"));
        }
    }
    let millis = transition
        .at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!(
        "<{alert_id}.{}.{}.{millis}@{domain}>",
        transition.sequence,
        transition.kind.as_str()
    )
}

/// Renders the email for a transition as a MIME message: the subject and body above, an
/// `X-Loftwatch-Transition` header, a [`message_id`], `MIME-Version: 1.0` and one
/// `text/plain; charset=utf-8` part (lettre picks quoted-printable or base64 for non-ASCII
/// text and RFC 2047 encoded-words for the subject), dated at the transition time.
pub fn render_message(
    transition: &Transition,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, NotifyError> {
    let recipients: Mailboxes = to.iter().cloned().collect();
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(transition))
        .date(transition.at)
        .message_id(Some(message_id(transition, from.email.domain())))
        .header(TransitionHeader(transition_key(transition)));
    for mailbox in recipients {
        builder = builder.to(mailbox);
    }
    // `singlepart` adds `MIME-Version: 1.0`, which `body` leaves out.
    builder
        .singlepart(SinglePart::plain(body(transition)))
        .map_err(|source| NotifyError::RenderEmail {
            alert_id: transition.alert_id.clone(),
            source,
        })
}

/// The content of the OTLP log record sent for a transition, also written as JSON by the file
/// sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertLogRecord {
    /// Time of the transition, RFC 3339 in UTC.
    pub timestamp: String,
    /// OTLP severity text: `ERROR`, `WARN` or `INFO`.
    pub severity_text: &'static str,
    /// OTLP severity number: 17 (ERROR), 13 (WARN) or 9 (INFO).
    pub severity_number: i32,
    /// The transition's one-line summary.
    pub body: String,
    /// Attributes in the order they are sent.
    pub attributes: Vec<(&'static str, AttributeValue)>,
}

/// The value of one log record attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A string attribute.
    Text(String),
    /// A double attribute.
    Number(f64),
}

/// Returns the OTLP log severity of a transition: a firing P1 is ERROR, a firing P2 is WARN,
/// a firing P3 and every resolved transition are INFO.
pub fn log_severity(transition: &Transition) -> (LogSeverity, &'static str) {
    match (transition.kind, transition.severity) {
        (TransitionKind::Firing, Severity::P1) => (LogSeverity::Error, "ERROR"),
        (TransitionKind::Firing, Severity::P2) => (LogSeverity::Warn, "WARN"),
        _ => (LogSeverity::Info, "INFO"),
    }
}

impl AlertLogRecord {
    /// Builds the log record content of a transition. `alert.value` is left out when the rule
    /// had no data.
    pub fn from_transition(transition: &Transition) -> AlertLogRecord {
        let (severity, severity_text) = log_severity(transition);
        let text = |value: &str| AttributeValue::Text(value.to_owned());
        let mut attributes = vec![
            ("alert.id", text(&transition.alert_id)),
            ("alert.rule", text(&transition.rule)),
            ("alert.state", text(transition.kind.as_str())),
            ("alert.severity", text(transition.severity.as_str())),
            ("loftwatch.probe", text(&transition.probe)),
            ("loftwatch.location", text(&transition.location)),
        ];
        if let Some(value) = transition.value {
            attributes.push(("alert.value", AttributeValue::Number(value)));
        }
        attributes.push(("alert.threshold", text(&transition.threshold_text)));
        attributes.push(("alert.window", text(&transition.window_text)));
        attributes.push(("alert.runbook", text(&transition.runbook)));
        AlertLogRecord {
            timestamp: format_utc(transition.at),
            severity_text,
            severity_number: severity as i32,
            body: transition.summary.clone(),
            attributes,
        }
    }

    /// Serializes the record as a JSON object with the attributes as a nested object.
    pub fn to_json(&self) -> serde_json::Value {
        let attributes: serde_json::Map<String, serde_json::Value> = self
            .attributes
            .iter()
            .map(|(key, value)| {
                let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
                ((*key).to_owned(), value)
            })
            .collect();
        serde_json::json!({
            "timestamp": self.timestamp,
            "severity_text": self.severity_text,
            "severity_number": self.severity_number,
            "body": self.body,
            "attributes": attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    pub(crate) fn transition(kind: TransitionKind) -> Transition {
        let at = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let firing_since = match kind {
            TransitionKind::Firing => at,
            TransitionKind::Resolved => at - Duration::from_secs(252),
        };
        Transition {
            alert_id: "auth-down/me".to_owned(),
            sequence: 1,
            kind,
            rule: Arc::from("Auth down"),
            probe: Arc::from("me"),
            location: Arc::from("eu-west"),
            severity: Severity::P1,
            expr: Arc::from("count(status == 401) > 0"),
            value: Some(3.0),
            value_text: "3".to_owned(),
            threshold_text: "> 0".to_owned(),
            window_text: "1m".to_owned(),
            runbook: Arc::from("rotate token, check the OAuth app"),
            summary: "Auth down on me: 3 responses 401 in 1m".to_owned(),
            at,
            firing_since,
        }
    }

    #[test]
    fn subject_of_firing_transition() {
        let subject = subject(&transition(TransitionKind::Firing));
        assert_eq!(
            subject,
            "[P1 FIRING] Auth down on me: 3 (threshold > 0 in 1m)"
        );
    }

    #[test]
    fn subject_of_resolved_transition() {
        let subject = subject(&transition(TransitionKind::Resolved));
        assert_eq!(
            subject,
            "[P1 RESOLVED] Auth down on me: 3 (threshold > 0 in 1m), fired for 4m 12s"
        );
    }

    #[test]
    fn body_lists_every_fact() {
        let body = body(&transition(TransitionKind::Resolved));
        assert!(body.contains("Severity:   P1"), "{body}");
        assert!(body.contains("State:      RESOLVED"), "{body}");
        assert!(
            body.contains("Runbook:    rotate token, check the OAuth app"),
            "{body}"
        );
        assert!(body.contains("Location:   eu-west"), "{body}");
        assert!(body.contains("Time:       2026-05-28T20:26:40Z"), "{body}");
        assert!(body.contains("Fired for:  4m 12s"), "{body}");
    }

    #[test]
    fn log_severity_by_priority() {
        let mut firing = transition(TransitionKind::Firing);
        assert_eq!(log_severity(&firing).1, "ERROR");
        firing.severity = Severity::P2;
        assert_eq!(log_severity(&firing).1, "WARN");
        firing.severity = Severity::P3;
        assert_eq!(log_severity(&firing).1, "INFO");
        assert_eq!(
            log_severity(&transition(TransitionKind::Resolved)).1,
            "INFO"
        );
    }

    #[test]
    fn log_record_json_has_attributes() {
        let record = AlertLogRecord::from_transition(&transition(TransitionKind::Firing));
        let json = record.to_json();
        assert_eq!(json["severity_number"], 17);
        assert_eq!(json["attributes"]["alert.state"], "firing");
        assert_eq!(json["attributes"]["alert.value"], 3.0);
        assert_eq!(json["attributes"]["alert.threshold"], "> 0");
    }
}
