//! The Alertmanager and webhook receivers against real servers: a real Alertmanager (the Debian
//! `prometheus-alertmanager` package) fed by the `loftwatch` binary while the in-process
//! simulator responds with 401, a signed webhook captured by a local HTTP server, the heartbeat,
//! the fallback and the receiver metrics on `/metrics`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use loftwatch::alert::{Transition, TransitionKind};
use loftwatch::config::{
    AlertmanagerConfig, FallbackConfig, HeartbeatConfig, ReceiverName, Receivers, SecretSource,
    WebhookConfig,
};
use loftwatch::notify::{Backoff, Notifier, NotifierOptions, ReceiverKind};
use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use serde_json::Value;
use sha2::Sha256;
use support::{unused_port, wait_until};
use tokio::time::Instant;

const TOKEN: &str = "receivers-test-token-5d1e";
const SECRET: &str = "webhook-test-secret-8a7f";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// One request captured by [`Capture`].
#[derive(Debug, Clone)]
struct Captured {
    path: String,
    signature: Option<String>,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct CaptureState {
    requests: Vec<Captured>,
    /// Requests still to reject with 503 before responding with 200.
    failures_left: usize,
    /// Whether every request gets a 503.
    down: bool,
}

/// An HTTP server on 127.0.0.1 that records every `POST` and responds with 200, or 503 while set
/// to fail.
#[derive(Clone)]
struct Capture {
    state: Arc<Mutex<CaptureState>>,
    addr: SocketAddr,
}

async fn capture_handler(
    State(state): State<Arc<Mutex<CaptureState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut state = state.lock().unwrap();
    let signature = headers
        .get("x-loftwatch-signature")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    state.requests.push(Captured {
        path: uri.path().to_owned(),
        signature,
        body,
        at: Instant::now(),
    });
    if state.down {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if state.failures_left > 0 {
        state.failures_left -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

impl Capture {
    async fn start(failures: usize, down: bool) -> Capture {
        let state = Arc::new(Mutex::new(CaptureState {
            failures_left: failures,
            down,
            ..CaptureState::default()
        }));
        let app = axum::Router::new()
            .fallback(axum::routing::post(capture_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { state, addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Captured> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Returns the JSON bodies of every request, failed ones included, in arrival order.
    fn bodies(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .map(|request| serde_json::from_slice(&request.body).expect("JSON body"))
            .collect()
    }
}

/// Checks the `X-Loftwatch-Signature` of a captured request with an independent HMAC.
fn assert_signed(request: &Captured) {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(request.signature.as_deref(), Some(expected.as_str()));
}

/// A running Alertmanager with clustering off and its data in a temporary folder.
struct Alertmanager {
    child: Child,
    url: String,
    _folder: tempfile::TempDir,
}

impl Alertmanager {
    async fn start() -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: install the Debian package prometheus-alertmanager \
             (scripts/test does)"
        );
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: none\nreceivers:\n  - name: none\n",
        )
        .unwrap();
        let port = unused_port();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                folder.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/api/v2/status");
        wait_until("alertmanager to serve", Duration::from_secs(20), || async {
            reqwest::get(&status)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        Alertmanager {
            child,
            url,
            _folder: folder,
        }
    }

    /// Returns the alerts Alertmanager serves, which leaves out those whose `endsAt` passed.
    async fn alerts(&self) -> Vec<Value> {
        let response = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .expect("GET /api/v2/alerts");
        let text = response.text().await.expect("alerts body");
        serde_json::from_str(&text).expect("alerts JSON")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `loftwatch run` against a simulator with the `Auth down` rule and `receivers`
/// (TOML tables) appended to its configuration.
struct Daemon {
    sim: SimulatorHandle,
    child: Child,
    server: SocketAddr,
    folder: tempfile::TempDir,
}

impl Daemon {
    async fn start(receivers: &str) -> Daemon {
        let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
            .await
            .expect("start the simulator");
        let folder = tempfile::tempdir().unwrap();
        let server: SocketAddr = format!("127.0.0.1:{}", unused_port()).parse().unwrap();
        let config = format!(
            r#"
[salesloft]
base_url = "{base_url}"
credential = {{ env = "SALESLOFT_TOKEN" }}
location = "test"
retry_attempts = 1

[engine]
eval_interval = "200ms"
keep_firing_for = "0s"

[server]
listen = "{server}"

[[probe]]
name = "me"
path = "/v2/me.json"
interval = "200ms"
timeout = "1s"

[[rule]]
name = "Auth down"
severity = "P1"
expr = "count(status == 401) > 0"
window = "1s"
runbook = "Rotate the token."

{receivers}
"#,
            base_url = sim.base_url(),
        );
        let path = folder.path().join("loftwatch.toml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(folder.path().join("loftwatch.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
            .args(["run", "--config"])
            .arg(&path)
            .env("SALESLOFT_TOKEN", TOKEN)
            .env("WEBHOOK_SECRET", SECRET)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start loftwatch run");
        Daemon {
            sim,
            child,
            server,
            folder,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("loftwatch.log")
    }

    fn fail_auth(&self) {
        self.sim.set_fault(Fault::new(
            Some("/v2/me.json"),
            FaultEffect::Status(vec![401]),
        ));
    }

    async fn metrics(&self) -> Option<String> {
        let response = reqwest::get(format!("http://{}/metrics", self.server))
            .await
            .ok()?;
        response.text().await.ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            eprintln!("loftwatch log:\n{log}");
        }
    }
}

fn auth_down(alerts: &[Value]) -> Option<Value> {
    alerts
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "Auth down")
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_shows_firing_then_resolved() {
    let am = Alertmanager::start().await;
    let daemon = Daemon::start(&format!(
        "[receivers.alertmanager]\nurl = \"{}\"\nresend_interval = \"1s\"\n",
        am.url
    ))
    .await;
    daemon.fail_auth();

    let alert = wait_until(
        "Auth down in alertmanager",
        Duration::from_secs(20),
        || async { auth_down(&am.alerts().await) },
    )
    .await;
    let labels = &alert["labels"];
    assert_eq!(labels["severity"], "P1");
    assert_eq!(labels["probe"], "me");
    assert_eq!(labels["location"], "test");
    assert_eq!(labels["instance"], "test");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["annotations"]["runbook"], "Rotate the token.");
    assert!(alert["annotations"]["summary"].is_string());

    // endsAt is four resend intervals ahead, so the alert still being served 6 s later shows
    // that loftwatch posted it again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let alert = auth_down(&am.alerts().await).expect("firing alert kept by resends");
    assert_eq!(alert["status"]["state"], "active");

    daemon.sim.clear_faults();
    wait_until("Auth down to resolve", Duration::from_secs(20), || async {
        match auth_down(&am.alerts().await) {
            None => Some(()),
            Some(alert) => {
                let ends_at = alert["endsAt"].as_str().unwrap_or_default().to_owned();
                let ended = humantime::parse_rfc3339_weak(ends_at.trim_end_matches('Z'))
                    .is_ok_and(|ends| ends <= SystemTime::now());
                ended.then_some(())
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_signed_and_metrics_exposed() {
    // The first post gets a 503, so the error metrics have a failure to show.
    let hook = Capture::start(1, false).await;
    let daemon = Daemon::start(&format!(
        "[receivers.webhook]\nurl = \"{}/hook\"\nsecret = {{ env = \"WEBHOOK_SECRET\" }}\n",
        hook.url()
    ))
    .await;
    daemon.fail_auth();
    wait_until("firing payload", Duration::from_secs(20), || async {
        (hook.requests().len() >= 2).then_some(())
    })
    .await;
    daemon.sim.clear_faults();
    wait_until("resolved payload", Duration::from_secs(20), || async {
        (hook.requests().len() >= 3).then_some(())
    })
    .await;
    // Nothing else follows: no duplicate and no resend.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = hook.requests();
    assert_eq!(
        requests.len(),
        3,
        "one retried firing post and one resolved post"
    );
    for request in &requests {
        assert_eq!(request.path, "/hook");
        assert_signed(request);
    }
    let bodies = hook.bodies();
    assert_eq!(bodies[0], bodies[1], "the retry resends the same payload");
    let firing = &bodies[1];
    let resolved = &bodies[2];
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(firing["receiver"], "loftwatch");
    assert!(firing["groupKey"].is_string());
    assert_eq!(firing["groupLabels"]["alertname"], "Auth down");
    assert_eq!(firing["commonLabels"]["probe"], "me");
    assert_eq!(firing["commonAnnotations"]["runbook"], "Rotate the token.");
    assert!(firing["externalURL"].is_string());
    let firing_alert = &firing["alerts"][0];
    let resolved_alert = &resolved["alerts"][0];
    assert_eq!(firing["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(firing_alert["status"], "firing");
    assert_eq!(firing_alert["labels"]["severity"], "P1");
    assert_eq!(firing_alert["labels"]["location"], "test");
    assert_eq!(firing_alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(resolved_alert["status"], "resolved");
    assert_ne!(resolved_alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(firing_alert["startsAt"], resolved_alert["startsAt"]);
    assert_eq!(firing_alert["fingerprint"], resolved_alert["fingerprint"]);

    let text = wait_until("webhook metrics", Duration::from_secs(10), || async {
        let text = daemon.metrics().await?;
        text.contains("loftwatch_notifications_sent_total{receiver=\"webhook\",loftwatch_location=\"test\"} 2")
            .then_some(text)
    })
    .await;
    assert!(text.contains(
        "loftwatch_notification_errors_total{receiver=\"webhook\",reason=\"http_5xx\",\
         loftwatch_location=\"test\"} 1"
    ));
    assert!(text.contains(
        "loftwatch_notification_errors_total{receiver=\"webhook\",reason=\"timeout\",\
         loftwatch_location=\"test\"} 0"
    ));
    assert!(text.contains(
        "loftwatch_notification_duration_seconds_count{receiver=\"webhook\",\
         loftwatch_location=\"test\"} 3"
    ));
    assert!(text.contains("loftwatch_notification_duration_seconds_bucket{le=\"+Inf\""));
}

fn transition(kind: TransitionKind) -> Transition {
    let sample = support::sample_transition(kind);
    Transition {
        runbook: Arc::from("https://runbooks.example.test/auth"),
        firing_since: sample.at,
        ..sample
    }
}

fn webhook_config(url: String, fallback: Option<FallbackConfig>) -> WebhookConfig {
    WebhookConfig {
        url,
        secret: Some(SecretSource {
            env: Some("WEBHOOK_SECRET".to_owned()),
            ..SecretSource::default()
        }),
        timeout: Duration::from_secs(2),
        external_url: None,
        fallback,
    }
}

fn options() -> NotifierOptions {
    NotifierOptions {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            max_attempts: 50,
        },
        queue_capacity: 16,
    }
}

fn secrets(name: &str) -> Option<String> {
    (name == "WEBHOOK_SECRET").then(|| SECRET.to_owned())
}

#[tokio::test]
async fn heartbeat_arrives_every_interval() {
    let hook = Capture::start(0, false).await;
    let receivers = Receivers {
        webhook: Some(webhook_config(hook.url(), None)),
        heartbeat: Some(HeartbeatConfig {
            receiver: ReceiverName::Webhook,
            interval: Duration::from_millis(300),
        }),
        ..Receivers::default()
    };
    let started = Instant::now();
    let notifier = Notifier::start_with(&receivers, &secrets, "eu-west", None, options()).unwrap();
    wait_until("four heartbeats", Duration::from_secs(10), || async {
        (hook.requests().len() >= 4).then_some(())
    })
    .await;
    let requests = hook.requests();
    let first = requests[0].at.duration_since(started);
    assert!(
        first >= Duration::from_millis(280),
        "first heartbeat after {first:?}"
    );
    for pair in requests.windows(2).take(3) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(200), "gap {gap:?}");
        assert!(gap <= Duration::from_millis(600), "gap {gap:?}");
    }
    for (index, body) in hook.bodies().iter().take(4).enumerate() {
        let alert = &body["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "LoftwatchHeartbeat");
        assert_eq!(alert["labels"]["location"], "eu-west");
        assert_eq!(alert["annotations"]["heartbeat"], (index + 1).to_string());
    }
    assert_signed(&requests[0]);
    notifier.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn fallback_takes_over_failing_receiver() {
    let hook = Capture::start(0, true).await;
    let am = Capture::start(0, false).await;
    let fallback = FallbackConfig {
        receiver: ReceiverName::Alertmanager,
        after: Duration::from_millis(400),
    };
    let receivers = Receivers {
        webhook: Some(webhook_config(
            format!("{}/hook", hook.url()),
            Some(fallback),
        )),
        alertmanager: Some(AlertmanagerConfig {
            url: am.url(),
            resend_interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(2),
            generator_url: None,
            fallback: None,
        }),
        ..Receivers::default()
    };
    let notifier = Notifier::start_with(&receivers, &secrets, "eu-west", None, options()).unwrap();
    let sent_at = Instant::now();
    notifier.send(transition(TransitionKind::Firing));

    // Alertmanager gets the transition once directly and once more from the webhook's
    // fallback, no earlier than fallback_after.
    wait_until("the handed-over post", Duration::from_secs(10), || async {
        (am.requests().len() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posts = am.requests();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|post| post.path == "/api/v2/alerts"));
    let handed_at = posts[1].at.duration_since(sent_at);
    assert!(
        handed_at >= Duration::from_millis(400),
        "handed over after {handed_at:?}"
    );
    let bodies = am.bodies();
    assert_eq!(bodies[1][0]["labels"]["alertname"], "Auth down");
    assert_eq!(
        bodies[1][0]["annotations"]["runbook_url"],
        "https://runbooks.example.test/auth"
    );

    let webhook = notifier.counts(ReceiverKind::Webhook).unwrap();
    assert_eq!(webhook.handed_over, 1);
    assert_eq!(webhook.sent, 0);
    assert_eq!(webhook.failed, 0);
    assert!(webhook.attempt_errors >= 2);
    let alertmanager = notifier.counts(ReceiverKind::Alertmanager).unwrap();
    assert_eq!(alertmanager.sent, 2);
    // The webhook is still failing past fallback_after, so the next notification goes to the
    // fallback after a single attempt.
    let before = hook.requests().len();
    notifier.send(transition(TransitionKind::Resolved));
    wait_until("the resolved hand-over", Duration::from_secs(5), || async {
        (am.requests().len() >= 4).then_some(())
    })
    .await;
    assert_eq!(hook.requests().len(), before + 1);
    notifier.shutdown(Duration::from_secs(1)).await;
}
