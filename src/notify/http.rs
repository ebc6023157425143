//! The HTTP side shared by the Alertmanager and webhook receivers: one `POST` of a JSON body
//! and the classification of its failure.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::{DeliveryError, FailureReason, NotifyError};
use crate::probe::{Outcome, classify_error};

/// Response text kept in an error message, in bytes.
const MAX_ERROR_BODY: usize = 300;

/// Builds the client of one receiver: rustls with the platform's roots, `timeout` per request.
pub(super) fn client(
    receiver: &'static str,
    timeout: Duration,
) -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("loftwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| NotifyError::HttpClient { receiver, source })
}

/// Posts `body` as JSON with `headers` and returns an error classified by
/// [`FailureReason`] unless the status is 2xx.
pub(super) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    mut headers: HeaderMap,
) -> Result<(), DeliveryError> {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = client
        .post(url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|error| request_error(url, &error))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // The body is read for the message only, so a failure to read it is not an error.
    let text = response.text().await.unwrap_or_default();
    Err(status_error(url, status, &text))
}

/// Classifies a request that got no response.
fn request_error(url: &str, error: &reqwest::Error) -> DeliveryError {
    let reason = if error.is_timeout() {
        FailureReason::Timeout
    } else {
        match classify_error(error) {
            Outcome::TlsError => FailureReason::Tls,
            Outcome::DnsError | Outcome::ConnectError if error.is_connect() => {
                FailureReason::Connect
            }
            _ => FailureReason::Other,
        }
    };
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.ends_with(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    DeliveryError::transient(format!("post to {url} failed: {detail}")).with_reason(reason)
}

/// Classifies a response with a status other than 2xx. A 4xx other than 408 and 429 is
/// permanent, because the same body would be rejected again.
fn status_error(url: &str, status: StatusCode, body: &str) -> DeliveryError {
    let reason = match status.as_u16() {
        401 | 403 => FailureReason::Auth,
        400..=499 => FailureReason::Http4xx,
        500..=599 => FailureReason::Http5xx,
        _ => FailureReason::Other,
    };
    let mut end = body.len().min(MAX_ERROR_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    let message = format!("post to {url} returned {status}: {}", body[..end].trim());
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    let error = if retryable {
        DeliveryError::transient(message)
    } else {
        DeliveryError::permanent(message)
    };
    error.with_reason(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classified() {
        let cases = [
            (400, FailureReason::Http4xx, true),
            (401, FailureReason::Auth, true),
            (403, FailureReason::Auth, true),
            (408, FailureReason::Http4xx, false),
            (429, FailureReason::Http4xx, false),
            (500, FailureReason::Http5xx, false),
            (503, FailureReason::Http5xx, false),
        ];
        for (code, reason, permanent) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            let error = status_error("http://127.0.0.1:9/x", status, "no");
            assert_eq!(error.reason, reason, "status {code}");
            assert_eq!(error.permanent, permanent, "status {code}");
        }
    }

    #[test]
    fn long_body_cut_on_char_boundary() {
        let body = "é".repeat(400);
        let error = status_error("http://127.0.0.1:9/x", StatusCode::BAD_REQUEST, &body);
        assert!(error.message.len() < 400);
    }
}
