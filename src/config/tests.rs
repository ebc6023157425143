use std::time::Duration;

use super::*;

fn error_text(text: &str) -> String {
    parse(text, "test.toml")
        .expect_err("the configuration should be rejected")
        .to_string()
}

#[test]
fn default_config_is_valid() {
    let config = parse(DEFAULT_CONFIG, "alerts.toml").expect("alerts.toml should be valid");
    assert_eq!(config.salesloft.base_url, "https://api.salesloft.com");
    assert_eq!(config.probes.len(), 2);
    assert_eq!(config.rules.len(), 9);
    assert!(config.receivers.email.is_none());
    let me = &config.probes[0];
    assert_eq!(&*me.name, "me");
    assert_eq!(me.latency_baseline, Duration::from_millis(300));
    assert!(
        matches!(me.schedule, Schedule::Interval { every, .. } if every == Duration::from_secs(10))
    );
}

#[test]
fn unknown_key_names_position() {
    let text = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\nintervall = \"10s\"\n";
    let message = error_text(text);
    assert!(message.starts_with("test.toml:4:1:"), "{message}");
    assert!(message.contains("intervall"), "{message}");
}

#[test]
fn bad_duration_names_key_and_value() {
    let text = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"10 parsecs\"\n";
    let message = error_text(text);
    assert!(message.starts_with("test.toml:4:12:"), "{message}");
    assert!(message.contains("probe[0].interval"), "{message}");
    assert!(message.contains("\"10 parsecs\""), "{message}");
}

#[test]
fn bad_cron_names_key_and_value() {
    let text = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"61 * * * *\"\n";
    let message = error_text(text);
    assert!(message.starts_with("test.toml:4:8:"), "{message}");
    assert!(message.contains("probe[0].cron"), "{message}");
    assert!(message.contains("61 * * * *"), "{message}");
}

#[test]
fn bad_expression_points_into_string() {
    let text = "[[rule]]\nname = \"x\"\nseverity = \"P1\"\nexpr = \"count(status == 401) >\"\n\
                runbook = \"r\"\n[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";
    let message = error_text(text);
    assert!(message.starts_with("test.toml:4:"), "{message}");
    assert!(message.contains("rule[0].expr"), "{message}");
    assert!(message.contains("count(status == 401) >"), "{message}");
}

#[test]
fn several_errors_are_all_reported() {
    let text = "[engine]\neval_interval = \"fast\"\n[[rule]]\nname = \"x\"\nseverity = \"P9\"\n\
                expr = \"count() > 1\"\nrunbook = \"r\"\n\
                [[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";
    let error = parse(text, "test.toml").expect_err("should be rejected");
    assert_eq!(error.issues.len(), 2, "{error}");
    assert_eq!(error.issues[0].key, "engine.eval_interval");
    assert_eq!(error.issues[1].key, "rule[0].severity");
}

#[test]
fn plain_smtp_needs_loopback_host() {
    let text = "[receivers.email]\nhost = \"smtp.example.com\"\ntls = \"none\"\n\
                from = \"a@example.com\"\nto = [\"b@example.com\"]\n";
    let message = error_text(text);
    assert!(message.contains("receivers.email.tls"), "{message}");
    assert!(message.contains("smtp.example.com"), "{message}");
    let loopback = format!(
        "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n{}",
        text.replace("smtp.example.com", "127.0.0.1")
    );
    let config = parse(&loopback, "test.toml").expect("loopback plain SMTP is allowed");
    assert_eq!(config.receivers.email.expect("email receiver").port, 25);
}

#[test]
fn secret_sources_in_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("token"), "from-credential\n").expect("write credential");
    let source = SecretSource {
        credential: Some("token".to_owned()),
        file: None,
        env: Some("TOKEN".to_owned()),
    };
    let dir_text = dir.path().display().to_string();
    let with_dir = |name: &str| match name {
        "CREDENTIALS_DIRECTORY" => Some(dir_text.clone()),
        "TOKEN" => Some("from-env".to_owned()),
        _ => None,
    };
    assert_eq!(
        source.load("token", &with_dir).expect("credential"),
        "from-credential"
    );
    let without_dir = |name: &str| (name == "TOKEN").then(|| "from-env".to_owned());
    assert_eq!(source.load("token", &without_dir).expect("env"), "from-env");
    let error = source
        .load("salesloft.credential", &|_| None)
        .expect_err("nothing set");
    assert!(
        error.to_string().contains("environment variable TOKEN"),
        "{error}"
    );
}

#[test]
fn auth_defaults_to_api_key() {
    let config = parse(DEFAULT_CONFIG, "alerts.toml").expect("alerts.toml should be valid");
    assert_eq!(config.salesloft.auth, AuthConfig::ApiKey);
    assert_eq!(
        config.salesloft.retry,
        crate::salesloft::RetryPolicy::default()
    );
}

#[test]
fn oauth_keys_read_with_defaults() {
    let text = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n\
                [salesloft]\nauth = \"oauth\"\nclient_id = \"app\"\n\
                client_secret = { credential = \"salesloft-client-secret\" }\n\
                refresh_token = { file = \"/etc/loftwatch/refresh-token\" }\n\
                retry_attempts = 2\nretry_backoff = \"50ms\"\n";
    let config = parse(text, "test.toml").expect("valid");
    let AuthConfig::OAuth(oauth) = &config.salesloft.auth else {
        panic!("expected OAuth, got {:?}", config.salesloft.auth);
    };
    assert_eq!(
        oauth.token_url,
        "https://accounts.salesloft.com/oauth/token"
    );
    assert_eq!(oauth.client_id, "app");
    assert_eq!(oauth.state_dir, None);
    let env = |name: &str| (name == "STATE_DIRECTORY").then(|| "/var/lib/a:/var/lib/b".to_owned());
    assert_eq!(
        oauth.resolve_state_dir(&env),
        std::path::Path::new("/var/lib/a")
    );
    assert_eq!(
        oauth.resolve_state_dir(&|_| None),
        std::path::Path::new("./state")
    );
    assert_eq!(config.salesloft.retry.max_attempts, 2);
    assert_eq!(
        config.salesloft.retry.backoff_base,
        Duration::from_millis(50)
    );
}

#[test]
fn oauth_requires_client_and_refresh_token() {
    let message = error_text("[salesloft]\nauth = \"oauth\"\n");
    for key in [
        "salesloft.client_id",
        "salesloft.client_secret",
        "salesloft.refresh_token",
    ] {
        assert!(message.contains(key), "{key} not named: {message}");
    }
}

#[test]
fn oauth_keys_rejected_with_api_key() {
    let message = error_text("[salesloft]\nclient_id = \"app\"\n");
    assert!(message.contains("salesloft.client_id"), "{message}");
    assert!(message.contains("auth = \"oauth\""), "{message}");
}

#[test]
fn bad_auth_and_retry_values_rejected() {
    let message = error_text("[salesloft]\nauth = \"basic\"\n");
    assert!(message.contains("invalid auth \"basic\""), "{message}");
    let message = error_text("[salesloft]\nretry_attempts = 5\n");
    assert!(message.contains("salesloft.retry_attempts"), "{message}");
    let message = error_text("[salesloft]\nretry_backoff = \"2s\"\nretry_backoff_max = \"1s\"\n");
    assert!(message.contains("salesloft.retry_backoff_max"), "{message}");
}
