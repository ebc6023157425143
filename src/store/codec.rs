//! Conversions between loftwatch values and their stored form: wall-clock times as
//! milliseconds since the Unix epoch, and transitions as JSON.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alert::{AlertState, Transition, TransitionKind};

/// Converts a wall-clock time to milliseconds since the Unix epoch, negative before it.
pub(super) fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Converts milliseconds since the Unix epoch back to a wall-clock time.
pub(super) fn from_millis(millis: i64) -> SystemTime {
    let offset = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

/// Parses an alert state as [`AlertState::as_str`] writes it.
pub(super) fn parse_state(text: &str) -> Option<AlertState> {
    match text {
        "inactive" => Some(AlertState::Inactive),
        "pending" => Some(AlertState::Pending),
        "firing" => Some(AlertState::Firing),
        _ => None,
    }
}

/// A transition as stored in `transition_log.record`.
#[derive(Debug, Serialize, Deserialize)]
struct TransitionRecord {
    alert_id: String,
    sequence: u64,
    kind: String,
    rule: String,
    probe: String,
    location: String,
    severity: String,
    expr: String,
    value: Option<f64>,
    value_text: String,
    threshold_text: String,
    window_text: String,
    runbook: String,
    summary: String,
    at_ms: i64,
    firing_since_ms: i64,
}

/// Serializes a transition to the JSON stored in the transition log.
pub(super) fn encode_transition(transition: &Transition) -> String {
    let record = TransitionRecord {
        alert_id: transition.alert_id.clone(),
        sequence: transition.sequence,
        kind: transition.kind.as_str().to_owned(),
        rule: transition.rule.to_string(),
        probe: transition.probe.to_string(),
        location: transition.location.to_string(),
        severity: transition.severity.as_str().to_owned(),
        expr: transition.expr.to_string(),
        value: transition.value.filter(|value| value.is_finite()),
        value_text: transition.value_text.clone(),
        threshold_text: transition.threshold_text.clone(),
        window_text: transition.window_text.clone(),
        runbook: transition.runbook.to_string(),
        summary: transition.summary.clone(),
        at_ms: to_millis(transition.at),
        firing_since_ms: to_millis(transition.firing_since),
    };
    // Serializing plain strings and numbers cannot fail; non-finite values were dropped above.
    serde_json::to_string(&record).unwrap_or_default()
}

/// Parses a transition from the JSON stored in the transition log.
pub(super) fn decode_transition(text: &str) -> Result<Transition, String> {
    let record: TransitionRecord = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let kind = match record.kind.as_str() {
        "firing" => TransitionKind::Firing,
        "resolved" => TransitionKind::Resolved,
        other => return Err(format!("invalid transition kind {other:?}")),
    };
    Ok(Transition {
        alert_id: record.alert_id,
        sequence: record.sequence,
        kind,
        rule: Arc::from(record.rule),
        probe: Arc::from(record.probe),
        location: Arc::from(record.location),
        severity: record.severity.parse()?,
        expr: Arc::from(record.expr),
        value: record.value,
        value_text: record.value_text,
        threshold_text: record.threshold_text,
        window_text: record.window_text,
        runbook: Arc::from(record.runbook),
        summary: record.summary,
        at: from_millis(record.at_ms),
        firing_since: from_millis(record.firing_since_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;

    #[test]
    fn millis_round_trip() {
        let after = UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        assert_eq!(from_millis(to_millis(after)), after);
        let before = UNIX_EPOCH - Duration::from_millis(5_000);
        assert_eq!(to_millis(before), -5_000);
        assert_eq!(from_millis(-5_000), before);
    }

    #[test]
    fn transition_round_trip() {
        let at = UNIX_EPOCH + Duration::from_millis(1_780_000_000_250);
        let transition = Transition {
            alert_id: "auth-down/me".to_owned(),
            sequence: 7,
            kind: TransitionKind::Resolved,
            rule: Arc::from("Auth down"),
            probe: Arc::from("me"),
            location: Arc::from("eu-west"),
            severity: Severity::P2,
            expr: Arc::from("count(status == 401) > 0"),
            value: Some(0.0),
            value_text: "0".to_owned(),
            threshold_text: "> 0".to_owned(),
            window_text: "1m".to_owned(),
            runbook: Arc::from("rotate the token"),
            summary: "0 responses matching status == 401 in 1m on probe me".to_owned(),
            at,
            firing_since: at - Duration::from_secs(90),
        };
        let decoded = decode_transition(&encode_transition(&transition)).unwrap();
        assert_eq!(decoded, transition);
    }

    #[test]
    fn transition_with_unknown_kind_rejected() {
        let text = encode_transition_kind("exploded");
        let error = decode_transition(&text).unwrap_err();
        assert!(error.contains("exploded"), "{error}");
    }

    fn encode_transition_kind(kind: &str) -> String {
        let transition = Transition {
            alert_id: "a/b".to_owned(),
            sequence: 1,
            kind: TransitionKind::Firing,
            rule: Arc::from("a"),
            probe: Arc::from("b"),
            location: Arc::from(""),
            severity: Severity::P1,
            expr: Arc::from("max > 1"),
            value: None,
            value_text: "no data".to_owned(),
            threshold_text: "> 1".to_owned(),
            window_text: "1m".to_owned(),
            runbook: Arc::from(""),
            summary: String::new(),
            at: UNIX_EPOCH,
            firing_since: UNIX_EPOCH,
        };
        encode_transition(&transition).replace("\"firing\"", &format!("{kind:?}"))
    }
}
