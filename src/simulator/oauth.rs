//! `POST /oauth/token`: the refresh grant with rotating refresh tokens.
//!
//! SalesLoft serves this on its accounts host; the simulator serves it on the same listener as
//! the API. The body may be form-encoded or JSON. The token endpoint is not charged against the
//! API budget.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::http::{Request, Response, parse_form};
use super::state::State;

const INVALID_GRANT: &str = include_str!("fixtures/oauth_invalid_grant.json");

/// Builds the response to a request for `/oauth/token`.
pub fn respond(state: &State, request: &Request) -> Response {
    if request.method != "POST" {
        return Response::json(405, json!({ "error": "Method Not Allowed" }).to_string());
    }
    let params = match body_params(request) {
        Ok(params) => params,
        Err(description) => return oauth_error("invalid_request", &description),
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };
    match param("grant_type") {
        Some("refresh_token") => {}
        Some(other) => {
            return oauth_error(
                "unsupported_grant_type",
                &format!("grant_type {other:?} is not supported: use refresh_token"),
            );
        }
        None => return oauth_error("invalid_request", "grant_type is missing"),
    }
    for required in ["client_id", "client_secret"] {
        if param(required).is_none() {
            return oauth_error("invalid_request", &format!("{required} is missing"));
        }
    }
    let Some(refresh_token) = param("refresh_token") else {
        return oauth_error("invalid_request", "refresh_token is missing");
    };

    let now = tokio::time::Instant::now();
    let created_at = unix_seconds(state.now_wall());
    let mut inner = state.lock();
    let inner = &mut *inner;
    let Some(grant) = inner.tokens.refresh(refresh_token, now, &mut inner.rng) else {
        return Response::json(400, INVALID_GRANT);
    };
    let body = json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "refresh_token": grant.refresh_token,
        "scope": "",
        "created_at": created_at,
    });
    Response::json(200, body.to_string())
}

fn body_params(request: &Request) -> Result<Vec<(String, String)>, String> {
    let content_type = request.header("content-type").unwrap_or_default();
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(&request.body)
            .map_err(|error| format!("body is not valid JSON: {error}"))?;
        let Value::Object(object) = value else {
            return Err("JSON body is not an object".to_owned());
        };
        return Ok(object
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::String(text) => Some((key, text)),
                _ => None,
            })
            .collect());
    }
    let text = String::from_utf8_lossy(&request.body);
    Ok(parse_form(&text))
}

fn oauth_error(error: &str, description: &str) -> Response {
    Response::json(
        400,
        json!({ "error": error, "error_description": description }).to_string(),
    )
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
