//! Standard output of the `loftwatch` binary when its reader closes the pipe early, as
//! `loftwatch check --json | head -3` does: the binary stops quietly instead of panicking.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use loftwatch::simulator::{self, SimulatorOptions};

/// Runs `loftwatch` with a stdout whose read end is already closed, so the first write fails
/// with EPIPE, and returns its output after at most `limit`.
fn run_with_closed_stdout(args: &[&str], limit: Duration) -> Output {
    // A socket pair behaves like a pipe here: writing after the peer closed fails with EPIPE.
    let (reader, writer) = std::os::unix::net::UnixStream::pair().expect("create a socket pair");
    drop(reader);
    let writer = std::os::fd::OwnedFd::from(writer);
    let mut child = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
        .args(args)
        .env("SALESLOFT_TOKEN", "cli-output-test-token")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loftwatch");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("poll loftwatch").is_none() {
        if std::time::Instant::now() >= deadline {
            child.kill().expect("kill loftwatch");
            panic!("loftwatch {args:?} still ran after {limit:?} with a closed stdout");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect loftwatch output")
}

fn assert_quiet_exit(output: &Output, expected_code: i32) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "stderr: {stderr}");
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "stderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_closed_pipe_exits_quietly() {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let folder = tempfile::tempdir().expect("temporary folder");
    let config_path = folder.path().join("alerts.toml");
    let config = include_str!("../alerts.toml").replace(
        "base_url = \"https://api.salesloft.com\"",
        &format!("base_url = \"{}\"", sim.base_url()),
    );
    std::fs::write(&config_path, config).expect("write the configuration");
    let config_arg = config_path.to_str().expect("utf-8 path").to_owned();

    for json in [true, false] {
        let mut args = vec![
            "check".to_owned(),
            "--config".to_owned(),
            config_arg.clone(),
        ];
        if json {
            args.push("--json".to_owned());
        }
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_with_closed_stdout(&args, Duration::from_secs(60))
        })
        .await
        .expect("join the check run");
        // Every probe passes against the healthy simulator, so only the pipe can fail it.
        assert_quiet_exit(&output, 0);
    }
    sim.shutdown().await;
}

#[test]
fn demo_closed_pipe_exits_quietly() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let out = folder.path().join("notifications");
    let out = out.to_str().expect("utf-8 path");
    let output = run_with_closed_stdout(&["demo", "--out", out], Duration::from_secs(30));
    assert_quiet_exit(&output, 0);
}
