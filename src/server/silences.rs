//! The silence endpoints, in the shape of Alertmanager's v2 API where it fits:
//!
//! - `GET /api/v1/silences`: every silence, expired ones included, with its state;
//! - `POST /api/v1/silences`: creates a silence from `matchers`, `startsAt` (default now),
//!   `endsAt`, `createdBy` and `comment`, and returns `{"silenceID": "..."}`;
//! - `DELETE /api/v1/silences/{id}`: ends a silence now.
//!
//! Matchers are texts such as `probe = "me"` and times are RFC 3339. POST and DELETE follow the
//! bearer token rules of the other mutating endpoints.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;
use tracing::{error, info};

use super::{AppState, authorize};
use crate::route::{Matcher, Silence, SilenceBook};

/// Body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewSilence {
    matchers: Vec<String>,
    starts_at: Option<String>,
    ends_at: String,
    created_by: String,
    comment: String,
}

/// Returns the JSON form of a silence at `now`.
fn silence_json(silence: &Silence, now: SystemTime) -> serde_json::Value {
    let matchers: Vec<String> = silence.matchers.iter().map(ToString::to_string).collect();
    json!({
        "id": silence.id,
        "matchers": matchers,
        "startsAt": rfc3339(silence.starts_at),
        "endsAt": rfc3339(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "status": { "state": silence.state(now).as_str() },
    })
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn book(app: &AppState) -> Option<&SilenceBook> {
    app.state.silences.get()
}

fn no_silences() -> Response {
    let message = "silences are not available in this process\n";
    (StatusCode::NOT_FOUND, message).into_response()
}

fn store_failure(error: crate::store::StoreError) -> Response {
    error!(%error, "cannot save the silence");
    let body = json!({ "error": format!("cannot save the silence: {error}") });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

pub(super) async fn list_handler(State(app): State<AppState>) -> Response {
    let Some(book) = book(&app) else {
        return no_silences();
    };
    let now = SystemTime::now();
    let silences: Vec<_> = book
        .list()
        .iter()
        .map(|silence| silence_json(silence, now))
        .collect();
    Json(silences).into_response()
}

pub(super) async fn create_handler(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(rejection) = authorize(&app.access, &headers) {
        return rejection.into_response();
    }
    let Some(book) = book(&app) else {
        return no_silences();
    };
    let request: NewSilence = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(format!("invalid silence: {error}")),
    };
    let now = SystemTime::now();
    let silence = match validate(request, now) {
        Ok(silence) => silence,
        Err(message) => return bad_request(message),
    };
    let id = silence.id.clone();
    let matchers: Vec<String> = silence.matchers.iter().map(ToString::to_string).collect();
    let created_by = silence.created_by.clone();
    if let Err(error) = book.add(silence) {
        return store_failure(error);
    }
    info!(silence = %id, ?matchers, created_by, "silence created");
    Json(json!({ "silenceID": id })).into_response()
}

pub(super) async fn expire_handler(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(rejection) = authorize(&app.access, &headers) {
        return rejection.into_response();
    }
    let Some(book) = book(&app) else {
        return no_silences();
    };
    match book.expire(&id, SystemTime::now()) {
        Ok(true) => {
            info!(silence = %id, "silence expired");
            Json(json!({ "status": "expired", "id": id })).into_response()
        }
        Ok(false) => {
            let body = json!({ "error": format!("silence {id:?} not found") });
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
        Err(error) => store_failure(error),
    }
}

/// Checks a new silence and gives it an id.
fn validate(request: NewSilence, now: SystemTime) -> Result<Silence, String> {
    if request.matchers.is_empty() {
        return Err(
            "invalid silence: matchers is empty; give at least one, such as \
                    probe = \"me\""
                .to_owned(),
        );
    }
    let matchers = request
        .matchers
        .iter()
        .map(|text| Matcher::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let starts_at = match &request.starts_at {
        Some(text) => parse_time("startsAt", text)?,
        None => now,
    };
    let ends_at = parse_time("endsAt", &request.ends_at)?;
    if ends_at <= starts_at {
        return Err(format!(
            "invalid silence: endsAt {} is not after startsAt {}",
            request.ends_at,
            rfc3339(starts_at)
        ));
    }
    if ends_at <= now {
        return Err(format!(
            "invalid silence: endsAt {} is in the past",
            request.ends_at
        ));
    }
    if request.created_by.trim().is_empty() || request.comment.trim().is_empty() {
        return Err("invalid silence: createdBy and comment must not be empty".to_owned());
    }
    Ok(Silence {
        id: Silence::new_id(),
        matchers,
        starts_at,
        ends_at,
        created_by: request.created_by,
        comment: request.comment,
    })
}

fn parse_time(key: &str, text: &str) -> Result<SystemTime, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.to_utc().into())
        .map_err(|error| {
            format!("invalid {key} {text:?}: {error}; write RFC 3339, such as 2026-12-04T18:00:00Z")
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn request(matchers: &[&str], starts_at: Option<&str>, ends_at: &str) -> NewSilence {
        NewSilence {
            matchers: matchers.iter().map(|text| text.to_string()).collect(),
            starts_at: starts_at.map(str::to_owned),
            ends_at: ends_at.to_owned(),
            created_by: "ana".to_owned(),
            comment: "SalesLoft maintenance".to_owned(),
        }
    }

    fn now() -> SystemTime {
        DateTime::parse_from_rfc3339("2026-12-04T18:00:00Z")
            .unwrap()
            .to_utc()
            .into()
    }

    #[test]
    fn valid_silence_starts_now() {
        let silence = validate(
            request(&["probe = \"me\""], None, "2026-12-04T19:00:00Z"),
            now(),
        )
        .unwrap();
        assert_eq!(silence.starts_at, now());
        assert_eq!(silence.ends_at, now() + Duration::from_secs(3600));
        assert_eq!(silence.matchers.len(), 1);
    }

    #[test]
    fn invalid_silences_rejected() {
        let cases = [
            (
                request(&[], None, "2026-12-04T19:00:00Z"),
                "matchers is empty",
            ),
            (
                request(&["probe"], None, "2026-12-04T19:00:00Z"),
                "invalid matcher",
            ),
            (request(&["probe = me"], None, "tomorrow"), "invalid endsAt"),
            (
                request(
                    &["probe = me"],
                    Some("2026-12-04T20:00:00Z"),
                    "2026-12-04T19:00:00Z",
                ),
                "is not after startsAt",
            ),
            (
                request(
                    &["probe = me"],
                    Some("2026-12-04T16:00:00Z"),
                    "2026-12-04T17:00:00Z",
                ),
                "is in the past",
            ),
        ];
        for (request, expected) in cases {
            let message = validate(request, now()).unwrap_err();
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn empty_author_rejected() {
        let mut request = request(&["probe = me"], None, "2026-12-04T19:00:00Z");
        request.created_by = " ".to_owned();
        let message = validate(request, now()).unwrap_err();
        assert!(message.contains("createdBy"), "{message}");
    }
}
