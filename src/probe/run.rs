//! One probe run: send the request, read the body under the size cap, classify the outcome,
//! and send it again after a 401 with OAuth or a retryable failure.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::Method;
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use super::classify::{classify_error, describe_error};
use super::{Outcome, ProbeResult, RateLimit, assert};
use crate::config::ProbeSpec;
use crate::salesloft::{Bearer, BreakerState, Client};

/// Header with the cost of this request in the team's minute budget.
const COST_HEADER: &str = "x-ratelimit-endpoint-cost";
/// Header with the budget left in the minute of this request.
const REMAINING_HEADER: &str = "x-ratelimit-remaining-minute";
/// Maximum length of the body excerpt quoted for an unexpected status, in characters.
const EXCERPT_CHARS: usize = 200;

/// Runs `spec` once through `client` and classifies the result.
///
/// Each attempt has its own deadline, `spec.timeout`, shared by connecting, the response
/// headers and the whole body. The latency runs on the monotonic clock from just before the
/// request is sent to the last body byte, or to the moment the attempt was abandoned on a
/// timeout or an oversized body.
///
/// Two cases send the request again:
/// - A 401 with an OAuth client refreshes the token once (shared with every probe that got a
///   401 on the same token) and retries once. The retry is the recorded attempt, because a
///   token that expired on the client's side is no API failure.
/// - A 5xx or connection error of an idempotent method is retried with backoff up to the
///   client's [`RetryPolicy`](crate::salesloft::RetryPolicy). The first attempt stays the
///   recorded one, so rules and SLIs see what the API did; the detail names the last attempt.
///
/// `attempts` counts every request sent. The run's last attempt is reported to the circuit
/// breaker of the client's host. While that breaker is half-open the run is its one trial and
/// is not retried.
pub async fn run(client: &Client, spec: &ProbeSpec) -> ProbeResult {
    let started_at = SystemTime::now();
    let method = match Method::from_bytes(spec.method.as_bytes()) {
        Ok(method) => method,
        Err(_) => {
            // NOTE: an invalid method is a configuration error. It is reported as
            // connect_error because no request could be sent and the outcome set has no
            // configuration class.
            let detail = format!(
                "invalid HTTP method {:?}; use GET, POST, PUT, PATCH or DELETE",
                spec.method
            );
            return unsent(spec, started_at, detail);
        }
    };
    let bearer = match client.bearer().await {
        Ok(bearer) => bearer,
        // NOTE: reported as connect_error for the same reason as an invalid method. The
        // refresh failure itself is exposed by `OAuthSession::status`.
        Err(error) => return unsent(spec, started_at, client.redact(&error.to_string())),
    };

    let mut recorded = attempt(client, spec, &method, &bearer).await;
    let mut attempts = 1;
    if recorded.seen.status == Some(401) {
        if let Some(refreshed) = client.refresh_after_401(&bearer).await {
            match refreshed {
                Ok(fresh) => {
                    tracing::info!(probe = %spec.name, "retrying with a refreshed token after 401");
                    recorded = attempt(client, spec, &method, &fresh).await;
                    attempts += 1;
                }
                Err(error) => {
                    let note = format!("token refresh after 401 failed: {error}");
                    recorded.detail = Some(match recorded.detail.take() {
                        Some(detail) => format!("{detail}; {note}"),
                        None => note,
                    });
                }
            }
        }
    }

    let policy = client.retry_policy();
    let trial = client.breakers().state(client.host()) == BreakerState::HalfOpen;
    let mut last = recorded.outcome;
    while !trial && is_retryable(last) && policy.allows_retry(&method, attempts) {
        let wait = policy.backoff(attempts);
        tracing::debug!(probe = %spec.name, outcome = %last, attempts, wait_ms = wait.as_millis(), "retrying probe");
        tokio::time::sleep(wait).await;
        let bearer = client.bearer().await.unwrap_or_else(|_| bearer.clone());
        let retry = attempt(client, spec, &method, &bearer).await;
        attempts += 1;
        last = retry.outcome;
    }
    client
        .breakers()
        .record(client.host(), is_breaker_failure(last));
    if attempts > 1 && last != recorded.outcome {
        let note = format!("attempt {attempts} ended {last}");
        recorded.detail = Some(match recorded.detail.take() {
            Some(detail) => format!("{detail}; {note}"),
            None => note,
        });
    }

    ProbeResult {
        probe: spec.name.clone(),
        started_at,
        finished: Instant::now(),
        latency: recorded.latency,
        outcome: recorded.outcome,
        status: recorded.seen.status,
        rate_limit: recorded.seen.rate_limit,
        attempts,
        detail: recorded.detail.map(|text| client.redact(&text)),
    }
}

/// Returns whether an attempt that ended with `outcome` may be sent again: a 5xx or a
/// connection failed before any response. DNS and TLS failures repeat on an immediate retry,
/// and a timeout has already spent the attempt's deadline.
fn is_retryable(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::HttpStatus(5) | Outcome::ConnectError)
}

/// Returns whether an attempt that ended with `outcome` counts against the host's circuit
/// breaker: a 5xx, a timeout, or a connection, DNS or TLS failure. A 4xx, including 429, is an
/// answer from a working API, and body or assertion failures concern the probe.
fn is_breaker_failure(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::HttpStatus(5) | Outcome::Timeout | Outcome::ConnectError | Outcome::TlsError
    ) || outcome.is_dns_failure()
}

/// Builds the result of a run that could send no request.
fn unsent(spec: &ProbeSpec, started_at: SystemTime, detail: String) -> ProbeResult {
    ProbeResult {
        probe: spec.name.clone(),
        started_at,
        finished: Instant::now(),
        latency: Duration::ZERO,
        outcome: Outcome::ConnectError,
        status: None,
        rate_limit: RateLimit::default(),
        attempts: 0,
        detail: Some(detail),
    }
}

/// The classified end of one attempt.
struct Attempt {
    outcome: Outcome,
    detail: Option<String>,
    latency: Duration,
    seen: Seen,
}

/// Sends the request once under `spec.timeout` and classifies what came back.
async fn attempt(client: &Client, spec: &ProbeSpec, method: &Method, bearer: &Bearer) -> Attempt {
    let start = Instant::now();
    let mut seen = Seen::default();
    let exchanged = tokio::time::timeout(
        spec.timeout,
        exchange(client, spec, method, bearer, &mut seen),
    )
    .await;
    let finished = Instant::now();

    let (outcome, detail, latency) = match exchanged {
        Ok(Ok(done)) => judge(spec, &done.body, done.at - start),
        Ok(Err(failure)) => (failure.outcome, Some(failure.detail), finished - start),
        Err(_elapsed) => {
            let phase = if seen.status.is_some() {
                "the body"
            } else {
                "the response"
            };
            let detail = format!("timed out after {:?} waiting for {phase}", spec.timeout);
            (Outcome::Timeout, Some(detail), finished - start)
        }
    };
    Attempt {
        outcome,
        detail,
        latency,
        seen,
    }
}

/// Response parts received before the run ended. They are kept outside the timed future, so
/// a timeout during the body still reports the status and rate-limit headers.
#[derive(Default)]
struct Seen {
    status: Option<u16>,
    rate_limit: RateLimit,
}

/// A response read to its last byte.
struct Done {
    body: Bytes,
    at: Instant,
}

/// The outcome of a run that ended before its body could be judged.
struct Failure {
    outcome: Outcome,
    detail: String,
}

async fn exchange(
    client: &Client,
    spec: &ProbeSpec,
    method: &Method,
    bearer: &Bearer,
    seen: &mut Seen,
) -> Result<Done, Failure> {
    let mut response = client
        .send(bearer, method.clone(), &spec.path)
        .await
        .map_err(|error| Failure {
            outcome: classify_error(&error),
            detail: describe_error(&error),
        })?;
    let status = response.status().as_u16();
    seen.status = Some(status);
    seen.rate_limit = read_rate_limit(response.headers());

    let body = read_body(&mut response, spec.max_body).await;
    if status == 422 {
        log_unprocessable(client, spec, method, body.as_ref().ok());
    }
    if !spec.expect_status.contains(&status) {
        // The status decides the outcome. The body was read only to time its last byte and to
        // quote its start, which usually names the error.
        let mut detail = format!(
            "unexpected status {status}, expected {:?}",
            spec.expect_status
        );
        if let Ok(body) = &body {
            let excerpt = excerpt(body);
            if !excerpt.is_empty() {
                detail = format!("{detail}: {excerpt}");
            }
        }
        return Err(Failure {
            outcome: Outcome::from_status(status),
            detail,
        });
    }
    Ok(Done {
        body: body?,
        at: Instant::now(),
    })
}

/// Logs a 422 response at warn with the request (probes send no body, so its method and
/// path) and the `errors` object of the response, with every secret of the client redacted.
fn log_unprocessable(client: &Client, spec: &ProbeSpec, method: &Method, body: Option<&Bytes>) {
    let errors = body
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
        .and_then(|json| json.get("errors").cloned())
        .map_or_else(
            || body.map(|body| excerpt(body)).unwrap_or_default(),
            |errors| errors.to_string(),
        );
    tracing::warn!(
        probe = %spec.name,
        %method,
        path = %client.redact(&spec.path),
        errors = %client.redact(&errors),
        "request rejected as unprocessable (422)"
    );
}

/// Reads the whole body, failing once it grows past `max_body` bytes.
async fn read_body(response: &mut reqwest::Response, max_body: usize) -> Result<Bytes, Failure> {
    let mut body = BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|error| Failure {
            outcome: Outcome::ConnectError,
            detail: format!("reading the body failed: {}", describe_error(&error)),
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() + chunk.len() > max_body {
            return Err(Failure {
                outcome: Outcome::BodyTooLarge,
                detail: format!(
                    "response body passed max_body of {max_body} bytes after {} bytes",
                    body.len() + chunk.len()
                ),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Returns the start of a body as one line, cut after [`EXCERPT_CHARS`] characters.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut excerpt: String = line.chars().take(EXCERPT_CHARS).collect();
    if excerpt.len() < line.len() {
        excerpt.push_str("...");
    }
    excerpt
}

/// Classifies a complete response with an expected status by its JSON body and assertions.
fn judge(spec: &ProbeSpec, body: &[u8], latency: Duration) -> (Outcome, Option<String>, Duration) {
    if body.is_empty() && spec.assertions.is_empty() {
        return (Outcome::Ok, None, latency);
    }
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(error) => {
            let detail = format!("response body is not valid JSON: {error}");
            return (Outcome::InvalidBody, Some(detail), latency);
        }
    };
    match assert::check_all(&json, &spec.assertions) {
        Ok(()) => (Outcome::Ok, None, latency),
        Err(detail) => (Outcome::AssertionFailed, Some(detail), latency),
    }
}

/// Reads the SalesLoft rate-limit headers, ignoring values that are not unsigned integers.
pub fn read_rate_limit(headers: &HeaderMap) -> RateLimit {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u32>().ok();
    RateLimit {
        cost: number(COST_HEADER),
        remaining: number(REMAINING_HEADER),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn rate_limit_reads_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(COST_HEADER, HeaderValue::from_static("3"));
        headers.insert(REMAINING_HEADER, HeaderValue::from_static(" 597 "));
        let limit = read_rate_limit(&headers);
        assert_eq!(
            limit,
            RateLimit {
                cost: Some(3),
                remaining: Some(597)
            }
        );
    }

    #[test]
    fn rate_limit_ignores_bad_values() {
        let mut headers = HeaderMap::new();
        headers.insert(COST_HEADER, HeaderValue::from_static("-1"));
        headers.insert(REMAINING_HEADER, HeaderValue::from_static("lots"));
        assert_eq!(read_rate_limit(&headers), RateLimit::default());
    }
}
