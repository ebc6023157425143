//! Test support shared by the integration tests: real servers on 127.0.0.1 that loftwatch
//! talks to, and helpers to wait for what they receive.
#![allow(dead_code)]

pub mod otlp;
pub mod smtp;
pub mod smtp_tls;

use std::future::Future;
use std::time::Duration;

/// Returns a TCP port on 127.0.0.1 that had no listener a moment ago. Another process may
/// take it before the caller binds it, which is unlikely in a test run.
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local address of the probe listener")
        .port()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns the Auth down alert on probe `me` that the notification tests send: value 3,
/// threshold `> 0` over 1m, at a fixed time. A resolved one fired 125 s earlier.
pub fn sample_transition(kind: loftwatch::alert::TransitionKind) -> loftwatch::alert::Transition {
    use loftwatch::alert::{Severity, Transition, TransitionKind};
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    let at = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    let firing_since = match kind {
        TransitionKind::Firing => at,
        TransitionKind::Resolved => at - Duration::from_secs(125),
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
