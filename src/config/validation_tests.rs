//! Rejections of configurations that parse but would misbehave, and the wording of their errors.

use super::*;

const PROBE: &str = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";

fn error_text(text: &str) -> String {
    parse(text, "test.toml")
        .expect_err("the configuration should be rejected")
        .to_string()
}

fn rule(extra: &str) -> String {
    format!(
        "{PROBE}[[rule]]\nname = \"r\"\nseverity = \"P1\"\nexpr = \"count() > 1\"\n\
         runbook = \"Do something.\"\n{extra}"
    )
}

#[test]
fn config_without_probes_rejected() {
    for text in [
        "",
        "# only a comment\n",
        "[engine]\neval_interval = \"1s\"\n",
    ] {
        let message = error_text(text);
        assert!(message.contains("no [[probe]] table"), "{message}");
        assert!(message.contains("add at least one probe"), "{message}");
    }
}

#[test]
fn intervals_below_minimum_rejected() {
    let cases = [
        ("interval = \"1ns\"", "probe[0].interval", "100ms"),
        ("interval = \"99ms\"", "probe[0].interval", "100ms"),
        ("timeout = \"1ms\"", "probe[0].timeout", "100ms"),
        ("timeout = \"11m\"", "probe[0].timeout", "10m"),
        ("interval = \"2d\"", "probe[0].interval", "1day"),
    ];
    for (line, key, limit) in cases {
        let message = error_text(&format!("{PROBE}{line}\n"));
        assert!(message.contains(key), "{line}: {message}");
        assert!(message.contains(limit), "{line}: {message}");
    }
    let message = error_text(&format!("{PROBE}[engine]\neval_interval = \"1ns\"\n"));
    assert!(message.contains("engine.eval_interval"), "{message}");
    assert!(message.contains("the minimum is 50ms"), "{message}");
    let message = error_text(&rule("window = \"25h\"\n"));
    assert!(message.contains("rule[0].window"), "{message}");
    assert!(message.contains("the maximum is 1day"), "{message}");
    let fast = format!(
        "{PROBE}interval = \"100ms\"\ntimeout = \"100ms\"\n[engine]\n\
                        eval_interval = \"50ms\"\n"
    );
    parse(&fast, "test.toml").expect("the minimums themselves are valid");
}

#[test]
fn calendar_units_and_overflow_rejected() {
    let message = error_text(&rule("window = \"1M\"\n"));
    assert!(message.contains("month or a year"), "{message}");
    assert!(message.contains("use d, h, m"), "{message}");
    let message = error_text(&format!("{PROBE}interval = \"2y\"\n"));
    assert!(message.contains("month or a year"), "{message}");
    let message = error_text(&format!("{PROBE}interval = \"99999999999999999999d\"\n"));
    assert!(message.contains("too large"), "{message}");
}

#[test]
fn cron_that_never_runs_rejected() {
    for line in ["0 0 30 2 *", "0 0 31 4 *"] {
        let message = error_text(&format!(
            "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"{line}\"\n"
        ));
        assert!(message.contains("never runs"), "{line}: {message}");
        assert!(message.contains("probe[0].cron"), "{line}: {message}");
    }
    let valid = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"0 0 29 2 *\"\n";
    parse(valid, "test.toml").expect("29 February comes in a leap year");
}

#[test]
fn cron_error_names_field_once() {
    let message =
        error_text("[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"61 * * * *\"\n");
    assert_eq!(message.matches("invalid cron line").count(), 1, "{message}");
    assert!(message.contains("minute field \"61\""), "{message}");
    let message =
        error_text("[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ncron = \"0 0 * 13 *\"\n");
    assert!(message.contains("month field \"13\""), "{message}");
}

#[test]
fn base_url_faults_rejected() {
    let cases = [
        ("http://127.0.0.1:99999", "port"),
        ("http://127.0.0.1:8089/?x=1", "query"),
        ("http://127.0.0.1:8089/#frag", "fragment"),
        ("http://user:s3cretpw@127.0.0.1:8089", "password"),
    ];
    for (url, word) in cases {
        let message = error_text(&format!("{PROBE}[salesloft]\nbase_url = \"{url}\"\n"));
        assert!(message.contains("salesloft.base_url"), "{url}: {message}");
        assert!(message.contains(word), "{url}: {message}");
        assert!(!message.contains("s3cretpw"), "{url}: {message}");
    }
    let message = error_text(&format!(
        "{PROBE}[salesloft]\nbase_url = \"http://user:s3cretpw@127.0.0.1:8089\"\n"
    ));
    assert!(message.contains("http://***@127.0.0.1:8089"), "{message}");
}

#[test]
fn inline_secrets_never_echoed() {
    let secret = "v2_ak_inline_secret";
    let cases = [
        format!("{PROBE}[salesloft]\ncredential = \"{secret}\"\n"),
        format!(
            "{PROBE}[salesloft]\nauth = \"oauth\"\nclient_id = \"app\"\n\
             client_secret = \"{secret}\"\nrefresh_token = {{ env = \"R\" }}\n"
        ),
        format!(
            "{PROBE}[salesloft]\nauth = \"oauth\"\nclient_id = \"app\"\n\
             client_secret = {{ env = \"S\" }}\nrefresh_token = \"{secret}\"\n"
        ),
        format!(
            "{PROBE}[receivers.email]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n\
             password = \"{secret}\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n"
        ),
        format!("{PROBE}[server]\ntoken = \"{secret}\"\n"),
    ];
    for text in &cases {
        let message = error_text(text);
        assert!(!message.contains(secret), "{message}");
        assert!(
            message.contains(
                "secrets are never written inline: use { env = \"NAME\" }, \
                 { file = \"PATH\" } or { credential = \"NAME\" }"
            ),
            "{message}"
        );
    }
    let message = error_text(&format!(
        "{PROBE}[salesloft]\ncredential = [\"{secret}\"]\n"
    ));
    assert!(!message.contains(secret), "{message}");
    assert!(message.contains("salesloft.credential"), "{message}");
}

#[test]
fn control_characters_rejected() {
    let cases = [
        (
            "[[probe]]\nname = \"me\\nforged\"\npath = \"/v2/me.json\"\n".to_owned(),
            "probe[0].name",
        ),
        (
            "[[probe]]\nname = \"me\\r\"\npath = \"/v2/me.json\"\n".to_owned(),
            "probe[0].name",
        ),
        (
            format!(
                "{PROBE}[[rule]]\nname = \"a\\tb\"\nseverity = \"P1\"\nexpr = \"count() > 1\"\nrunbook = \"r\"\n"
            ),
            "rule[0].name",
        ),
        (rule("summary = \"x\\ny\"\n"), "rule[0].summary"),
        (
            rule("").replace("Do something.", "Do\\rsomething."),
            "rule[0].runbook",
        ),
        (
            format!("{PROBE}[salesloft]\nlocation = \"eu\\n1\"\n"),
            "salesloft.location",
        ),
        (
            format!("{PROBE}[salesloft]\nuser_agent = \"a\\r\\nX: y\"\n"),
            "salesloft.user_agent",
        ),
    ];
    for (text, key) in cases {
        let message = error_text(&text);
        assert!(message.contains(key), "{key}: {message}");
        assert!(message.contains("control character"), "{key}: {message}");
    }
}

#[test]
fn wrong_value_types_explained() {
    let message = error_text(&format!("{PROBE}[engine]\neval_interval = 5\n"));
    assert!(message.contains("engine.eval_interval"), "{message}");
    assert!(message.contains("as a string such as \"5s\""), "{message}");
    let message = error_text(&rule("min_samples = 2.5\n"));
    assert!(message.contains("min_samples"), "{message}");
    assert!(message.contains("whole number"), "{message}");
}

#[test]
fn max_body_limits_explained() {
    let message = error_text(&format!("{PROBE}max_body = \"0\"\n"));
    assert!(message.contains("zero is not allowed"), "{message}");
    let message = error_text(&format!("{PROBE}max_body = 0\n"));
    assert!(message.contains("zero is not allowed"), "{message}");
    let message = error_text(&format!("{PROBE}max_body = \"1GiB\"\n"));
    assert!(message.contains("the maximum is 64MiB"), "{message}");
    let message = error_text(&format!("{PROBE}max_body = \"1 parsec\"\n"));
    assert!(message.contains("KiB, MB, MiB"), "{message}");
    let config = parse(&format!("{PROBE}max_body = \"64MiB\"\n"), "test.toml").expect("valid");
    assert_eq!(config.probes[0].max_body, 64 * 1024 * 1024);
}

#[test]
fn rule_probe_list_checked() {
    let message = error_text(&rule("probes = [\"nope\", \"me\", \"me\"]\n"));
    assert!(message.contains("unknown probe \"nope\""), "{message}");
    assert!(message.contains("duplicate probe \"me\""), "{message}");
    let message = error_text(&rule("probes = []\n"));
    assert!(
        message.contains("omit the key to select every probe"),
        "{message}"
    );
}

#[test]
fn summary_placeholders_checked() {
    let message = error_text(&rule("summary = \"{nope} {value}\"\n"));
    assert!(message.contains("unknown placeholder {nope}"), "{message}");
    assert!(
        message.contains("{value}, {threshold}, {probe}, {window}"),
        "{message}"
    );
    let valid = rule("summary = \"{value} over {threshold} on {probe} in {window}\"\n");
    parse(&valid, "test.toml").expect("every known placeholder is valid");
}

/// Returns the line and column of the error for `expr_source`, written as the TOML value.
fn expr_position(expr_source: &str) -> (usize, usize, String) {
    let text = format!(
        "{PROBE}[[rule]]\nname = \"r\"\nseverity = \"P1\"\nexpr = {expr_source}\nrunbook = \"r\"\n"
    );
    let error = parse(&text, "test.toml").expect_err("the expression is invalid");
    let issue = &error.issues[0];
    (issue.line, issue.column, issue.message.clone())
}

#[test]
fn expression_positions_exact() {
    // Line 7 is `expr = ...`; the value starts at column 8. `count(statu == 1) > 0` fails at
    // `statu`, 6 bytes into the expression.
    assert_eq!(expr_position("\"count(statu == 1) > 0\"").0, 7);
    assert_eq!(expr_position("\"count(statu == 1) > 0\"").1, 15);
    assert_eq!(expr_position("'count(statu == 1) > 0'").1, 15);
    let (line, column, _) = expr_position("'''count(statu == 1) > 0'''");
    assert_eq!((line, column), (7, 17));
    let (line, column, _) = expr_position("\"\"\"\ncount(\n  statu == 1) > 0\"\"\"");
    assert_eq!((line, column), (9, 3));
    let (line, column, _) = expr_position("'''\ncount(statu == 1) > 0'''");
    assert_eq!((line, column), (8, 7));
}

#[test]
fn expression_with_escapes_points_at_value() {
    for source in [
        "\"count(\\u0073tatu == 1) > 0\"",
        "\"count(\\tstatu == 1) > 0\"",
        "\"\"\"count(\\\n   statu == 1) > 0\"\"\"",
    ] {
        let (line, column, message) = expr_position(source);
        assert_eq!((line, column), (7, 8), "{source}: {message}");
        assert!(message.contains("in the expression"), "{source}: {message}");
    }
}

#[test]
fn unreadable_file_has_no_position() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.toml");
    let message = load(&missing).expect_err("missing file").to_string();
    assert_eq!(
        message,
        format!(
            "cannot read {}: No such file or directory",
            missing.display()
        )
    );
    let message = load(dir.path()).expect_err("a directory").to_string();
    assert!(message.starts_with("cannot read "), "{message}");
    assert!(!message.contains(":0:0"), "{message}");
}
