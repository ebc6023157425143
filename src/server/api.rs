//! The read-only JSON API behind the dashboard, under `/api/v1/`:
//!
//! - `status`: the latest result of each probe and how many alerts fire;
//! - `history?probe=NAME&range=1h|24h`: per-minute rollups of one probe, stored and current;
//! - `alerts`: firing and pending alerts with their runbooks;
//! - `notifications`: the most recent transitions and their delivery to each receiver.
//!
//! These endpoints need no token: they change nothing and show no secret. Runbooks and
//! summaries pass through [`redact_credentials`] so that a URL with a password in it is never
//! shown.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use super::AppState;
use super::history::{MINUTE_MS, epoch_millis, from_epoch_millis, merge_rollups, minute_start};
use crate::alert::AlertState;
use crate::store::MinuteRollup;

/// Number of transitions `notifications` returns.
pub const RECENT_NOTIFICATIONS: usize = 50;

pub(super) async fn status(State(app): State<AppState>) -> Response {
    let probes = app.state.history.latest();
    let alerts = app.state.alert_snapshot();
    let firing = alerts
        .iter()
        .filter(|alert| alert.state == AlertState::Firing)
        .count();
    let body = json!({
        "generated_ms": epoch_millis(SystemTime::now()),
        "probes": probes,
        "alerts_firing": firing,
    });
    Json(body).into_response()
}

/// Query of `history`.
#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    probe: Option<String>,
    range: Option<String>,
}

/// Parses a history range: `1h` or `24h`.
pub fn parse_range(text: &str) -> Option<Duration> {
    match text {
        "1h" => Some(Duration::from_secs(3600)),
        "24h" => Some(Duration::from_secs(24 * 3600)),
        _ => None,
    }
}

pub(super) async fn history(
    State(app): State<AppState>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let Some(probe) = query.probe.filter(|probe| !probe.is_empty()) else {
        return bad_request("missing query parameter probe: add ?probe=NAME".to_owned());
    };
    let range_text = query.range.unwrap_or_else(|| "1h".to_owned());
    let Some(range) = parse_range(&range_text) else {
        return bad_request(format!(
            "invalid range {range_text:?}: use range=1h or range=24h"
        ));
    };
    let now_ms = epoch_millis(SystemTime::now());
    let range_ms = i64::try_from(range.as_millis()).unwrap_or(i64::MAX);
    // The current minute is the last point, so the range starts that many minutes earlier.
    let from_ms = minute_start(now_ms) - range_ms + MINUTE_MS;
    let stored = match load_stored(&app, &probe, from_ms).await {
        Ok(stored) => stored,
        Err(response) => return response,
    };
    let pending = app.state.history.pending(&probe, from_ms);
    let points = merge_rollups(stored, pending);
    let body = json!({
        "probe": probe,
        "range": range_text,
        "step_ms": MINUTE_MS,
        "from_ms": from_ms,
        "to_ms": minute_start(now_ms) + MINUTE_MS,
        "points": points,
    });
    Json(body).into_response()
}

/// Loads the stored rollups of `probe` from minute `from_ms` on; without a store there are
/// none.
async fn load_stored(
    app: &AppState,
    probe: &str,
    from_ms: i64,
) -> Result<Vec<MinuteRollup>, Response> {
    let Some(store) = app.state.store.get().cloned() else {
        return Ok(Vec::new());
    };
    let name = probe.to_owned();
    let since = from_epoch_millis(from_ms);
    let loaded = tokio::task::spawn_blocking(move || store.load_rollups(&name, since)).await;
    match loaded {
        Ok(Ok(rollups)) => Ok(rollups),
        Ok(Err(error)) => {
            warn!(%error, probe, "cannot read the probe history");
            Err(server_error(format!(
                "cannot read the probe history: {error}"
            )))
        }
        Err(error) => {
            warn!(%error, probe, "probe history read failed");
            Err(server_error(format!("probe history read failed: {error}")))
        }
    }
}

pub(super) async fn alerts(State(app): State<AppState>) -> Response {
    let runbooks = app.state.runbooks();
    let alerts: Vec<serde_json::Value> = app
        .state
        .alert_snapshot()
        .into_iter()
        .filter(|alert| alert.state != AlertState::Inactive)
        .map(|alert| {
            let runbook = runbooks
                .get(&*alert.rule)
                .map(|runbook| redact_credentials(runbook));
            json!({
                "alert_id": alert.alert_id,
                "rule": &*alert.rule,
                "probe": &*alert.probe,
                "severity": alert.severity.as_str(),
                "state": alert.state.as_str(),
                "value": alert.value_text,
                "since_ms": epoch_millis(alert.since),
                "runbook": runbook,
            })
        })
        .collect();
    Json(json!({ "alerts": alerts })).into_response()
}

pub(super) async fn notifications(State(app): State<AppState>) -> Response {
    let Some(store) = app.state.store.get().cloned() else {
        return Json(json!({ "notifications": [] })).into_response();
    };
    let loaded =
        tokio::task::spawn_blocking(move || store.recent_notifications(RECENT_NOTIFICATIONS)).await;
    let records = match loaded {
        Ok(Ok(records)) => records,
        Ok(Err(error)) => {
            warn!(%error, "cannot read the notification log");
            return server_error(format!("cannot read the notification log: {error}"));
        }
        Err(error) => {
            warn!(%error, "notification log read failed");
            return server_error(format!("notification log read failed: {error}"));
        }
    };
    let notifications: Vec<serde_json::Value> = records
        .into_iter()
        .map(|record| {
            let transition = record.transition;
            json!({
                "id": record.id,
                "alert_id": transition.alert_id,
                "sequence": transition.sequence,
                "kind": transition.kind.as_str(),
                "rule": &*transition.rule,
                "probe": &*transition.probe,
                "severity": transition.severity.as_str(),
                "value": transition.value_text,
                "summary": redact_credentials(&transition.summary),
                "at_ms": epoch_millis(transition.at),
                "deliveries": record.deliveries,
            })
        })
        .collect();
    Json(json!({ "notifications": notifications })).into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn server_error(message: String) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": message })),
    )
        .into_response()
}

/// Removes the user name and password from every `http://` and `https://` URL in `text`, so
/// `https://user:secret@wiki.example/runbook` becomes `https://wiki.example/runbook`.
pub fn redact_credentials(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_scheme(rest) {
        let (before, url) = rest.split_at(start);
        output.push_str(before);
        let scheme_end = url.find("://").map_or(0, |index| index + 3);
        output.push_str(&url[..scheme_end]);
        let after_scheme = &url[scheme_end..];
        let authority_end = after_scheme
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(after_scheme.len());
        let authority = &after_scheme[..authority_end];
        match authority.rfind('@') {
            Some(at) => output.push_str(&authority[at + 1..]),
            None => output.push_str(authority),
        }
        rest = &after_scheme[authority_end..];
    }
    output.push_str(rest);
    output
}

fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_user_and_password() {
        assert_eq!(
            redact_credentials("see https://ops:hunter2@wiki.example/runbook?x=1 now"),
            "see https://wiki.example/runbook?x=1 now"
        );
        assert_eq!(
            redact_credentials("http://token@a.example and HTTPS://b:c@b.example"),
            "http://a.example and HTTPS://b.example"
        );
    }

    #[test]
    fn redact_keeps_plain_text() {
        assert_eq!(redact_credentials("Rotate the token."), "Rotate the token.");
        assert_eq!(
            redact_credentials("https://wiki.example/a@b"),
            "https://wiki.example/a@b"
        );
    }

    #[test]
    fn range_accepts_hour_and_day() {
        assert_eq!(parse_range("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_range("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_range("7d"), None);
    }
}
