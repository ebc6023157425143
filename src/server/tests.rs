//! Tests of the server's endpoints over real HTTP on 127.0.0.1.

use std::time::Duration;

use super::*;

async fn start(
    listen: &str,
    token: Option<&str>,
    state: ServerState,
) -> (SocketAddr, watch::Sender<bool>) {
    let config = ServerConfig {
        listen: listen.parse().expect("socket address"),
        health_freshness: None,
        token: None,
    };
    let server = Server::bind(&config, token.map(str::to_owned), state)
        .await
        .expect("bind the server");
    let address = server.local_addr();
    let (stop, shutdown) = watch::channel(false);
    server.spawn(shutdown);
    (address, stop)
}

/// Returns a state whose reloads are answered by a task that accepts each one, counting them.
fn state_with_reload() -> (ServerState, mpsc::UnboundedReceiver<()>) {
    let (reload, mut requests) = mpsc::channel::<crate::daemon::ReloadRequest>(4);
    let (seen, count) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            let _ = seen.send(());
            let _ = request
                .reply
                .send(Ok(crate::daemon::ReloadSummary::default()));
        }
    });
    let state = ServerState::new("test", Duration::from_secs(30)).with_reload(reload);
    (state, count)
}

#[tokio::test]
async fn health_degraded_before_results() {
    let (address, _stop) = start(
        "127.0.0.1:0",
        None,
        ServerState::new("test", Duration::from_secs(30)),
    )
    .await;
    let response = reqwest::get(format!("http://{address}/health"))
        .await
        .expect("GET /health");
    assert_eq!(response.status(), 503);
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("JSON body");
    assert_eq!(
        body,
        json!({"status": "degraded", "salesloft": {"connected": false}})
    );
}

#[test]
fn health_body_healthy_shape() {
    let report = HealthReport {
        connected: true,
        latency: Some(Duration::from_micros(123_900)),
    };
    let (status, body) = health_body(report);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "healthy", "salesloft": {"connected": true, "latencyMs": 123}})
    );
}

#[tokio::test]
async fn reload_open_on_loopback_without_token() {
    let (state, mut requests) = state_with_reload();
    let (address, _stop) = start("127.0.0.1:0", None, state).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{address}/-/reload"))
        .send()
        .await
        .expect("POST /-/reload");
    assert_eq!(response.status(), 200);
    assert_eq!(requests.try_recv(), Ok(()));
}

#[tokio::test]
async fn reload_requires_configured_token() {
    let (state, mut requests) = state_with_reload();
    let (address, _stop) = start("127.0.0.1:0", Some("s3cret-token"), state).await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/-/reload");

    let missing = client.post(&url).send().await.expect("POST without token");
    assert_eq!(missing.status(), 401);
    let wrong = client
        .post(&url)
        .bearer_auth("s3cret-tokem")
        .send()
        .await
        .expect("POST with a wrong token");
    assert_eq!(wrong.status(), 401);
    assert!(requests.try_recv().is_err());

    let right = client
        .post(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .expect("POST with the token");
    assert_eq!(right.status(), 200);
    assert_eq!(requests.try_recv(), Ok(()));
}

#[test]
fn reload_disabled_off_loopback_without_token() {
    let wildcard: SocketAddr = "0.0.0.0:9898".parse().unwrap();
    let access = mutation_access(wildcard, None);
    assert!(matches!(access, MutationAccess::Disabled));
    let rejection = authorize(&access, &HeaderMap::new()).expect_err("rejected");
    assert_eq!(rejection, Rejection::Disabled);
    assert_eq!(rejection.into_response().status(), StatusCode::FORBIDDEN);

    let loopback: SocketAddr = "[::1]:9898".parse().unwrap();
    assert!(matches!(
        mutation_access(loopback, None),
        MutationAccess::Loopback
    ));
    let with_token = mutation_access(wildcard, Some("t".to_owned()));
    assert!(matches!(with_token, MutationAccess::Token(_)));
}

#[test]
fn constant_time_eq_compares_bytes() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}
