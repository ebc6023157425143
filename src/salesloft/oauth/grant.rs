//! The refresh grant: the form sent to the token endpoint and the parsing of its response.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use super::OAuthError;
use crate::probe::classify_error;
use crate::salesloft::Secret;

/// Deadline of one request to the token endpoint.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful refresh.
#[derive(Debug)]
pub struct Grant {
    /// The new access token.
    pub access_token: Secret,
    /// Lifetime of the access token.
    pub expires_in: Duration,
    /// The new refresh token, when the server rotated it.
    pub refresh_token: Option<Secret>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

/// Lifetime assumed when the token response has no `expires_in`; SalesLoft states 7200 s.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(7200);

/// The parameters of a refresh grant.
pub struct RefreshRequest<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub refresh_token: &'a Secret,
}

/// Sends the refresh grant form-encoded and reads the response. Errors name no secret: the
/// body of an error response is reduced to its `error` and `error_description`.
pub async fn request_refresh(
    http: &reqwest::Client,
    request: RefreshRequest<'_>,
) -> Result<Grant, OAuthError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", request.refresh_token.expose()),
        ("client_id", request.client_id),
        ("client_secret", request.client_secret.expose()),
    ];

    let body = encode_form(&form);
    let sent = http
        .post(request.token_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(body)
        .timeout(TOKEN_REQUEST_TIMEOUT)
        .send()
        .await;
    let response = sent.map_err(|error| OAuthError::Unreachable {
        url: request.token_url.to_owned(),
        kind: if error.is_timeout() {
            "timeout"
        } else {
            classify_error(&error).as_str()
        },
    })?;

    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|_| OAuthError::Unreachable {
            url: request.token_url.to_owned(),
            kind: "body read failed",
        })?;

    if status == 200 {
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|error| OAuthError::InvalidResponse {
                reason: format!("the body is not a token response ({error})"),
            })?;
        if parsed.access_token.is_empty() {
            return Err(OAuthError::InvalidResponse {
                reason: "access_token is empty".to_owned(),
            });
        }
        return Ok(Grant {
            access_token: Secret::new(parsed.access_token),
            expires_in: parsed
                .expires_in
                .map_or(DEFAULT_EXPIRES_IN, Duration::from_secs),
            refresh_token: parsed
                .refresh_token
                .filter(|token| !token.is_empty())
                .map(Secret::new),
        });
    }

    let error: Option<ErrorResponse> = serde_json::from_slice(&bytes).ok();
    let code = error.as_ref().and_then(|error| error.error.clone());
    let description = error.and_then(|error| error.error_description);
    if status == 400 && code.as_deref() == Some("invalid_grant") {
        return Err(OAuthError::InvalidGrant { description });
    }
    Err(OAuthError::Rejected {
        status,
        code,
        description,
    })
}

/// Encodes `application/x-www-form-urlencoded` pairs.
pub fn encode_form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_component(key, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out
}

fn encode_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        let text = encode_form(&[("grant_type", "refresh_token"), ("token", "a+b c/=&é")]);
        assert_eq!(
            text,
            "grant_type=refresh_token&token=a%2Bb+c%2F%3D%26%C3%A9"
        );
    }
}
