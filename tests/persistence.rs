//! Persistence end to end: the `loftwatch` binary runs against the simulator and a real SMTP
//! server (aiosmtpd) with its database in a temporary folder, and is stopped with SIGTERM or
//! killed with SIGKILL between runs. Emails are counted by their `X-Loftwatch-Transition`
//! header (alert id, transition sequence number, state).

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use support::smtp::SmtpServer;

const TOKEN: &str = "persistence-test-token-51c2";

/// Timing of the one rule and probe of a test configuration.
#[derive(Debug, Clone, Copy)]
struct Timing {
    interval: &'static str,
    window: &'static str,
    keep_firing_for: &'static str,
}

const CALM: Timing = Timing {
    interval: "100ms",
    window: "1s",
    keep_firing_for: "1s",
};

/// A simulator, an SMTP server and a folder with the configuration, the database and the logs
/// of every daemon run.
struct Harness {
    sim: Arc<SimulatorHandle>,
    smtp: SmtpServer,
    folder: tempfile::TempDir,
    config_path: PathBuf,
    runs: usize,
}

impl Harness {
    async fn start(timing: Timing) -> Harness {
        let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
            .await
            .expect("start the simulator");
        let smtp = SmtpServer::start().await;
        let folder = tempfile::tempdir().expect("temporary folder");
        let config_path = folder.path().join("alerts.toml");
        // The database sits in a folder that does not exist yet, which loftwatch creates.
        let database = folder.path().join("state").join("loftwatch.db");
        let config = config(&sim.base_url(), smtp.port(), &database, timing);
        std::fs::write(&config_path, config).expect("write the configuration");
        Harness {
            sim: Arc::new(sim),
            smtp,
            folder,
            config_path,
            runs: 0,
        }
    }

    fn database(&self) -> PathBuf {
        self.folder.path().join("state").join("loftwatch.db")
    }

    /// Starts `loftwatch run` with its log in `run-N.log`.
    fn spawn(&mut self) -> Child {
        self.runs += 1;
        let log_path = self.folder.path().join(format!("run-{}.log", self.runs));
        let log = File::create(log_path).expect("create the log file");
        spawn_loftwatch(&self.config_path, Stdio::from(log))
    }

    fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let path = self.folder.path().join(format!("run-{run}.log"));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                format!("--- run {run} ---\n{text}")
            })
            .collect()
    }

    /// Returns how many emails arrived for each transition key.
    fn deliveries(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for mail in self.smtp.messages() {
            let key = transition_header(&mail.raw).expect("email has X-Loftwatch-Transition");
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    fn count(&self, state: &str) -> usize {
        self.deliveries()
            .iter()
            .filter(|(key, _)| key.ends_with(&format!(" {state}")))
            .map(|(_, count)| count)
            .sum()
    }

    async fn wait_for(&self, state: &str, count: usize, timeout: Duration) {
        let what = format!("{count} {state} emails");
        support::wait_until(&what, timeout, || async {
            (self.count(state) >= count).then_some(())
        })
        .await;
    }

    fn fail_auth(&self) {
        self.sim.set_fault(Fault::new(
            Some("/v2/me.json"),
            FaultEffect::Status(vec![401]),
        ));
    }
}

/// Checks that exactly two emails arrived: transition 1 firing and transition 2 resolved of
/// one alert.
fn assert_fired_and_resolved_once(harness: &Harness) {
    let deliveries = harness.deliveries();
    let logs = harness.logs();
    let firing = deliveries
        .keys()
        .find(|key| key.ends_with(" 1 firing"))
        .unwrap_or_else(|| panic!("no firing email: {deliveries:?}\n{logs}"));
    let alert_id = firing.split(' ').next().unwrap();
    let expected: BTreeMap<String, usize> = [
        (format!("{alert_id} 1 firing"), 1),
        (format!("{alert_id} 2 resolved"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(deliveries, expected, "{logs}");
}

fn config(base_url: &str, smtp_port: u16, database: &Path, timing: Timing) -> String {
    let Timing {
        interval,
        window,
        keep_firing_for,
    } = timing;
    let database = database.display();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[salesloft]
base_url = "{base_url}"
credential = {{ env = "SALESLOFT_TOKEN" }}

[engine]
eval_interval = "50ms"

[[probe]]
name = "me"
path = "/v2/me.json"
interval = "{interval}"
timeout = "2s"

[[rule]]
name = "Auth down"
severity = "P1"
expr = "count(status == 401) > 0"
window = "{window}"
keep_firing_for = "{keep_firing_for}"
runbook = "Rotate the token."

[receivers.email]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "loftwatch <loftwatch@example.test>"
to = ["oncall@example.test"]
timeout = "5s"

[store]
path = "{database}"
"#
    )
}

fn spawn_loftwatch(config: &Path, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loftwatch"))
        .args(["run", "--config"])
        .arg(config)
        .env("SALESLOFT_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start loftwatch run")
}

/// Returns the value of the `X-Loftwatch-Transition` header of a raw message.
fn transition_header(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| line.strip_prefix("X-Loftwatch-Transition: "))
        .map(|value| value.trim().to_owned())
}

/// Sends SIGTERM and waits for the daemon to exit.
async fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid} failed");
    wait_exit(child, Duration::from_secs(20)).await
}

/// Waits for the process to exit, killing it and panicking after `timeout`.
async fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loftwatch did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn restart_while_firing_pages_once() {
    let mut harness = Harness::start(CALM).await;
    let mut daemon = harness.spawn();
    harness.fail_auth();
    harness.wait_for("firing", 1, Duration::from_secs(20)).await;

    let status = terminate(&mut daemon).await;
    assert!(status.success(), "first run exited with {status}");
    let mut daemon = harness.spawn();
    // The fault continues for well past the window: a daemon that forgot the alert would fire
    // again within one probe interval.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let logs = harness.logs();
    assert_eq!(harness.count("firing"), 1, "second firing email\n{logs}");

    harness.sim.clear_faults();
    harness
        .wait_for("resolved", 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = terminate(&mut daemon).await;
    assert!(status.success(), "second run exited with {status}");

    assert_fired_and_resolved_once(&harness);
}

#[tokio::test]
async fn resolved_while_down_sent_after_start() {
    let mut harness = Harness::start(CALM).await;
    let mut daemon = harness.spawn();
    harness.fail_auth();
    harness.wait_for("firing", 1, Duration::from_secs(20)).await;
    let status = terminate(&mut daemon).await;
    assert!(status.success(), "first run exited with {status}");

    // The fault ends while loftwatch is down, for longer than window and keep_firing_for.
    harness.sim.clear_faults();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(harness.count("resolved"), 0);

    let mut daemon = harness.spawn();
    harness
        .wait_for("resolved", 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = terminate(&mut daemon).await;
    assert!(status.success(), "second run exited with {status}");

    // Another restart sends nothing: the alert is stored as resolved.
    let mut daemon = harness.spawn();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = terminate(&mut daemon).await;
    assert!(status.success(), "third run exited with {status}");

    assert_fired_and_resolved_once(&harness);
}

#[tokio::test]
async fn locked_database_rejected() {
    let mut harness = Harness::start(CALM).await;
    let mut first = harness.spawn();
    let log_path = harness.folder.path().join("run-1.log");
    support::wait_until(
        "first loftwatch to open its database",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            async move { text.contains("state restored").then_some(()) }
        },
    )
    .await;

    let second = spawn_loftwatch(&harness.config_path, Stdio::piped());
    let output = tokio::task::spawn_blocking(move || second.wait_with_output())
        .await
        .unwrap()
        .expect("wait for the second loftwatch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "second loftwatch started: {stderr}"
    );
    assert!(stderr.contains("is locked"), "{stderr}");
    assert!(
        stderr.contains("another loftwatch may be running"),
        "{stderr}"
    );
    let database = harness.database().display().to_string();
    assert!(stderr.contains(&database), "{stderr}");

    let status = terminate(&mut first).await;
    assert!(status.success(), "first loftwatch exited with {status}");
}

#[tokio::test]
async fn corrupt_database_rejected_and_kept() {
    let mut harness = Harness::start(CALM).await;
    let database = harness.database();
    std::fs::create_dir_all(database.parent().unwrap()).unwrap();
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&database, &garbage).unwrap();

    let mut daemon = harness.spawn();
    let status = wait_exit(&mut daemon, Duration::from_secs(20)).await;
    let logs = harness.logs();
    assert!(
        !status.success(),
        "loftwatch ran on a corrupt database\n{logs}"
    );
    assert!(logs.contains("is corrupt"), "{logs}");
    assert!(logs.contains(&database.display().to_string()), "{logs}");
    assert!(logs.contains("left untouched"), "{logs}");
    let after = std::fs::read(&database).expect("the database file still exists");
    assert!(after == garbage, "the corrupt database was modified");
}

/// Returns every transition in the database's log as its key, with the outbox status of the
/// email receiver.
fn committed_transitions(database: &Path) -> Vec<(String, String)> {
    let connection = rusqlite::Connection::open(database).expect("open the database");
    let mut statement = connection
        .prepare(
            "SELECT transition_log.alert_id, transition_log.sequence, transition_log.kind,
                    outbox.status
             FROM transition_log JOIN outbox ON outbox.transition_id = transition_log.id
             WHERE outbox.receiver = 'email' ORDER BY transition_log.id",
        )
        .expect("prepare the query");
    statement
        .query_map([], |row| {
            let key = format!(
                "{} {} {}",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?
            );
            Ok((key, row.get::<_, String>(3)?))
        })
        .and_then(|rows| rows.collect())
        .expect("read the transition log")
}

#[tokio::test]
async fn sigkill_during_dispatch_loses_nothing() {
    const KILLS: usize = 50;
    let timing = Timing {
        interval: "100ms",
        window: "300ms",
        keep_firing_for: "100ms",
    };
    let mut harness = Harness::start(timing).await;

    // The fault toggles every 400 ms, so the alert fires and resolves about once a second
    // and kills land before, during and after deliveries.
    let sim = harness.sim.clone();
    let toggler = tokio::spawn(async move {
        loop {
            sim.set_fault(Fault::new(
                Some("/v2/me.json"),
                FaultEffect::Status(vec![401]),
            ));
            tokio::time::sleep(Duration::from_millis(400)).await;
            sim.clear_faults();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    });
    for _ in 0..KILLS {
        let mut daemon = harness.spawn();
        let run_for = rand::random_range(150..1500);
        tokio::time::sleep(Duration::from_millis(run_for)).await;
        daemon.kill().expect("send SIGKILL");
        daemon.wait().expect("reap loftwatch");
    }
    toggler.abort();
    harness.sim.clear_faults();

    // A last run delivers what is left and resolves the alert if it was firing.
    let mut daemon = harness.spawn();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = terminate(&mut daemon).await;
    assert!(status.success(), "last run exited with {status}");

    let committed = committed_transitions(&harness.database());
    let deliveries = harness.deliveries();
    let logs = harness.logs();
    assert!(
        committed.len() >= 10,
        "only {} transitions committed",
        committed.len()
    );
    let mut seen = std::collections::BTreeSet::new();
    for (key, status) in &committed {
        assert!(seen.insert(key.clone()), "transition {key} committed twice");
        assert_eq!(status, "delivered", "outbox status of {key}");
        let count = deliveries.get(key).copied().unwrap_or(0);
        assert!(
            count >= 1,
            "committed transition {key} was never delivered\n{logs}"
        );
        assert!(count <= 2, "transition {key} delivered {count} times");
    }
    for key in deliveries.keys() {
        assert!(
            seen.contains(key),
            "email {key} has no committed transition"
        );
    }
    // Sequence numbers of the alert continue across restarts with no gap.
    let sequences: Vec<u64> = committed
        .iter()
        .map(|(key, _)| key.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=sequences.len() as u64).collect();
    assert_eq!(sequences, expected);
}
