//! Email over TLS with SMTP AUTH against a real aiosmtpd relay: STARTTLS and implicit TLS,
//! relays that break the TLS contract, wrong passwords, and the password kept out of errors and
//! logs.

mod support;

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::Duration;

use loftwatch::alert::{Transition, TransitionKind};
use loftwatch::config::{EmailConfig, Receivers, SecretSource, SmtpTls};
use loftwatch::notify::{
    Backoff, EmailReceiver, Notifier, NotifierOptions, NotifyError, ReceiverKind,
};
use support::smtp::decode_with_python;
use support::smtp_tls::{RelayCommand, RelayTls, TlsSmtpServer};
use support::wait_until;
use tokio::time::Instant;

const USERNAME: &str = "loftwatch";
const PASSWORD_VARIABLE: &str = "LOFTWATCH_SMTP_PASSWORD";

/// Every log line loftwatch (and rustls, through the `log` bridge) writes in this test binary.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().expect("log buffer").extend_from_slice(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs one global subscriber at TRACE level that writes into [`LOGS`], so events from
/// every thread of every test are captured.
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .init();
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}

fn assert_password_not_logged(password: &str) {
    let logs = captured_logs();
    assert!(
        !logs.contains(password),
        "the password appears in the captured logs"
    );
}

/// Returns a lookup that holds only the SMTP password, as `EmailReceiver::new` expects.
fn secrets(password: &str) -> impl Fn(&str) -> Option<String> + use<> {
    let password = password.to_owned();
    move |name: &str| (name == PASSWORD_VARIABLE).then(|| password.clone())
}

fn email_config(port: u16, tls: SmtpTls, server: &TlsSmtpServer) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls,
        ca_file: Some(server.ca_file().to_owned()),
        username: Some(USERNAME.to_owned()),
        password: Some(SecretSource {
            env: Some(PASSWORD_VARIABLE.to_owned()),
            ..Default::default()
        }),
        from: "loftwatch <loftwatch@example.test>".to_owned(),
        to: vec!["oncall@example.test".to_owned()],
        timeout: Duration::from_secs(5),
        fallback: None,
    }
}

fn firing(alert_id: &str) -> Transition {
    Transition {
        alert_id: alert_id.to_owned(),
        ..support::sample_transition(TransitionKind::Firing)
    }
}

fn verbs(commands: &[RelayCommand]) -> Vec<&str> {
    commands
        .iter()
        .map(|command| command.verb.as_str())
        .collect()
}

/// Returns the commands that carry credentials or mail and were read without TLS.
fn clear_text_secrets(commands: &[RelayCommand]) -> Vec<&RelayCommand> {
    commands
        .iter()
        .filter(|command| !command.encrypted)
        .filter(|command| ["AUTH", "MAIL", "RCPT", "DATA"].contains(&command.verb.as_str()))
        .collect()
}

#[tokio::test]
async fn starttls_with_auth_delivers() {
    capture_logs();
    let password = "starttls-secret-5d1c8e";
    let server = TlsSmtpServer::start(RelayTls::Starttls, USERNAME, password).await;
    // The receiver settings come from TOML, so `ca_file` goes through validation as well.
    let text = format!(
        "[receivers.email]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\n\
         ca_file = {:?}\nusername = \"{USERNAME}\"\npassword = {{ env = \"{PASSWORD_VARIABLE}\" }}\n\
         from = \"loftwatch <loftwatch@example.test>\"\nto = [\"oncall@example.test\"]\n{PROBE}",
        server.port(),
        server.ca_file().display().to_string(),
    );
    let config = loftwatch::config::parse(&text, "relay.toml").expect("valid configuration");
    let email = config.receivers.email.expect("email receiver configured");
    assert_eq!(email.ca_file.as_deref(), Some(server.ca_file()));

    let receiver = EmailReceiver::new(&email, &secrets(password)).expect("receiver builds");
    receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect("delivered over STARTTLS");

    let messages = server.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(messages.len(), 1);
    let mail = decode_with_python(&messages[0].raw);
    assert!(
        mail.subject.starts_with("[P1 FIRING] Auth down on me"),
        "{}",
        mail.subject
    );

    let commands = server.commands();
    assert_eq!(
        verbs(&commands[..7.min(commands.len())]),
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA"],
        "command sequence {commands:?}"
    );
    assert!(!commands[0].encrypted, "{commands:?}");
    assert!(!commands[1].encrypted, "{commands:?}");
    assert!(
        commands[2..].iter().all(|command| command.encrypted),
        "a command after STARTTLS arrived in clear text: {commands:?}"
    );
    assert!(clear_text_secrets(&commands).is_empty(), "{commands:?}");
    assert_eq!(server.auth_outcomes(), [true]);
    assert_password_not_logged(password);
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers() {
    capture_logs();
    let password = "implicit-secret-93b2aa";
    let server = TlsSmtpServer::start(RelayTls::Implicit, USERNAME, password).await;
    let config = email_config(server.port(), SmtpTls::Implicit, &server);
    let receiver = EmailReceiver::new(&config, &secrets(password)).expect("receiver builds");
    receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect("delivered over implicit TLS");

    let messages = server.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(messages.len(), 1);
    let commands = server.commands();
    assert_eq!(
        verbs(&commands[..5.min(commands.len())]),
        ["EHLO", "AUTH", "MAIL", "RCPT", "DATA"],
        "command sequence {commands:?}"
    );
    assert!(
        commands.iter().all(|command| command.encrypted),
        "{commands:?}"
    );
    assert!(!verbs(&commands).contains(&"STARTTLS"), "{commands:?}");
    assert_eq!(server.auth_outcomes(), [true]);
    assert_password_not_logged(password);
}

#[tokio::test]
async fn missing_starttls_fails_before_auth() {
    capture_logs();
    let password = "no-starttls-secret-0f4e71";
    let server = TlsSmtpServer::start(RelayTls::NoTls, USERNAME, password).await;
    let config = email_config(server.port(), SmtpTls::Starttls, &server);
    let receiver = EmailReceiver::new(&config, &secrets(password)).expect("receiver builds");
    let error = receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect_err("a relay without STARTTLS must not get the mail");

    assert!(error.message.contains("STARTTLS"), "{error}");
    assert!(error.message.contains("127.0.0.1"), "{error}");
    assert!(!error.message.contains(password), "{error}");
    let commands = server.commands();
    assert_eq!(verbs(&commands).first(), Some(&"EHLO"), "{commands:?}");
    assert!(clear_text_secrets(&commands).is_empty(), "{commands:?}");
    assert!(server.auth_outcomes().is_empty());
    assert!(server.messages().is_empty());
    assert_password_not_logged(password);
}

#[tokio::test]
async fn starttls_to_implicit_port_times_out() {
    capture_logs();
    let password = "wrong-port-secret-c27d90";
    let server = TlsSmtpServer::start(RelayTls::Implicit, USERNAME, password).await;
    let mut config = email_config(server.port(), SmtpTls::Starttls, &server);
    config.timeout = Duration::from_secs(2);
    let receiver = EmailReceiver::new(&config, &secrets(password)).expect("receiver builds");

    let started = Instant::now();
    let error = receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect_err("a STARTTLS client cannot talk to an implicit-TLS port");
    let elapsed = started.elapsed();

    // Both sides wait for the other to speak first, so only the 2 s timeout ends the attempt.
    // The upper bound leaves 1.5 s for a loaded machine.
    assert!(elapsed < Duration::from_millis(3500), "took {elapsed:?}");
    assert!(error.message.contains("127.0.0.1"), "{error}");
    assert!(!error.permanent, "a timeout may pass: {error}");
    assert!(!error.message.contains(password), "{error}");
    assert!(server.commands().is_empty(), "{:?}", server.commands());
    assert!(server.messages().is_empty());
    assert_password_not_logged(password);
}

#[tokio::test]
async fn wrong_password_fails_without_leaking() {
    capture_logs();
    let password = "wrong-password-7a61fe";
    let server = TlsSmtpServer::start(RelayTls::Starttls, USERNAME, "the-right-password").await;
    let config = email_config(server.port(), SmtpTls::Starttls, &server);
    let receiver = EmailReceiver::new(&config, &secrets(password)).expect("receiver builds");
    let error = receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect_err("a wrong password is rejected");

    assert!(error.message.contains("535"), "{error}");
    assert!(
        error.permanent,
        "a rejected password fails every attempt: {error}"
    );
    assert!(!error.message.contains(password), "{error}");
    assert!(!error.message.contains(USERNAME), "{error}");
    assert_eq!(server.auth_outcomes(), [false]);
    assert!(server.messages().is_empty());
    let commands = server.commands();
    assert!(!verbs(&commands).contains(&"MAIL"), "{commands:?}");
    assert_password_not_logged(password);
}

#[tokio::test]
async fn notifier_logs_omit_password() {
    capture_logs();
    let password = "notifier-secret-4be019";
    let server = TlsSmtpServer::start(RelayTls::Starttls, USERNAME, "the-right-password").await;
    let receivers = Receivers {
        email: Some(email_config(server.port(), SmtpTls::Starttls, &server)),
        otlp: None,
        ..Receivers::default()
    };
    let options = NotifierOptions {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            max_attempts: 2,
        },
        queue_capacity: 4,
    };
    let notifier = Notifier::start_with(&receivers, &secrets(password), "eu-west", None, options)
        .expect("notifier starts");
    notifier.send(firing("auth-down/notifier-logs"));

    wait_until(
        "the email to be counted as failed",
        Duration::from_secs(15),
        || {
            let failed = notifier
                .counts(ReceiverKind::Email)
                .map(|counts| counts.failed);
            async move { (failed == Some(1)).then_some(()) }
        },
    )
    .await;
    notifier.shutdown(Duration::from_secs(2)).await;

    // The failure is logged with its error, so the check below looks at real output.
    let logs = captured_logs();
    let lost = logs
        .lines()
        .find(|line| line.contains("notification lost") && line.contains("notifier-logs"))
        .unwrap_or_else(|| panic!("no \"notification lost\" line in the logs:\n{logs}"));
    assert!(lost.contains("535"), "{lost}");
    assert_password_not_logged(password);
}

#[tokio::test]
async fn untrusted_relay_certificate_rejected() {
    capture_logs();
    let password = "untrusted-secret-e3385b";
    let server = TlsSmtpServer::start(RelayTls::Starttls, USERNAME, password).await;
    let mut config = email_config(server.port(), SmtpTls::Starttls, &server);
    config.ca_file = None;
    let receiver = EmailReceiver::new(&config, &secrets(password)).expect("receiver builds");
    let error = receiver
        .deliver(&firing("auth-down/me"))
        .await
        .expect_err("a certificate from an unknown CA is rejected");

    assert!(error.message.contains("ca_file"), "{error}");
    let commands = server.commands();
    assert!(!verbs(&commands).contains(&"AUTH"), "{commands:?}");
    assert!(server.auth_outcomes().is_empty());
    assert!(server.messages().is_empty());
    assert_password_not_logged(password);
}

fn email_toml(tls: &str, ca_file: &str) -> String {
    format!(
        "[receivers.email]\nhost = \"127.0.0.1\"\ntls = \"{tls}\"\nca_file = {ca_file:?}\n\
         from = \"loftwatch@example.test\"\nto = [\"oncall@example.test\"]\n{PROBE}"
    )
}

/// A probe, which every configuration needs; it comes last so the line numbers above stay.
const PROBE: &str = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";

#[test]
fn ca_file_validated_in_config() {
    let folder = tempfile::tempdir().expect("temp dir");
    let missing = folder.path().join("missing.pem");
    let empty = folder.path().join("empty.pem");
    std::fs::write(&empty, "# no certificate here\n").expect("write empty.pem");

    let cases = [
        ("starttls", missing.display().to_string(), "missing.pem"),
        (
            "implicit",
            empty.display().to_string(),
            "contains no certificate",
        ),
        ("none", empty.display().to_string(), "tls = \"none\""),
    ];
    for (tls, path, expected) in cases {
        let error = loftwatch::config::parse(&email_toml(tls, &path), "relay.toml")
            .expect_err("the ca_file is rejected")
            .to_string();
        assert!(error.starts_with("relay.toml:4:11: "), "{error}");
        assert!(error.contains("receivers.email.ca_file"), "{error}");
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn ca_file_error_at_receiver_start() {
    let folder = tempfile::tempdir().expect("temp dir");
    let config = EmailConfig {
        host: "127.0.0.1".to_owned(),
        port: 587,
        tls: SmtpTls::Starttls,
        ca_file: Some(folder.path().join("gone.pem")),
        username: None,
        password: None,
        from: "loftwatch@example.test".to_owned(),
        to: vec!["oncall@example.test".to_owned()],
        timeout: Duration::from_secs(5),
        fallback: None,
    };
    let error = EmailReceiver::new(&config, &|_: &str| None)
        .err()
        .expect("a CA file removed after validation is reported");
    assert!(matches!(error, NotifyError::CaFile(_)), "{error}");
    assert!(error.to_string().contains("gone.pem"), "{error}");
}
