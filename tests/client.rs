//! The SalesLoft client against the in-process simulator and small scripted servers on
//! 127.0.0.1: rate-limit pauses, retries, fresh connections, OAuth refresh and secret hygiene.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use loftwatch::config::{
    AuthConfig, OAuthConfig, ProbeSpec, SalesloftConfig, Schedule, SecretSource,
};
use loftwatch::probe::{self, Outcome, ProbeEvent, ProbeResult, SkipReason};
use loftwatch::salesloft::{
    Client, MAX_RETRY_AFTER, OAuthSession, OAuthSettings, REFRESH_TOKEN_FILE, RetryPolicy, Secret,
    until_next_minute,
};
use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const API_KEY: &str = "test-api-key-77c1";
const CLIENT_SECRET: &str = "client-secret-9d2f41";
const FIRST_REFRESH_TOKEN: &str = "first-refresh-token-31b7";
const ME: &str = r#"{"data":{"id":4,"email":"sam@example.com"}}"#;

fn config(base_url: &str) -> SalesloftConfig {
    SalesloftConfig {
        base_url: base_url.to_owned(),
        credential: SecretSource::default(),
        location: Arc::from("test"),
        user_agent: "loftwatch-test/1".to_owned(),
        auth: AuthConfig::ApiKey,
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(80),
        },
        pause_on_429: true,
        breaker: Default::default(),
        budget: Default::default(),
        dns: Default::default(),
    }
}

fn api_key_client(base_url: &str) -> Client {
    Client::new(&config(base_url), Secret::new(API_KEY)).unwrap()
}

fn spec(name: &str, method: &str, path: &str) -> ProbeSpec {
    ProbeSpec {
        name: Arc::from(name),
        method: method.to_owned(),
        path: path.to_owned(),
        schedule: Schedule::Interval {
            every: Duration::from_millis(250),
            splay: Duration::ZERO,
        },
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        expect_status: vec![200],
        assertions: Vec::new(),
        latency_baseline: Duration::from_millis(300),
        priority: Default::default(),
    }
}

fn me() -> ProbeSpec {
    spec("me", "GET", "/v2/me.json")
}

// --- scripted servers -------------------------------------------------------------------

/// One request a scripted server read.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    path: String,
    connection: usize,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Serves `responses` in order (the last one repeats), keeping connections open. With
/// `close_reused`, a connection that already served a response is closed without a reply when
/// the next request arrives on it, as a server does when its idle timeout races the client.
async fn scripted(responses: Vec<String>, close_reused: bool) -> (SocketAddr, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let seen = log.clone();
    let responses = Arc::new(responses);
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((stream, _)) = listener.accept().await {
            connection += 1;
            let (log, responses) = (seen.clone(), responses.clone());
            tokio::spawn(serve_connection(
                stream,
                connection,
                responses,
                log,
                close_reused,
            ));
        }
    });
    (addr, log)
}

async fn serve_connection(
    mut stream: TcpStream,
    connection: usize,
    responses: Arc<Vec<String>>,
    log: Log,
    close_reused: bool,
) {
    let mut served = 0;
    loop {
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
        let index = {
            let mut log = log.lock().unwrap();
            log.push(Received {
                at: Instant::now(),
                path,
                connection,
            });
            log.len() - 1
        };
        if close_reused && served > 0 {
            return;
        }
        let response = &responses[index.min(responses.len() - 1)];
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        served += 1;
    }
}

fn http(status: &str, headers: &[String], body: &str) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("connection: keep-alive\r\n\r\n");
    text.push_str(body);
    text
}

fn too_many(headers: &[String]) -> String {
    http(
        "429 Too Many Requests",
        headers,
        r#"{"error":"rate limited"}"#,
    )
}

// --- 429 and Retry-After -----------------------------------------------------------------

/// Spawns each of `probes` through `client` and collects their events for `run_for`.
async fn collect_events(
    probes: Vec<ProbeSpec>,
    client: Arc<Client>,
    run_for: Duration,
) -> Vec<ProbeEvent> {
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|spec| {
            probe::spawn_probe(
                Arc::new(spec),
                client.clone(),
                events.clone(),
                shutdown.clone(),
            )
        })
        .collect();
    drop(events);
    tokio::time::sleep(run_for).await;
    stop.send(true).unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let mut collected = Vec::new();
    while let Some(event) = receiver.recv().await {
        collected.push(event);
    }
    collected
}

#[tokio::test]
async fn retry_after_pauses_every_probe_of_host() {
    let ok = http("200 OK", &["content-type: application/json".into()], ME);
    let (addr, log) = scripted(vec![too_many(&["retry-after: 2".into()]), ok], false).await;
    let client = Arc::new(api_key_client(&format!("http://{addr}")));
    let mut second = spec("b", "GET", "/b");
    second.schedule = Schedule::Interval {
        every: Duration::from_millis(250),
        splay: Duration::from_millis(100),
    };
    let probes = vec![spec("a", "GET", "/a"), second];
    let events = collect_events(probes, client.clone(), Duration::from_millis(3200)).await;

    let log = log.lock().unwrap().clone();
    let first = log[0].at;
    assert_eq!(log[0].path, "/a");
    let during_pause = log
        .iter()
        .filter(|request| request.at - first < Duration::from_secs(2));
    assert_eq!(
        during_pause.count(),
        1,
        "requests during the pause: {log:?}"
    );
    let resumed = log[1].at - first;
    assert!(
        resumed < Duration::from_millis(2500),
        "no request soon after the pause: {resumed:?}"
    );
    // No burst: each probe sends one request in the first interval after the pause.
    for path in ["/a", "/b"] {
        let burst = log
            .iter()
            .filter(|request| request.path == path)
            .filter(|request| request.at >= log[1].at)
            .filter(|request| request.at - log[1].at < Duration::from_millis(240))
            .count();
        assert!(
            burst <= 1,
            "{path} sent {burst} requests right after the pause"
        );
    }

    let results: Vec<&ProbeResult> = events
        .iter()
        .filter_map(|event| match event {
            ProbeEvent::Result(result) => Some(result),
            ProbeEvent::Skipped { .. } => None,
        })
        .collect();
    let throttled = results
        .iter()
        .filter(|result| result.status == Some(429))
        .count();
    assert_eq!(
        throttled, 1,
        "only the request that got 429 is a 429 result"
    );
    assert!(
        results.iter().all(|result| result.status.is_some()),
        "{results:?}"
    );
    for name in ["a", "b"] {
        let skipped: u64 = events
            .iter()
            .filter_map(|event| match event {
                ProbeEvent::Skipped {
                    probe,
                    reason,
                    count,
                } if &**probe == name => {
                    assert_eq!(*reason, SkipReason::RetryAfter);
                    Some(*count)
                }
                _ => None,
            })
            .sum();
        assert!(
            skipped >= 5,
            "probe {name} skipped {skipped} ticks of a 2 s pause"
        );
    }
    assert_eq!(client.pauses().stats().pauses, 1);
}

/// Probes a server that responds 429 with `headers`, and returns the pause it set.
async fn pause_after(headers: &[String]) -> (Duration, Client) {
    let (addr, _) = scripted(vec![too_many(headers)], false).await;
    let client = api_key_client(&format!("http://{addr}"));
    let before = Instant::now();
    let result = probe::run(&client, &me()).await;
    assert_eq!(result.status, Some(429));
    assert_eq!(result.attempts, 1, "a 429 is never retried");
    let until = client.paused_until().expect("the host is paused");
    (until - before, client)
}

#[tokio::test]
async fn retry_after_date_measured_from_date_header() {
    // The server's clock is an hour behind the local one; only its Date header gives 3 s.
    let server_now = SystemTime::now() - Duration::from_secs(3600);
    let date = httpdate::fmt_http_date(server_now);
    let retry_at = httpdate::fmt_http_date(server_now + Duration::from_secs(3));
    let headers = [format!("date: {date}"), format!("retry-after: {retry_at}")];
    let (pause, _) = pause_after(&headers).await;
    assert!(pause > Duration::from_millis(2900), "{pause:?}");
    assert!(pause <= Duration::from_millis(3100), "{pause:?}");
}

#[tokio::test]
async fn retry_after_too_large_is_clamped() {
    let (pause, client) = pause_after(&["retry-after: 86400".into()]).await;
    // The pause starts with the request, a moment after `pause_after` read the clock.
    assert!(
        pause <= MAX_RETRY_AFTER + Duration::from_millis(100),
        "{pause:?}"
    );
    assert!(
        pause > MAX_RETRY_AFTER - Duration::from_secs(1),
        "{pause:?}"
    );
    assert_eq!(client.pauses().stats().clamped, 1);
}

#[tokio::test]
async fn retry_after_invalid_waits_for_next_minute() {
    let date = SystemTime::now();
    for value in ["-5", "1.5", "soon"] {
        let headers = [
            format!("date: {}", httpdate::fmt_http_date(date)),
            format!("retry-after: {value}"),
        ];
        let (pause, client) = pause_after(&headers).await;
        assert_eq!(client.pauses().stats().invalid, 1, "{value}");
        // The Date header has whole seconds, so the minute boundary is measured from there.
        let expected =
            until_next_minute(httpdate::parse_http_date(&httpdate::fmt_http_date(date)).unwrap());
        let difference = pause.abs_diff(expected);
        assert!(
            difference < Duration::from_millis(100),
            "{value}: {pause:?} vs {expected:?}"
        );
    }
}

#[tokio::test]
async fn retry_after_past_date_means_no_pause() {
    let now = SystemTime::now();
    let headers = [
        format!("date: {}", httpdate::fmt_http_date(now)),
        format!(
            "retry-after: {}",
            httpdate::fmt_http_date(now - Duration::from_secs(60))
        ),
    ];
    let (addr, _) = scripted(vec![too_many(&headers)], false).await;
    let client = api_key_client(&format!("http://{addr}"));
    let result = probe::run(&client, &me()).await;
    assert_eq!(result.status, Some(429));
    assert_eq!(client.paused_until(), None);
    assert_eq!(client.pauses().stats().invalid, 0);
}

#[tokio::test]
async fn missing_retry_after_pauses_on_simulator() {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .unwrap();
    sim.consume_budget(600);
    let client = api_key_client(&sim.base_url());
    let result = probe::run(&client, &me()).await;
    assert_eq!(result.status, Some(429));
    let pause = client.paused_until().expect("paused") - Instant::now();
    assert!(pause <= Duration::from_secs(60), "{pause:?}");
}

// --- retries and connections -------------------------------------------------------------

async fn start_sim(options: SimulatorOptions) -> SimulatorHandle {
    simulator::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap()
}

#[tokio::test]
async fn server_error_retry_keeps_first_attempt() {
    let sim = start_sim(SimulatorOptions::default()).await;
    sim.set_fault(Fault::new(
        Some("/v2/me.json"),
        FaultEffect::Status(vec![503, 200]),
    ));
    let result = probe::run(&api_key_client(&sim.base_url()), &me()).await;
    assert_eq!(result.outcome, Outcome::HttpStatus(5));
    assert_eq!(result.status, Some(503));
    assert_eq!(result.attempts, 2);
    assert_eq!(sim.stats().path("/v2/me.json"), 2);
    let detail = result.detail.unwrap();
    assert!(detail.contains("attempt 2 ended ok"), "{detail}");
}

#[tokio::test]
async fn post_is_never_retried() {
    let sim = start_sim(SimulatorOptions::default()).await;
    let path = "/v2/person_upserts.json";
    sim.set_fault(Fault::new(Some(path), FaultEffect::Status(vec![503])));
    let result = probe::run(
        &api_key_client(&sim.base_url()),
        &spec("upsert", "POST", path),
    )
    .await;
    assert_eq!(result.status, Some(503));
    assert_eq!(result.attempts, 1);
    assert_eq!(sim.stats().path(path), 1);
}

#[tokio::test]
async fn connection_errors_stop_after_three_attempts() {
    let sim = start_sim(SimulatorOptions::default()).await;
    sim.set_fault(Fault::new(Some("/v2/me.json"), FaultEffect::Close));
    let result = probe::run(&api_key_client(&sim.base_url()), &me()).await;
    assert_eq!(result.outcome, Outcome::ConnectError);
    assert_eq!(result.status, None);
    assert_eq!(result.attempts, 3);
    assert_eq!(sim.stats().unanswered, 3);
}

#[tokio::test]
async fn closed_keep_alive_connection_is_not_an_error() {
    let ok = http("200 OK", &["content-type: application/json".into()], ME);
    let (addr, log) = scripted(vec![ok], true).await;
    let client = api_key_client(&format!("http://{addr}"));
    for round in 0..5 {
        let result = probe::run(&client, &me()).await;
        assert_eq!(
            result.outcome,
            Outcome::Ok,
            "round {round}: {:?}",
            result.detail
        );
        assert_eq!(result.attempts, 1, "round {round}");
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 5);
    let connections: std::collections::HashSet<usize> =
        log.iter().map(|request| request.connection).collect();
    assert_eq!(connections.len(), 5, "every probe opens a new connection");
}

#[tokio::test]
async fn api_key_401_is_recorded_without_retry() {
    let sim = start_sim(SimulatorOptions::default()).await;
    sim.invalidate_tokens([API_KEY.to_owned()]);
    let result = probe::run(&api_key_client(&sim.base_url()), &me()).await;
    assert_eq!(result.status, Some(401));
    assert_eq!(result.attempts, 1);
}

// --- OAuth --------------------------------------------------------------------------------

fn oauth_sim_options() -> SimulatorOptions {
    SimulatorOptions {
        refresh_tokens: vec![FIRST_REFRESH_TOKEN.to_owned()],
        strict_tokens: true,
        ..SimulatorOptions::default()
    }
}

fn oauth_session(sim: &SimulatorHandle, state_dir: &Path) -> Arc<OAuthSession> {
    let oauth = OAuthConfig {
        token_url: format!("{}/oauth/token", sim.base_url()),
        client_id: "loftwatch-test".to_owned(),
        client_secret: SecretSource::default(),
        refresh_token: SecretSource::default(),
        state_dir: Some(state_dir.to_owned()),
    };
    let session = OAuthSession::new(OAuthSettings {
        config: &oauth,
        client_secret: Secret::new(CLIENT_SECRET),
        refresh_token: Secret::new(FIRST_REFRESH_TOKEN),
        state_dir,
        user_agent: "loftwatch-test/1",
    })
    .unwrap();
    Arc::new(session)
}

fn oauth_client(sim: &SimulatorHandle, session: Arc<OAuthSession>) -> Arc<Client> {
    Arc::new(Client::with_oauth(&config(&sim.base_url()), session).unwrap())
}

/// Returns the requests to the token endpoint and how many of them got `invalid_grant`.
fn token_requests(sim: &SimulatorHandle) -> (usize, usize) {
    let requests = sim.requests();
    let token: Vec<_> = requests
        .iter()
        .filter(|request| request.path == "/oauth/token")
        .collect();
    let rejected = token
        .iter()
        .filter(|request| request.status == Some(400))
        .count();
    (token.len(), rejected)
}

/// Runs the `me` probe `count` times at once.
async fn run_concurrently(client: &Arc<Client>, count: usize) -> Vec<ProbeResult> {
    let spec = Arc::new(me());
    let mut tasks = Vec::new();
    for _ in 0..count {
        let (client, spec) = (client.clone(), spec.clone());
        tasks.push(tokio::spawn(
            async move { probe::run(&client, &spec).await },
        ));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn stored_refresh_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(REFRESH_TOKEN_FILE))
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test]
async fn concurrent_probes_share_one_refresh() {
    let sim = start_sim(oauth_sim_options()).await;
    sim.set_fault(Fault::new(
        Some("/oauth/token"),
        FaultEffect::Latency(simulator::Delay::Fixed(Duration::from_millis(200))),
    ));
    let dir = tempfile::tempdir().unwrap();
    let session = oauth_session(&sim, dir.path());
    let client = oauth_client(&sim, session.clone());

    for result in run_concurrently(&client, 5).await {
        assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
        assert_eq!(result.attempts, 1);
    }
    assert_eq!(
        token_requests(&sim),
        (1, 0),
        "one refresh and no invalid_grant"
    );
    assert_eq!(sim.stats().status(401), 0);
    let stored = stored_refresh_token(dir.path());
    assert!(
        stored.starts_with("sim-refresh-"),
        "rotated token not stored: {stored:?}"
    );
    let status = session.status();
    assert_eq!(status.refreshes, 1);
    assert!(!status.refresh_failing);
    let expires_in = status.expires_in.unwrap();
    assert!(expires_in > Duration::from_secs(7100), "{expires_in:?}");
}

#[tokio::test]
async fn token_refreshed_ahead_of_expiry() {
    let sim = start_sim(oauth_sim_options()).await;
    sim.set_access_token_ttl(Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let session = oauth_session(&sim, dir.path());
    let client = oauth_client(&sim, session.clone());

    assert_eq!(probe::run(&client, &me()).await.outcome, Outcome::Ok);
    // 80 % of the 2 s lifetime has passed, the token has not expired yet.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(probe::run(&client, &me()).await.outcome, Outcome::Ok);
    assert_eq!(token_requests(&sim), (2, 0));
    assert_eq!(
        sim.stats().status(401),
        0,
        "no request carried an expired token"
    );
    assert_eq!(session.status().refreshes, 2);
    assert_eq!(session.status().refreshes_after_401, 0);
}

#[tokio::test]
async fn rejected_token_refreshed_once_and_retried() {
    let sim = start_sim(oauth_sim_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let session = oauth_session(&sim, dir.path());
    let client = oauth_client(&sim, session.clone());
    let revoked = client.bearer().await.unwrap();
    sim.invalidate_tokens([revoked.token.expose().to_owned()]);

    for result in run_concurrently(&client, 5).await {
        assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
        assert_eq!(result.status, Some(200));
        assert_eq!(result.attempts, 2);
    }
    assert_eq!(
        token_requests(&sim),
        (2, 0),
        "the first refresh and one after the 401s"
    );
    assert_eq!(sim.stats().status(401), 5);
    assert_eq!(session.status().refreshes_after_401, 1);
}

#[tokio::test]
async fn restart_uses_stored_refresh_token() {
    let sim = start_sim(oauth_sim_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let first = oauth_client(&sim, oauth_session(&sim, dir.path()));
    assert_eq!(probe::run(&first, &me()).await.outcome, Outcome::Ok);
    drop(first);

    // The configured token was spent by the first run; the stored one must be used.
    let restarted = oauth_client(&sim, oauth_session(&sim, dir.path()));
    let result = probe::run(&restarted, &me()).await;
    assert_eq!(result.outcome, Outcome::Ok, "{:?}", result.detail);
    assert_eq!(token_requests(&sim), (2, 0));
}

#[tokio::test]
async fn failing_refresh_is_exposed_and_backed_off() {
    let sim = start_sim(oauth_sim_options()).await;
    sim.set_fault(Fault::new(
        Some("/oauth/token"),
        FaultEffect::Status(vec![503]),
    ));
    let dir = tempfile::tempdir().unwrap();
    let session = oauth_session(&sim, dir.path());
    let client = oauth_client(&sim, session.clone());

    for _ in 0..3 {
        let result = probe::run(&client, &me()).await;
        assert_eq!(result.outcome, Outcome::ConnectError);
        assert_eq!(result.attempts, 0, "no API request without a token");
        let detail = result.detail.unwrap();
        assert!(detail.contains("503"), "{detail}");
    }
    assert_eq!(
        token_requests(&sim).0,
        1,
        "later probes wait for the backoff"
    );
    assert_eq!(sim.stats().path("/v2/me.json"), 0);
    let status = session.status();
    assert!(status.refresh_failing);
    assert!(status.last_error.unwrap().contains("503"));
    assert_eq!(status.expires_in, None);

    // Once the endpoint recovers and the backoff has passed, the next probe refreshes.
    sim.clear_faults();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(probe::run(&client, &me()).await.outcome, Outcome::Ok);
    assert!(!session.status().refresh_failing);
}

// --- secrets ------------------------------------------------------------------------------

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_logged() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start_sim(oauth_sim_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let session = oauth_session(&sim, dir.path());
    let client = oauth_client(&sim, session.clone());
    let mut secrets = vec![CLIENT_SECRET.to_owned(), FIRST_REFRESH_TOKEN.to_owned()];
    let mut details = Vec::new();

    // A refresh, then a 401 that refreshes and retries.
    details.push(probe::run(&client, &me()).await.detail);
    let first = client.bearer().await.unwrap();
    secrets.push(first.token.expose().to_owned());
    secrets.push(stored_refresh_token(dir.path()));
    sim.invalidate_tokens([first.token.expose().to_owned()]);
    details.push(probe::run(&client, &me()).await.detail);
    let second = client.bearer().await.unwrap();
    secrets.push(second.token.expose().to_owned());
    secrets.push(stored_refresh_token(dir.path()));

    // A 401 whose refresh is rejected with invalid_grant, and a 401 echoing the token.
    sim.invalidate_tokens([second.token.expose().to_owned()]);
    std::fs::write(dir.path().join(REFRESH_TOKEN_FILE), "spent-token-0000\n").unwrap();
    let spent = oauth_client(&sim, oauth_session(&sim, dir.path()));
    secrets.push("spent-token-0000".to_owned());
    details.push(probe::run(&spent, &me()).await.detail);
    details.push(probe::run(&client, &me()).await.detail);
    let status = session.status();
    details.push(status.last_error.clone());

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("access token refreshed"),
        "nothing was captured"
    );
    for secret in &secrets {
        assert!(
            !logged.contains(secret.as_str()),
            "a log line contains {secret:?}"
        );
        for detail in details.iter().flatten() {
            assert!(
                !detail.contains(secret.as_str()),
                "detail {detail:?} contains a secret"
            );
        }
    }
    let rejected = details
        .iter()
        .flatten()
        .any(|detail| detail.contains("invalid_grant"));
    assert!(rejected, "the rejected refresh is reported: {details:?}");
}

#[tokio::test]
async fn session_from_config_reads_secret_files() {
    let sim = start_sim(oauth_sim_options()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("client-secret");
    let refresh_file = dir.path().join("refresh-token");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    std::fs::write(&refresh_file, format!("{FIRST_REFRESH_TOKEN}\n")).unwrap();
    let file_source = |path: &Path| SecretSource {
        file: Some(path.to_owned()),
        ..SecretSource::default()
    };
    let oauth = OAuthConfig {
        token_url: format!("{}/oauth/token", sim.base_url()),
        client_id: "loftwatch-test".to_owned(),
        client_secret: file_source(&secret_file),
        refresh_token: file_source(&refresh_file),
        state_dir: None,
    };
    let state_dir = dir.path().join("state");
    let state_text = state_dir.display().to_string();
    let env = move |name: &str| (name == "STATE_DIRECTORY").then(|| state_text.clone());
    let session = OAuthSession::from_config(&oauth, "loftwatch-test/1", &env).unwrap();
    let client = oauth_client(&sim, Arc::new(session));

    assert_eq!(probe::run(&client, &me()).await.outcome, Outcome::Ok);
    assert!(state_dir.join(REFRESH_TOKEN_FILE).exists());
}
