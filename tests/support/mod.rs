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
