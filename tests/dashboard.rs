//! The built-in dashboard end to end: the `loftwatch` binary probes the in-process simulator
//! while it returns 401, and headless Chromium (Debian's `chromium`, which `scripts/test`
//! installs) loads `GET /` and runs its script. A second test stops and restarts the daemon on
//! the same database and reads the probe history back from `/api/v1/history`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use serde_json::Value;

const TOKEN: &str = "dashboard-test-token-7f3a";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Password in the runbook URL; the dashboard must never show it.
const RUNBOOK_PASSWORD: &str = "wiki-pass-93d1";

/// A daemon with its configuration, database and log in a temporary folder.
struct Daemon {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Daemon {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let response = reqwest::get(self.url(path)).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.text().await.ok()?;
        serde_json::from_str(&body).ok()
    }

    async fn wait_ready(&self) {
        support::wait_until(
            "loftwatch dashboard API",
            Duration::from_secs(30),
            || async { self.get_json("/api/v1/status").await },
        )
        .await;
    }

    /// Sends SIGTERM and waits for a clean exit.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the daemon") {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("loftwatch did not exit within 30s\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(base_url: &str, port: u16, database: &Path, probe: &str) -> String {
    let database = database.display();
    format!(
        r#"
[salesloft]
base_url = "{base_url}"
credential = {{ env = "SALESLOFT_TOKEN" }}

[engine]
eval_interval = "100ms"

[[probe]]
name = "{probe}"
path = "/v2/me.json"
interval = "200ms"
timeout = "2s"

[[rule]]
name = "Auth down"
severity = "P1"
expr = "count(status == 401) > 0"
window = "2s"
keep_firing_for = "1s"
runbook = "https://oncall:{RUNBOOK_PASSWORD}@wiki.example.test/runbooks/auth"

[server]
listen = "127.0.0.1:{port}"

[store]
path = "{database}"

[history]
retention = "2d"
"#
    )
}

/// Starts `loftwatch run` on a fresh port with its log in `name.log` inside `folder`.
fn spawn_daemon(folder: &Path, name: &str, sim: &SimulatorHandle, probe: &str) -> Daemon {
    let port = support::unused_port();
    let config_path = folder.join(format!("{name}.toml"));
    let database = folder.join("loftwatch.db");
    std::fs::write(
        &config_path,
        config(&sim.base_url(), port, &database, probe),
    )
    .expect("write the configuration");
    let log = folder.join(format!("{name}.log"));
    let stderr = std::fs::File::create(&log).expect("create the log file");
    let child = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("SALESLOFT_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("start loftwatch run");
    Daemon { child, port, log }
}

async fn start_simulator() -> SimulatorHandle {
    simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator")
}

/// Runs headless Chromium on `url` with `extra` arguments and returns its standard output.
async fn chromium(profile: &Path, url: &str, extra: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package, or run scripts/test"
    );
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .expect("chromium finished within 90s")
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the text between `<section id="ID"` and the next `</section>`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id} in the DOM:\n{dom}"));
    let rest = &dom[start..];
    let end = rest.find("</section>").unwrap_or(rest.len());
    &rest[..end]
}

/// Returns the `data-points` values of the chart paths of class `series NAME`.
fn series_points(dom: &str, name: &str) -> Vec<u64> {
    let marker = format!("class=\"series {name}\"");
    dom.match_indices(&marker)
        .map(|(index, _)| {
            let tag = &dom[index..];
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            let value = tag
                .split("data-points=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("path without data-points: {tag}"));
            value.parse().expect("data-points is a number")
        })
        .collect()
}

#[tokio::test]
async fn dashboard_shows_firing_alert_and_charts() {
    let sim = start_simulator().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let daemon = spawn_daemon(folder.path(), "dashboard", &sim, "me");
    daemon.wait_ready().await;
    // A few good results first, so the charts have latencies, then the fault.
    support::wait_until("ok results", Duration::from_secs(20), || async {
        let status = daemon.get_json("/api/v1/status").await?;
        (status["probes"][0]["outcome"] == "ok").then_some(())
    })
    .await;
    sim.set_fault(Fault::new(
        Some("/v2/me.json"),
        FaultEffect::Status(vec![401]),
    ));
    let alerts = support::wait_until("a firing alert", Duration::from_secs(20), || async {
        let alerts = daemon.get_json("/api/v1/alerts").await?;
        let firing = alerts["alerts"]
            .as_array()?
            .iter()
            .any(|alert| alert["state"] == "firing");
        firing.then_some(alerts)
    })
    .await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["rule"], "Auth down");
    assert_eq!(alert["severity"], "P1");
    assert_eq!(
        alert["runbook"], "https://wiki.example.test/runbooks/auth",
        "the runbook is shown without its password"
    );
    support::wait_until("a logged notification", Duration::from_secs(20), || async {
        let data = daemon.get_json("/api/v1/notifications").await?;
        (!data["notifications"].as_array()?.is_empty()).then_some(())
    })
    .await;

    let profile = tempfile::tempdir().expect("chromium profile folder");
    let dom = chromium(profile.path(), &daemon.url("/"), &["--dump-dom"]).await;
    let logs = daemon.log_text();

    let alerts_html = section(&dom, "alerts");
    assert!(alerts_html.contains("Auth down"), "{alerts_html}\n{logs}");
    assert!(alerts_html.contains("firing"), "{alerts_html}");
    assert!(
        alerts_html.contains("href=\"https://wiki.example.test/runbooks/auth\""),
        "{alerts_html}"
    );
    let probes_html = section(&dom, "probes");
    assert!(probes_html.contains("http_4xx"), "{probes_html}");
    assert!(probes_html.contains("401"), "{probes_html}");
    let notifications_html = section(&dom, "notifications");
    assert!(
        notifications_html.contains("Auth down"),
        "{notifications_html}"
    );
    assert!(
        section(&dom, "silences").contains("No silences"),
        "without silences the section says none"
    );
    for percentile in ["p50", "p90", "p99"] {
        let points = series_points(&dom, percentile);
        assert_eq!(points.len(), 2, "{percentile}: one chart per range");
        assert!(
            points.iter().all(|&count| count >= 1),
            "{percentile} charts are empty: {points:?}"
        );
    }
    let error_rates = series_points(&dom, "error-rate");
    assert_eq!(error_rates.len(), 2, "one error-rate chart per range");
    assert!(
        error_rates.iter().all(|&count| count >= 1),
        "{error_rates:?}"
    );
    assert!(
        section(&dom, "errors").contains("http_4xx"),
        "error classes are listed"
    );
    assert!(!dom.contains(RUNBOOK_PASSWORD), "the DOM shows a password");
    assert!(!dom.contains(TOKEN), "the DOM shows the SalesLoft token");

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let screenshot = target.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let screenshot_arg = format!("--screenshot={}", screenshot.display());
    chromium(
        profile.path(),
        &daemon.url("/"),
        &[&screenshot_arg, "--window-size=1400,1000"],
    )
    .await;
    let image = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(image.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    assert!(image.len() > 10_000, "screenshot of {} bytes", image.len());

    let status = daemon.terminate().await;
    assert!(status.success(), "loftwatch exited with {status}");
}

/// Sums the run counts of a history response.
fn total_runs(history: &Value) -> u64 {
    history["points"]
        .as_array()
        .expect("history has points")
        .iter()
        .map(|point| point["count"].as_u64().expect("point has a count"))
        .sum()
}

#[tokio::test]
async fn history_survives_restart() {
    let sim = start_simulator().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let first = spawn_daemon(folder.path(), "first", &sim, "me");
    first.wait_ready().await;
    let before = support::wait_until("five runs in the history", Duration::from_secs(20), || {
        let first = &first;
        async move {
            let history = first.get_json("/api/v1/history?probe=me&range=1h").await?;
            (total_runs(&history) >= 5).then_some(total_runs(&history))
        }
    })
    .await;
    let status = first.terminate().await;
    assert!(status.success(), "first run exited with {status}");

    // The second run probes under another name, so every run of `me` it returns was read
    // from the database.
    let second = spawn_daemon(folder.path(), "second", &sim, "other");
    second.wait_ready().await;
    for range in ["1h", "24h"] {
        let path = format!("/api/v1/history?probe=me&range={range}");
        let history = second.get_json(&path).await.expect("history responds");
        assert_eq!(history["range"], range);
        assert_eq!(history["step_ms"], 60_000);
        let after = total_runs(&history);
        assert!(
            after >= before,
            "{range}: {after} runs after the restart, {before} before\n{}",
            second.log_text()
        );
        let point = &history["points"][0];
        assert!(point["p50_ms"].as_f64().is_some(), "{point}");
        assert!(
            point["p99_ms"].as_f64() >= point["p50_ms"].as_f64(),
            "{point}"
        );
    }
    let bad = reqwest::get(second.url("/api/v1/history?probe=me&range=7d"))
        .await
        .expect("history responds");
    assert_eq!(bad.status(), 400);
    let missing = reqwest::get(second.url("/api/v1/history"))
        .await
        .expect("history responds");
    assert_eq!(missing.status(), 400);
    let status = second.terminate().await;
    assert!(status.success(), "second run exited with {status}");
}
