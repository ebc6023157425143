//! Notifications against real servers: aiosmtpd for email, an OTLP/HTTP receiver for logs and
//! metrics, a closed port and a black hole for failures.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loftwatch::alert::{Severity, Transition, TransitionKind};
use loftwatch::config::{
    EmailConfig, OtlpConfig, ProbeSpec, Receivers, Schedule, SecretSource, SmtpTls,
};
use loftwatch::notify::{
    Backoff, Notifier, NotifierOptions, NotifyError, ReceiverKind, render_message, subject,
};
use loftwatch::probe::{Outcome, ProbeResult, RateLimit};
use loftwatch::telemetry::Metrics;
use support::otlp::{BlackHole, OtlpReceiver, attribute_map};
use support::smtp::{PYTHON, SmtpServer, decode_with_python};
use support::unused_port;
use tokio::time::Instant;

fn no_env(_name: &str) -> Option<String> {
    None
}

fn transition(kind: TransitionKind) -> Transition {
    support::sample_transition(kind)
}

fn non_ascii_transition() -> Transition {
    let mut transition = transition(TransitionKind::Firing);
    transition.rule = Arc::from("応答遅延 — 🐢 p99 über Schwelle");
    transition.probe = Arc::from("facturation-économie");
    transition.severity = Severity::P3;
    transition.value_text = "2\u{a0}450\u{a0}ms".to_owned();
    transition.threshold_text = "> 2\u{a0}000\u{a0}ms".to_owned();
    transition.summary = "応答遅延 — facturation-économie: p99 2\u{a0}450\u{a0}ms 🐢".to_owned();
    transition.runbook = Arc::from("vérifier le statut — 状態を確認 📈");
    transition
}

fn email_config(host: &str, port: u16, tls: SmtpTls) -> EmailConfig {
    EmailConfig {
        host: host.to_owned(),
        port,
        tls,
        ca_file: None,
        username: None,
        password: None,
        from: "loftwatch <loftwatch@example.test>".to_owned(),
        to: vec!["oncall@example.test".to_owned()],
        timeout: Duration::from_secs(5),
        fallback: None,
    }
}

fn otlp_config(endpoint: String, timeout: Duration) -> OtlpConfig {
    OtlpConfig {
        endpoint,
        export_interval: Duration::from_millis(200),
        timeout,
    }
}

fn fast_options() -> NotifierOptions {
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        max_attempts: 3,
    };
    NotifierOptions {
        backoff,
        queue_capacity: 16,
    }
}

fn start(receivers: &Receivers) -> Notifier {
    Notifier::start_with(receivers, &no_env, "eu-west", None, fast_options())
        .expect("notifier starts")
}

#[tokio::test]
async fn email_firing_and_resolved_delivered() {
    let server = SmtpServer::start().await;
    let receivers = Receivers {
        email: Some(email_config("127.0.0.1", server.port(), SmtpTls::None)),
        otlp: None,
        ..Receivers::default()
    };
    let notifier = start(&receivers);
    notifier.send(transition(TransitionKind::Firing));
    notifier.send(transition(TransitionKind::Resolved));

    let messages = server.wait_for_messages(2, Duration::from_secs(10)).await;
    let firing = decode_with_python(&messages[0].raw);
    let resolved = decode_with_python(&messages[1].raw);
    assert_eq!(
        firing.subject,
        "[P1 FIRING] Auth down on me: 3 (threshold > 0 in 1m)"
    );
    assert_eq!(
        resolved.subject,
        "[P1 RESOLVED] Auth down on me: 3 (threshold > 0 in 1m), fired for 2m 5s"
    );
    assert_eq!(firing.to, "oncall@example.test");
    assert_eq!(firing.from, "loftwatch <loftwatch@example.test>");
    assert_eq!(firing.content_type, "text/plain");
    assert_eq!(firing.charset.as_deref(), Some("utf-8"));
    assert_eq!(firing.mime_version.as_deref(), Some("1.0"));
    assert_eq!(
        firing.message_id.as_deref(),
        Some("<auth-down=2Fme.1.firing.1780000000000@example.test>")
    );
    assert_eq!(
        resolved.message_id.as_deref(),
        Some("<auth-down=2Fme.1.resolved.1780000000000@example.test>")
    );
    assert_eq!(firing.date.as_deref(), Some("2026-05-28T20:26:40+00:00"));
    assert_eq!(firing.defects, Vec::<String>::new());
    assert_eq!(resolved.defects, Vec::<String>::new());
    for line in [
        "Auth down on me: 3 responses 401 in 1m",
        "Severity:   P1",
        "State:      FIRING",
        "Alert:      Auth down",
        "Probe:      me",
        "Value:      3",
        "Threshold:  > 0",
        "Window:     1m",
        "Runbook:    rotate token, check the OAuth app",
        "Location:   eu-west",
        "Time:       2026-05-28T20:26:40Z",
    ] {
        assert!(
            firing.body.contains(line),
            "firing body lacks {line:?}:\n{}",
            firing.body
        );
    }
    assert!(
        resolved.body.contains("State:      RESOLVED"),
        "{}",
        resolved.body
    );
    assert!(
        resolved.body.contains("Fired for:  2m 5s"),
        "{}",
        resolved.body
    );
    assert!(
        resolved.body.contains("Fired at:   2026-05-28T20:24:35Z"),
        "{}",
        resolved.body
    );

    let counts = notifier.shutdown(Duration::from_secs(2)).await;
    assert_eq!(counts[0].0, ReceiverKind::Email);
    assert_eq!(counts[0].1.sent, 2);
    assert_eq!(counts[0].1.failed, 0);
}

/// Checks the raw `Subject` header with Python: 7-bit ASCII, lines of at most 76 characters,
/// encoded-words of at most 75 characters that each decode as UTF-8 on their own.
const SUBJECT_CHECK_SCRIPT: &str = r#"
import base64, json, quopri, re, sys
raw = sys.stdin.buffer.read()
head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
lines = head.split("\r\n")
start = next(i for i, line in enumerate(lines) if line.lower().startswith("subject:"))
end = start + 1
while end < len(lines) and lines[end][:1] in (" ", "\t"):
    end += 1
subject_lines = lines[start:end]
problems = []
for line in subject_lines:
    if len(line) > 76:
        problems.append(f"line of {len(line)} characters: {line}")
words = re.findall(r"=\?([^?]+)\?([bBqQ])\?([^?]*)\?=", "\n".join(subject_lines))
for charset, encoding, text in words:
    word = f"=?{charset}?{encoding}?{text}?="
    if len(word) > 75:
        problems.append(f"encoded-word of {len(word)} characters: {word}")
    if encoding in "bB":
        data = base64.b64decode(text)
    else:
        data = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
    try:
        data.decode(charset)
    except UnicodeDecodeError as error:
        problems.append(f"encoded-word {word} does not decode alone: {error}")
json.dump({"lines": subject_lines, "words": len(words), "problems": problems}, sys.stdout)
"#;

#[tokio::test]
async fn non_ascii_subject_decodes_exactly() {
    let transition = non_ascii_transition();
    let from = "loftwatch@example.test".parse().unwrap();
    let to = vec!["oncall@example.test".parse().unwrap()];
    let raw = render_message(&transition, &from, &to)
        .expect("message renders")
        .formatted();
    assert!(raw.is_ascii(), "the rendered message must be 7-bit ASCII");

    let output = std::process::Command::new(PYTHON)
        .args(["-c", SUBJECT_CHECK_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&raw)?;
            child.wait_with_output()
        })
        .expect("python checks the subject");
    let check: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        check["problems"],
        serde_json::json!([]),
        "subject lines: {}",
        check["lines"]
    );
    assert!(
        check["words"].as_u64().unwrap() >= 2,
        "expected encoded-words: {}",
        check["lines"]
    );

    let local = decode_with_python(&raw);
    assert_eq!(local.subject, subject(&transition));
    assert_eq!(local.defects, Vec::<String>::new());

    let server = SmtpServer::start().await;
    let receivers = Receivers {
        email: Some(email_config("localhost", server.port(), SmtpTls::None)),
        otlp: None,
        ..Receivers::default()
    };
    let notifier = start(&receivers);
    notifier.send(transition.clone());
    let messages = server.wait_for_messages(1, Duration::from_secs(10)).await;
    let delivered = decode_with_python(&messages[0].raw);
    assert_eq!(delivered.subject, subject(&transition));
    assert_eq!(
        delivered.body.trim_end(),
        loftwatch::notify::body(&transition)
    );
    assert_eq!(delivered.charset.as_deref(), Some("utf-8"));
    let encoding = delivered
        .transfer_encoding
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        encoding == "quoted-printable" || encoding == "base64",
        "unexpected transfer encoding {encoding:?}"
    );
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn plain_smtp_to_remote_host_rejected() {
    for host in ["smtp.example.com", "192.0.2.10", "::"] {
        let receivers = Receivers {
            email: Some(email_config(host, 25, SmtpTls::None)),
            otlp: None,
            ..Receivers::default()
        };
        let result = Notifier::start(&receivers, &no_env, "eu-west", None);
        let error = result
            .err()
            .unwrap_or_else(|| panic!("plain smtp to {host} was accepted"));
        assert!(
            matches!(error, NotifyError::PlainSmtpNotLoopback { .. }),
            "unexpected error for {host}: {error}"
        );
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(error.to_string().contains(host), "{error}");
    }
}

#[tokio::test]
async fn missing_smtp_password_rejected() {
    let mut config = email_config("127.0.0.1", 2525, SmtpTls::None);
    config.username = Some("loftwatch".to_owned());
    config.password = Some(SecretSource {
        env: Some("LOFTWATCH_SMTP_PASSWORD".to_owned()),
        ..Default::default()
    });
    let receivers = Receivers {
        email: Some(config),
        otlp: None,
        ..Receivers::default()
    };
    let error = Notifier::start(&receivers, &no_env, "eu-west", None)
        .err()
        .expect("rejected");
    assert!(matches!(error, NotifyError::Secret(_)), "{error}");
    assert!(
        error.to_string().contains("LOFTWATCH_SMTP_PASSWORD"),
        "{error}"
    );
}

#[tokio::test]
async fn dead_smtp_port_does_not_delay_otlp() {
    let collector = OtlpReceiver::start().await;
    let receivers = Receivers {
        email: Some(email_config("127.0.0.1", unused_port(), SmtpTls::None)),
        otlp: Some(otlp_config(collector.endpoint(), Duration::from_secs(5))),
        ..Receivers::default()
    };
    let notifier = start(&receivers);

    let before = Instant::now();
    notifier.send(transition(TransitionKind::Firing));
    assert!(
        before.elapsed() < Duration::from_millis(100),
        "send took {:?}",
        before.elapsed()
    );

    let records = collector
        .wait_for_log_records(1, Duration::from_secs(5))
        .await;
    assert_eq!(records.len(), 1);
    support::wait_until("email to give up", Duration::from_secs(5), || async {
        let counts = notifier.counts(ReceiverKind::Email)?;
        (counts.failed == 1).then_some(())
    })
    .await;
    let email = notifier.counts(ReceiverKind::Email).unwrap();
    assert_eq!(email.attempt_errors, 3);
    assert_eq!(email.sent, 0);
    assert_eq!(email.pending, 0);
    // The collector stores the record before the exporter's response reaches loftwatch, so
    // the counter can lag behind the record by a moment.
    support::wait_until(
        "otlp to count the record",
        Duration::from_secs(5),
        || async {
            let counts = notifier.counts(ReceiverKind::Otlp)?;
            (counts.sent == 1).then_some(())
        },
    )
    .await;
    let otlp = notifier.counts(ReceiverKind::Otlp).unwrap();
    assert_eq!(otlp.sent, 1);
    assert_eq!(otlp.failed, 0);
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn black_holed_otlp_does_not_delay_email() {
    let black_hole = BlackHole::start().await;
    let server = SmtpServer::start().await;
    let receivers = Receivers {
        email: Some(email_config("127.0.0.1", server.port(), SmtpTls::None)),
        otlp: Some(otlp_config(black_hole.endpoint(), Duration::from_secs(30))),
        ..Receivers::default()
    };
    let notifier = start(&receivers);

    let before = Instant::now();
    for _ in 0..3 {
        notifier.send(transition(TransitionKind::Firing));
    }
    assert!(
        before.elapsed() < Duration::from_millis(100),
        "send took {:?}",
        before.elapsed()
    );

    let started = Instant::now();
    server.wait_for_messages(3, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "email took {:?}",
        started.elapsed()
    );
    let otlp = notifier.counts(ReceiverKind::Otlp).unwrap();
    assert_eq!(otlp.sent, 0);

    let before = Instant::now();
    let counts = notifier.shutdown(Duration::from_secs(1)).await;
    assert!(
        before.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        before.elapsed()
    );
    let email = counts
        .iter()
        .find(|(kind, _)| *kind == ReceiverKind::Email)
        .unwrap()
        .1;
    assert_eq!(email.sent, 3);
}

#[tokio::test]
async fn otlp_log_records_carry_attributes() {
    let collector = OtlpReceiver::start().await;
    let receivers = Receivers {
        email: None,
        otlp: Some(otlp_config(collector.endpoint(), Duration::from_secs(5))),
        ..Receivers::default()
    };
    let notifier = start(&receivers);
    let mut warning = transition(TransitionKind::Firing);
    warning.alert_id = "rate-limited/people".to_owned();
    warning.severity = Severity::P2;
    notifier.send(transition(TransitionKind::Firing));
    notifier.send(transition(TransitionKind::Resolved));
    notifier.send(warning);

    let records = collector
        .wait_for_log_records(3, Duration::from_secs(5))
        .await;
    let firing = &records[0];
    assert_eq!(firing.severity_number, 17);
    assert_eq!(firing.severity_text, "ERROR");
    assert_eq!(firing.time_unix_nano, 1_780_000_000 * 1_000_000_000);
    let body = support::otlp::any_value_text(firing.body.as_ref());
    assert_eq!(body, "Auth down on me: 3 responses 401 in 1m");
    let attributes = attribute_map(&firing.attributes);
    let expected: BTreeMap<String, String> = [
        ("alert.id", "auth-down/me"),
        ("alert.rule", "Auth down"),
        ("alert.state", "firing"),
        ("alert.severity", "P1"),
        ("loftwatch.probe", "me"),
        ("loftwatch.location", "eu-west"),
        ("alert.value", "3"),
        ("alert.threshold", "> 0"),
        ("alert.window", "1m"),
        ("alert.runbook", "rotate token, check the OAuth app"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(attributes, expected);

    let resolved = &records[1];
    assert_eq!(resolved.severity_text, "INFO");
    assert_eq!(
        attribute_map(&resolved.attributes)["alert.state"],
        "resolved"
    );
    assert_eq!(records[2].severity_text, "WARN");
    assert_eq!(records[2].severity_number, 13);
    assert_eq!(collector.rejected(), Vec::<String>::new());

    let counts = notifier.shutdown(Duration::from_secs(2)).await;
    assert_eq!(counts[0].1.sent, 3);
}

/// An OTLP/HTTP collector on 127.0.0.1 that replies 503 to its first `failures` exports and
/// 200 with an empty body to the rest, and counts both.
struct FlakyCollector {
    port: u16,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyCollector {
    async fn start(failures: usize) -> FlakyCollector {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _peer)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the head and the body that its content-length announces.
                loop {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head_end]
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse().unwrap_or(0));
                    if request.len() >= head_end + 4 + length {
                        break;
                    }
                }
                let seen = counter.fetch_add(1, Ordering::SeqCst);
                let status = if seen < failures {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\n\
                     content-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        FlakyCollector {
            port,
            requests,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FlakyCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn otlp_export_retried_after_failure() {
    let collector = FlakyCollector::start(1).await;
    let receivers = Receivers {
        email: None,
        otlp: Some(otlp_config(collector.endpoint(), Duration::from_secs(5))),
        ..Receivers::default()
    };
    let notifier = start(&receivers);
    notifier.send(transition(TransitionKind::Firing));

    support::wait_until("otlp to deliver", Duration::from_secs(10), || async {
        let counts = notifier.counts(ReceiverKind::Otlp)?;
        (counts.sent == 1).then_some(())
    })
    .await;
    let otlp = notifier.counts(ReceiverKind::Otlp).unwrap();
    assert_eq!(otlp.attempt_errors, 1);
    assert_eq!(otlp.failed, 0);
    assert_eq!(otlp.pending, 0);
    assert_eq!(collector.requests(), 2);
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn otlp_export_fails_after_retries() {
    let collector = FlakyCollector::start(usize::MAX).await;
    let receivers = Receivers {
        email: None,
        otlp: Some(otlp_config(collector.endpoint(), Duration::from_secs(5))),
        ..Receivers::default()
    };
    let notifier = start(&receivers);
    notifier.send(transition(TransitionKind::Firing));

    support::wait_until("otlp to give up", Duration::from_secs(10), || async {
        let counts = notifier.counts(ReceiverKind::Otlp)?;
        (counts.failed == 1).then_some(())
    })
    .await;
    let otlp = notifier.counts(ReceiverKind::Otlp).unwrap();
    assert_eq!(otlp.sent, 0);
    assert_eq!(otlp.attempt_errors, 3);
    assert_eq!(otlp.pending, 0);
    assert_eq!(collector.requests(), 3);
    notifier.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn file_sink_writes_eml_and_json() {
    let folder = tempfile::tempdir().unwrap();
    let sink = folder.path().join("notifications");
    let notifier = Notifier::start_with(
        &Receivers::default(),
        &no_env,
        "eu-west",
        Some(sink.clone()),
        fast_options(),
    )
    .expect("notifier starts");
    notifier.send(transition(TransitionKind::Firing));
    notifier.send(non_ascii_transition());
    let counts = notifier.shutdown(Duration::from_secs(5)).await;
    assert_eq!(counts[0].1.sent, 2);

    let mut names: Vec<String> = std::fs::read_dir(&sink)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "000001-auth-down-me-firing.eml",
            "000001-auth-down-me-firing.json",
            "000002-応答遅延-p99-über-schwelle-facturation-économie-firing.eml",
            "000002-応答遅延-p99-über-schwelle-facturation-économie-firing.json",
        ]
    );
    let eml = std::fs::read(sink.join("000001-auth-down-me-firing.eml")).unwrap();
    let decoded = decode_with_python(&eml);
    assert_eq!(
        decoded.subject,
        "[P1 FIRING] Auth down on me: 3 (threshold > 0 in 1m)"
    );
    assert_eq!(decoded.mime_version.as_deref(), Some("1.0"));
    let message_id = decoded.message_id.expect("the .eml file has a Message-ID");
    assert!(
        message_id.starts_with("<auth-down=2Fme.1.firing.") && message_id.ends_with('>'),
        "{message_id}"
    );
    assert!(decoded.date.is_some(), "the .eml file has no valid Date");
    assert_eq!(decoded.defects, Vec::<String>::new());
    let json = std::fs::read(sink.join("000001-auth-down-me-firing.json")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["timestamp"], "2026-05-28T20:26:40Z");
    assert_eq!(json["severity_text"], "ERROR");
    assert_eq!(json["severity_number"], 17);
    assert_eq!(json["body"], "Auth down on me: 3 responses 401 in 1m");
    assert_eq!(json["attributes"]["alert.rule"], "Auth down");
    assert_eq!(json["attributes"]["loftwatch.location"], "eu-west");
}

fn probe_spec() -> ProbeSpec {
    ProbeSpec {
        name: Arc::from("people"),
        method: "GET".to_owned(),
        path: "/v2/people?per_page=1&include_paging_counts=true".to_owned(),
        schedule: Schedule::Interval {
            every: Duration::from_secs(30),
            splay: Duration::ZERO,
        },
        timeout: Duration::from_secs(10),
        max_body: 1 << 20,
        expect_status: vec![200],
        assertions: Vec::new(),
        latency_baseline: Duration::from_millis(300),
        priority: Default::default(),
    }
}

fn probe_result(outcome: Outcome, status: Option<u16>, latency: Duration) -> ProbeResult {
    ProbeResult {
        probe: Arc::from("people"),
        started_at: SystemTime::now(),
        finished: Instant::now(),
        latency,
        outcome,
        status,
        rate_limit: RateLimit::default(),
        attempts: 1,
        detail: None,
    }
}

#[tokio::test]
async fn metrics_duration_points_arrive() {
    let collector = OtlpReceiver::start().await;
    let config = otlp_config(collector.endpoint(), Duration::from_secs(5));
    let metrics = Metrics::new(Some(&config), "eu-west").expect("metrics start");
    let spec = probe_spec();
    let server = "api.salesloft.test";
    metrics.record_result(
        &spec,
        &probe_result(Outcome::Ok, Some(200), Duration::from_millis(120)),
        server,
    );
    let unauthorized = probe_result(Outcome::HttpStatus(4), Some(401), Duration::from_millis(80));
    metrics.record_result(&spec, &unauthorized, server);
    let refused = probe_result(Outcome::ConnectError, None, Duration::from_millis(1));
    metrics.record_result(&spec, &refused, server);
    metrics.record_skip("people", "rate_budget", 1);

    let points = collector
        .wait_for_histogram(
            "http.client.request.duration",
            Duration::from_secs(10),
            |points| points.iter().map(|point| point.count).sum::<u64>() >= 2,
        )
        .await;
    let by_status: BTreeMap<String, BTreeMap<String, String>> = points
        .iter()
        .map(|point| {
            let attributes = attribute_map(&point.attributes);
            (attributes["http.response.status_code"].clone(), attributes)
        })
        .collect();
    let ok = &by_status["200"];
    assert_eq!(ok["http.request.method"], "GET");
    assert_eq!(ok["server.address"], "api.salesloft.test");
    assert_eq!(ok["url.template"], "/v2/people");
    assert_eq!(ok["loftwatch.probe"], "people");
    assert_eq!(ok["loftwatch.location"], "eu-west");
    assert!(
        !ok.contains_key("error.type"),
        "ok point has error.type: {ok:?}"
    );
    assert_eq!(by_status["401"]["error.type"], "http_4xx");
    assert_eq!(
        by_status.len(),
        2,
        "connect errors must not record a duration: {by_status:?}"
    );
    let ok_point = points
        .iter()
        .find(|point| point.count == 1 && point.sum == Some(0.12));
    assert!(
        ok_point.is_some(),
        "no point with the 0.12 s sample: {points:?}"
    );
    let metric = collector
        .metrics()
        .into_iter()
        .find(|m| m.name == "http.client.request.duration");
    assert_eq!(metric.unwrap().unit, "s");

    let results = collector.sum_points("loftwatch.probe.results");
    let outcomes: Vec<String> = results
        .iter()
        .map(|point| attribute_map(&point.attributes)["error.type"].clone())
        .collect();
    for outcome in ["ok", "http_4xx", "connect_error"] {
        assert!(
            outcomes.iter().any(|seen| seen == outcome),
            "{outcome} missing in {outcomes:?}"
        );
    }
    let skipped = collector.sum_points("loftwatch.probe.skipped");
    assert!(
        skipped
            .iter()
            .any(|point| attribute_map(&point.attributes)["reason"] == "rate_budget"),
        "no skip point: {skipped:?}"
    );
    tokio::task::spawn_blocking(move || metrics.shutdown())
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_without_otlp_are_noop() {
    let metrics = Metrics::new(None, "eu-west").expect("metrics start");
    assert!(!metrics.is_enabled());
    let result = probe_result(Outcome::Ok, Some(200), Duration::from_millis(50));
    metrics.record_result(&probe_spec(), &result, "api.salesloft.test");
    metrics.record_skip("people", "rate_budget", 1);
    metrics.shutdown();
}
