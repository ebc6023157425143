//! The go-live checklist end to end: the `loftwatch` binary runs the shipped alerts.toml rules
//! (windows scaled down) against the simulator, and each rule's fault must produce exactly one
//! firing and one resolved email at a real SMTP server (aiosmtpd) and the same two transitions
//! as OTLP log records at a receiver that decodes the exporter's protobuf.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use loftwatch::simulator::{self, Delay, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use support::otlp::{OtlpReceiver, attribute_map};
use support::smtp::{DecodedMail, SmtpServer, decode_with_python};

const TOKEN: &str = "checklist-test-token-7f3a";
/// Scaled windows: the shipped 1m becomes this, and 5m becomes `LONG_WINDOW`.
const SHORT_WINDOW: &str = "5s";
const LONG_WINDOW: &str = "10s";
const KEEP_FIRING_FOR: &str = "2s";

/// A running `loftwatch run` with its simulator, SMTP server and OTLP receiver.
struct Harness {
    sim: SimulatorHandle,
    smtp: SmtpServer,
    otlp: OtlpReceiver,
    daemon: Child,
    folder: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
            .await
            .expect("start the simulator");
        let smtp = SmtpServer::start().await;
        let otlp = OtlpReceiver::start().await;
        let folder = tempfile::tempdir().expect("temporary folder");
        let config_path = folder.path().join("alerts.toml");
        let config = scaled_config(&sim.base_url(), smtp.port(), &otlp.endpoint());
        std::fs::write(&config_path, config).expect("write the configuration");
        let log = std::fs::File::create(folder.path().join("loftwatch.log")).expect("log file");
        let daemon = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("SALESLOFT_TOKEN", TOKEN)
            .env("RUST_LOG", "debug")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start loftwatch run");
        let harness = Harness {
            sim,
            smtp,
            otlp,
            daemon,
            folder,
        };
        // Both probes answered 200 at least twice: the daemon is up and the windows hold data.
        support::wait_until("first probe results", Duration::from_secs(30), || async {
            let stats = harness.sim.stats();
            let ok = stats.status(200);
            (ok >= 4).then_some(())
        })
        .await;
        harness
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("loftwatch.log")
    }

    /// Decoded emails whose subject names `rule`, in arrival order, with their arrival times.
    fn emails_for(&self, rule: &str) -> Vec<(DecodedMail, SystemTime)> {
        self.smtp
            .messages()
            .into_iter()
            .map(|mail| (decode_with_python(&mail.raw), mail.arrived))
            .filter(|(mail, _)| mail.subject.contains(&format!("] {rule} on ")))
            .collect()
    }

    async fn wait_for_email(&self, rule: &str, state: &str, timeout: Duration) -> DecodedMail {
        let tag = format!(" {state}] {rule} on ");
        support::wait_until(&format!("{state} email for {rule}"), timeout, || async {
            self.emails_for(rule)
                .into_iter()
                .map(|(mail, _)| mail)
                .find(|mail| mail.subject.contains(&tag))
        })
        .await
    }

    /// OTLP log records of `rule` as (state, severity text).
    fn otlp_transitions(&self, rule: &str) -> Vec<(String, String)> {
        self.otlp
            .log_records()
            .into_iter()
            .filter_map(|record| {
                let attributes = attribute_map(&record.attributes);
                (attributes.get("alert.rule").map(String::as_str) == Some(rule)).then(|| {
                    let state = attributes.get("alert.state").cloned().unwrap_or_default();
                    (state, record.severity_text.clone())
                })
            })
            .collect()
    }

    /// Sets a fault on one path until `clear_faults`.
    fn fault(&self, path: &str, effect: FaultEffect) {
        self.sim.set_fault(Fault::new(Some(path), effect));
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Builds the test configuration from the shipped alerts.toml: same probes and rules, aimed at
/// the simulator, with probes every 250 ms and windows scaled down.
fn scaled_config(base_url: &str, smtp_port: u16, otlp_endpoint: &str) -> String {
    let shipped = include_str!("../alerts.toml");
    let mut config: toml::Table = toml::from_str(shipped).expect("alerts.toml parses");
    let salesloft = config["salesloft"].as_table_mut().expect("[salesloft]");
    salesloft.insert("base_url".into(), base_url.into());
    let mut credential = toml::Table::new();
    credential.insert("env".into(), "SALESLOFT_TOKEN".into());
    salesloft.insert("credential".into(), credential.into());
    // The checklist's rule counts 429s an integration gets when it keeps calling.
    salesloft.insert("pause_on_429".into(), false.into());
    // The breaker would stop the 5xx bursts these rules need; the breaker has its own tests.
    salesloft.insert("breaker_failures".into(), 1000.into());
    let engine = config["engine"].as_table_mut().expect("[engine]");
    engine.insert("eval_interval".into(), "200ms".into());
    engine.insert("keep_firing_for".into(), KEEP_FIRING_FOR.into());
    for probe in config["probe"].as_array_mut().expect("[[probe]]") {
        let probe = probe.as_table_mut().expect("probe table");
        probe.insert("interval".into(), "250ms".into());
        probe.insert("timeout".into(), "5s".into());
    }
    for rule in config["rule"].as_array_mut().expect("[[rule]]") {
        let rule = rule.as_table_mut().expect("rule table");
        let scaled = match rule["window"].as_str() {
            Some("1m") => SHORT_WINDOW,
            Some("5m") | Some("3m") => LONG_WINDOW,
            other => panic!("unexpected window {other:?} in alerts.toml"),
        };
        rule.insert("window".into(), scaled.into());
    }
    let receivers: toml::Table = toml::from_str(&format!(
        "[email]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"loftwatch <loftwatch@example.test>\"\nto = [\"oncall@example.test\"]\n\
         timeout = \"5s\"\n[otlp]\nendpoint = \"{otlp_endpoint}\"\nexport_interval = \"500ms\"\n\
         timeout = \"2s\"\n"
    ))
    .expect("receivers parse");
    config.insert("receivers".into(), receivers.into());
    // Tests run in parallel, so each daemon's HTTP server takes a free port.
    let server: toml::Table = toml::from_str("listen = \"127.0.0.1:0\"").expect("server parses");
    config.insert("server".into(), server.into());
    toml::to_string(&config).expect("serialize the configuration")
}

/// Drives one rule through its fault and back, and checks the notifications it produced.
async fn fire_and_resolve(
    harness: &Harness,
    rule: &str,
    severity: &str,
    fault_for: Duration,
    also_fires: &[&str],
) {
    let firing = harness
        .wait_for_email(rule, "FIRING", Duration::from_secs(30))
        .await;
    assert!(
        firing
            .subject
            .starts_with(&format!("[{severity} FIRING] {rule} on ")),
        "{}",
        firing.subject
    );
    assert!(
        firing.body.contains(&format!("Severity:   {severity}")),
        "{}",
        firing.body
    );
    assert!(firing.body.contains("Value:      "), "{}", firing.body);
    assert!(firing.body.contains("Runbook:    "), "{}", firing.body);
    tokio::time::sleep(fault_for).await;
    harness.sim.clear_faults();
    let resolved = harness
        .wait_for_email(rule, "RESOLVED", Duration::from_secs(40))
        .await;
    assert!(
        resolved
            .subject
            .starts_with(&format!("[{severity} RESOLVED] {rule} on ")),
        "{}",
        resolved.subject
    );
    // Longer than a window plus the hysteresis, so a repeat would have arrived by now.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let emails = harness.emails_for(rule);
    let firing_count = emails
        .iter()
        .filter(|(mail, _)| mail.subject.contains(" FIRING] "))
        .count();
    let resolved_count = emails
        .iter()
        .filter(|(mail, _)| mail.subject.contains(" RESOLVED] "))
        .count();
    assert_eq!(firing_count, 1, "firing emails for {rule}: {emails:?}");
    assert_eq!(resolved_count, 1, "resolved emails for {rule}: {emails:?}");

    let transitions = support::wait_until(
        &format!("two OTLP log records for {rule}"),
        Duration::from_secs(15),
        || async {
            let transitions = harness.otlp_transitions(rule);
            (transitions.len() >= 2).then_some(transitions)
        },
    )
    .await;
    assert_eq!(
        transitions.len(),
        2,
        "OTLP transitions for {rule}: {transitions:?}"
    );
    assert_eq!(transitions[0].0, "firing");
    assert_eq!(transitions[1].0, "resolved");
    let firing_severity = match severity {
        "P1" => "ERROR",
        "P2" => "WARN",
        _ => "INFO",
    };
    assert_eq!(
        transitions[0].1, firing_severity,
        "log severity of a firing {severity}"
    );
    assert_eq!(transitions[1].1, "INFO", "log severity of a resolved alert");

    let unexpected: Vec<String> = harness
        .smtp
        .messages()
        .into_iter()
        .map(|mail| decode_with_python(&mail.raw).subject)
        .filter(|subject| {
            !subject.contains(&format!("] {rule} on "))
                && !also_fires
                    .iter()
                    .any(|other| subject.contains(&format!("] {other} on ")))
        })
        .collect();
    assert!(unexpected.is_empty(), "other alerts fired: {unexpected:?}");
    let log = harness.log_text();
    assert!(!log.contains(TOKEN), "the token appears in the log");
    assert!(!log.contains("panicked"), "loftwatch panicked:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_down_pages_within_one_second() {
    let harness = Harness::start().await;
    harness.fault("/v2/me.json", FaultEffect::Status(vec![401]));
    let firing = harness
        .wait_for_email("Auth down", "FIRING", Duration::from_secs(30))
        .await;
    assert!(
        firing
            .body
            .contains("Runbook:    Rotate the token, check the OAuth app."),
        "{}",
        firing.body
    );
    assert!(
        firing.subject.contains("Auth down on me"),
        "{}",
        firing.subject
    );

    let first_401 = harness
        .sim
        .requests()
        .into_iter()
        .find(|request| request.status == Some(401))
        .expect("the simulator served a 401");
    let (_, arrived) = harness
        .emails_for("Auth down")
        .into_iter()
        .next()
        .expect("firing email");
    let delay = arrived
        .duration_since(first_401.received_at)
        .unwrap_or_default();
    eprintln!("the P1 email was accepted {delay:?} after the first 401 was served");
    assert!(
        delay < Duration::from_secs(1),
        "the P1 email took {delay:?} after the first 401"
    );

    fire_and_resolve(&harness, "Auth down", "P1", Duration::from_secs(1), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_fire_and_resolve() {
    let harness = Harness::start().await;
    harness.fault("/v2/people.json", FaultEffect::Status(vec![503]));
    fire_and_resolve(&harness, "API errors", "P1", Duration::from_secs(1), &[]).await;
    let firing = harness
        .wait_for_email("API errors", "FIRING", Duration::from_secs(1))
        .await;
    assert!(
        firing
            .body
            .contains("Runbook:    Check status.salesloft.com."),
        "{}",
        firing.body
    );
    assert!(firing.body.contains("Threshold:  > 5"), "{}", firing.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_fires_and_resolves() {
    let harness = Harness::start().await;
    harness.fault("/v2/people.json", FaultEffect::Status(vec![429]));
    fire_and_resolve(&harness, "Rate limited", "P2", Duration::from_secs(1), &[]).await;
    let firing = harness
        .wait_for_email("Rate limited", "FIRING", Duration::from_secs(1))
        .await;
    assert!(
        firing.body.contains("Runbook:    Reduce request volume"),
        "{}",
        firing.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_latency_fires_and_resolves() {
    let harness = Harness::start().await;
    let delay = Delay::Fixed(Duration::from_millis(2500));
    harness.fault("/v2/me.json", FaultEffect::Latency(delay));
    fire_and_resolve(
        &harness,
        "High latency",
        "P3",
        Duration::from_secs(1),
        &["Latency over baseline"],
    )
    .await;
    let firing = harness
        .wait_for_email("High latency", "FIRING", Duration::from_secs(1))
        .await;
    assert!(
        firing.body.contains("Threshold:  > 2000 ms"),
        "{}",
        firing.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_over_baseline_fires_and_resolves() {
    let harness = Harness::start().await;
    let delay = Delay::Fixed(Duration::from_millis(450));
    harness.fault("/v2/me.json", FaultEffect::Latency(delay));
    fire_and_resolve(
        &harness,
        "Latency over baseline",
        "P3",
        Duration::from_secs(1),
        &[],
    )
    .await;
    let firing = harness
        .wait_for_email("Latency over baseline", "FIRING", Duration::from_secs(1))
        .await;
    assert!(
        firing.body.contains("Runbook:    Capacity planning"),
        "{}",
        firing.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_receives_request_durations() {
    let harness = Harness::start().await;
    let points = harness
        .otlp
        .wait_for_histogram(
            "http.client.request.duration",
            Duration::from_secs(20),
            |points| points.iter().any(|point| point.count > 0),
        )
        .await;
    let point = points
        .iter()
        .find(|point| point.count > 0)
        .expect("a point with samples");
    let attributes = attribute_map(&point.attributes);
    assert_eq!(
        attributes.get("http.request.method").map(String::as_str),
        Some("GET")
    );
    assert_eq!(
        attributes.get("server.address").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert!(attributes.contains_key("loftwatch.probe"), "{attributes:?}");
    assert!(
        !attributes.contains_key("error.type"),
        "ok results carry no error.type"
    );

    harness.fault("/v2/me.json", FaultEffect::Status(vec![503]));
    let points = harness
        .otlp
        .wait_for_histogram(
            "http.client.request.duration",
            Duration::from_secs(20),
            |points| {
                points.iter().any(|point| {
                    attribute_map(&point.attributes)
                        .get("error.type")
                        .map(String::as_str)
                        == Some("http_5xx")
                })
            },
        )
        .await;
    let failed = points
        .iter()
        .find(|point| attribute_map(&point.attributes).contains_key("error.type"))
        .expect("a point with error.type");
    let attributes = attribute_map(&failed.attributes);
    assert_eq!(
        attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("503")
    );
    assert_eq!(
        attributes.get("loftwatch.probe").map(String::as_str),
        Some("me")
    );
}
