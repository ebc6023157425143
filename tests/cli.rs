//! The `loftwatch` binary on broken configurations: every configuration or credential problem
//! exits 2 from validate, check and run, with a message that says what to fix.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A configuration that loads, probing a closed loopback port so that nothing leaves the host.
const VALID: &str = "[salesloft]\nbase_url = \"http://127.0.0.1:9\"\n\
                     credential = { env = \"LOFTWATCH_CLI_TEST_TOKEN\" }\n\
                     [[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ntimeout = \"1s\"\n\
                     [server]\nlisten = \"127.0.0.1:0\"\n";

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("alerts.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// A `loftwatch` command with no inherited secrets or configuration path.
fn loftwatch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loftwatch"));
    command
        .args(args)
        .env_remove("LOFTWATCH_CONFIG")
        .env_remove("LOFTWATCH_CLI_TEST_TOKEN")
        .env_remove("SALESLOFT_TOKEN")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the command, killing it after 20 s so that a daemon that starts cannot hang the test.
fn output(mut command: Command) -> Output {
    let mut child = command.spawn().expect("start loftwatch");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("poll loftwatch").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("stop loftwatch");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect loftwatch output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn validate_accepts_file_flag_and_env() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), VALID);
    let path = path.to_str().expect("UTF-8 path");
    let mut by_env = loftwatch(&["validate"]);
    by_env.env("LOFTWATCH_CONFIG", path);
    let commands = [
        loftwatch(&["validate", path]),
        loftwatch(&["validate", "--config", path]),
        loftwatch(&["validate", "-c", path]),
        by_env,
    ];
    for command in commands {
        let shown = format!("{:?}", command.get_args().collect::<Vec<_>>());
        let result = output(command);
        assert_eq!(
            result.status.code(),
            Some(0),
            "{shown}: {}",
            stderr(&result)
        );
    }
}

#[test]
fn validate_missing_file_or_directory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().expect("UTF-8 path");
    let result = output(loftwatch(&["validate", "--config", missing]));
    assert_eq!(result.status.code(), Some(2));
    let message = stderr(&result);
    assert!(
        message.contains(&format!("cannot read {missing}: No such file or directory")),
        "{message}"
    );
    assert!(!message.contains(":0:0"), "{message}");
    let directory = dir.path().to_str().expect("UTF-8 path");
    let result = output(loftwatch(&["validate", directory]));
    assert_eq!(result.status.code(), Some(2));
    assert!(
        stderr(&result).contains("cannot read"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn empty_config_exits_2_everywhere() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), "");
    let path = path.to_str().expect("UTF-8 path");
    for args in [
        ["validate", path].as_slice(),
        ["check", "--config", path].as_slice(),
        ["run", "--config", path].as_slice(),
    ] {
        let result = output(loftwatch(args));
        assert_eq!(
            result.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&result)
        );
        assert!(stderr(&result).contains("no [[probe]] table"), "{args:?}");
    }
}

#[test]
fn check_json_reports_bad_config() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), "[engine]\neval_interval = \"1ns\"\n");
    let path = path.to_str().expect("UTF-8 path");
    let result = output(loftwatch(&["check", "--json", "--config", path]));
    assert_eq!(result.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&result.stdout).expect("stdout is JSON");
    assert_eq!(report["passed"], serde_json::Value::Bool(false));
    let error = report["error"].as_str().expect("error text");
    assert!(error.contains("engine.eval_interval"), "{error}");
    assert!(stderr(&result).contains("engine.eval_interval"));
}

#[test]
fn credential_problems_exit_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = write_config(dir.path(), VALID);
    let path = path.to_str().expect("UTF-8 path");
    for token in [None, Some("abc\u{7}def")] {
        for args in [["check", "--config", path], ["run", "--config", path]] {
            let mut command = loftwatch(&args);
            if let Some(token) = token {
                command.env("LOFTWATCH_CLI_TEST_TOKEN", token);
            }
            let result = output(command);
            assert_eq!(
                result.status.code(),
                Some(2),
                "{args:?} {token:?}: {}",
                stderr(&result)
            );
            assert!(!stderr(&result).contains("abc"), "the token is never shown");
        }
    }
}

#[test]
fn missing_smtp_password_exits_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = format!(
        "{VALID}[receivers.email]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\n\
         username = \"loftwatch\"\npassword = {{ env = \"LOFTWATCH_CLI_TEST_SMTP\" }}\n\
         from = \"a@example.test\"\nto = [\"b@example.test\"]\n"
    );
    let path = write_config(dir.path(), &text);
    let path = path.to_str().expect("UTF-8 path");
    for args in [["check", "--config", path], ["run", "--config", path]] {
        let mut command = loftwatch(&args);
        command
            .env("LOFTWATCH_CLI_TEST_TOKEN", "token")
            .env_remove("LOFTWATCH_CLI_TEST_SMTP");
        let result = output(command);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&result)
        );
        assert!(
            stderr(&result).contains("receivers.email.password")
                || stderr(&result).contains("password"),
            "{args:?}: {}",
            stderr(&result)
        );
    }
}
