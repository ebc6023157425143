//! loftwatch under systemd. The unit file passes `systemd-analyze verify` and its security
//! check, and the daemon sends the sd_notify protocol in order. A SIGTERM lets a slow probe run
//! finish and exports its result. Logs suit journald and log shippers. `cargo deb` builds a
//! package with the binary, the unit, the configuration as a conffile and the docs.
//!
//! The daemon runs as a child process with `NOTIFY_SOCKET` pointing at a Unix datagram socket
//! that the test binds, so the test sees what systemd would see.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use loftwatch::simulator::{self, Delay, Fault, FaultEffect, SimulatorOptions};
use support::otlp::{OtlpReceiver, attribute_map};

const UNIT: &str = "systemd/loftwatch.service";

/// Largest exposure score of `systemd-analyze security` that the unit may have.
const MAX_EXPOSURE: f64 = 1.5;

/// Writes the unit to a temporary folder with `ExecStart=` pointing at the binary under test,
/// because `systemd-analyze verify` rejects a unit whose binary does not exist.
fn unit_for_test_binary(folder: &Path) -> PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("read the unit file");
    assert!(
        text.contains("ExecStart=/usr/bin/loftwatch "),
        "the unit does not start /usr/bin/loftwatch"
    );
    let text = text.replace(
        "ExecStart=/usr/bin/loftwatch ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_loftwatch")),
    );
    let path = folder.join("loftwatch.service");
    std::fs::write(&path, text).expect("write the unit copy");
    path
}

/// Returns the value of every `key=` line of the unit, in order.
fn directive(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let unit = unit_for_test_binary(folder.path());
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze (install the systemd package)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("loftwatch.service"),
        "verify warned about the unit: {stderr}"
    );
}

#[test]
fn unit_declares_service_contract() {
    let unit = std::fs::read_to_string(UNIT).expect("read the unit file");
    let expected = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        (
            "ExecStart",
            "/usr/bin/loftwatch run --config /etc/loftwatch/alerts.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("StateDirectory", "loftwatch"),
        ("ConfigurationDirectory", "loftwatch"),
        ("DynamicUser", "yes"),
    ];
    for (key, value) in expected {
        assert_eq!(directive(&unit, key), vec![value.to_owned()], "{key}=");
    }
    let credentials = directive(&unit, "LoadCredential");
    assert!(
        credentials.contains(&"salesloft-token:/etc/loftwatch/credentials/salesloft-token".into()),
        "{credentials:?}"
    );
    assert!(
        credentials.contains(&"smtp-password:/etc/loftwatch/credentials/smtp-password".into()),
        "{credentials:?}"
    );
    let watchdog = directive(&unit, "WatchdogSec");
    assert_eq!(watchdog.len(), 1, "WatchdogSec= is missing");
    let stop = directive(&unit, "TimeoutStopSec");
    let stop: u64 = stop[0]
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    // Probes, notifications and the final OTLP export each get up to the shutdown grace.
    let needed = 3 * loftwatch::daemon::SHUTDOWN_GRACE.as_secs();
    assert!(stop > needed, "TimeoutStopSec={stop}s is below {needed}s");
}

#[test]
fn unit_allows_network_and_scores_low_exposure() {
    let unit = std::fs::read_to_string(UNIT).expect("read the unit file");
    let families = directive(&unit, "RestrictAddressFamilies").join(" ");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(
            families.split(' ').any(|f| f == family),
            "{family} not allowed"
        );
    }
    assert!(
        directive(&unit, "IPAddressDeny").is_empty(),
        "IPAddressDeny= blocks SalesLoft"
    );
    assert!(
        directive(&unit, "PrivateNetwork").is_empty(),
        "PrivateNetwork= blocks SalesLoft"
    );

    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(UNIT)
        .output()
        .expect("run systemd-analyze (install the systemd package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in: {stdout}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure from {line:?}"));
    assert!(score <= MAX_EXPOSURE, "{line}");
}

/// Datagrams the daemon sent to its `NOTIFY_SOCKET`, collected by a thread.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind(folder: &Path) -> NotifySocket {
        let path = folder.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set a read timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let collected = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            // The thread ends when the test drops the collected list.
            while Arc::strong_count(&collected) > 1 {
                if let Ok(length) = socket.recv(&mut buffer) {
                    let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    collected.lock().unwrap().push(text);
                }
            }
        });
        NotifySocket { path, messages }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for a message after index `after` that has the line `line`, and returns its index.
    async fn wait_for(&self, line: &str, after: Option<usize>, timeout: Duration) -> usize {
        let start = after.map_or(0, |index| index + 1);
        support::wait_until(&format!("sd_notify {line}"), timeout, || async {
            let messages = self.messages();
            messages
                .iter()
                .enumerate()
                .skip(start)
                .find(|(_, message)| message.lines().any(|l| l == line))
                .map(|(index, _)| index)
        })
        .await
    }
}

fn daemon_config(base_url: &str, otlp: Option<&str>) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [salesloft]\nbase_url = \"{base_url}\"\ncredential = {{ env = \"SALESLOFT_TOKEN\" }}\n\
         [engine]\neval_interval = \"100ms\"\n\
         [[rule]]\nname = \"API errors\"\nseverity = \"P1\"\nexpr = \"count(status >= 500) > 5\"\n\
         window = \"1m\"\nrunbook = \"Check status.salesloft.com.\"\n\
         [[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"300ms\"\ntimeout = \"5s\"\n"
    );
    if let Some(endpoint) = otlp {
        text.push_str(&format!(
            "[receivers.otlp]\nendpoint = \"{endpoint}\"\nexport_interval = \"1h\"\ntimeout = \"3s\"\n"
        ));
    }
    text
}

/// Starts `loftwatch run` on `config` with stderr to `log` and the extra environment `env`.
fn start_daemon(folder: &Path, config: &str, log: &Path, env: &[(&str, &str)]) -> Child {
    let path = folder.join("alerts.toml");
    std::fs::write(&path, config).expect("write the configuration");
    let mut command = Command::new(env!("CARGO_BIN_EXE_loftwatch"));
    command
        .args(["run", "--config"])
        .arg(&path)
        .env("SALESLOFT_TOKEN", "systemd-test-token")
        .env_remove("JOURNAL_STREAM")
        .env_remove("LOFTWATCH_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("create the log file"));
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("start loftwatch run")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits up to `timeout` for the child to exit, killing it if it does not.
async fn wait_for_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll loftwatch") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loftwatch did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sd_notify_sequence_in_order() {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let folder = tempfile::tempdir().expect("temporary folder");
    let notify = NotifySocket::bind(folder.path());
    let log = folder.path().join("loftwatch.log");
    let socket = notify
        .path
        .to_str()
        .expect("socket path is UTF-8")
        .to_owned();
    // Without WATCHDOG_PID, sd-notify 0.5 enables the watchdog for any process.
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("WATCHDOG_USEC", "400000"),
    ];
    let mut daemon = start_daemon(
        folder.path(),
        &daemon_config(&sim.base_url(), None),
        &log,
        &env,
    );
    let wait = Duration::from_secs(15);

    let ready = notify.wait_for("READY=1", None, wait).await;
    let watchdog = notify.wait_for("WATCHDOG=1", Some(ready), wait).await;
    signal(&daemon, "HUP");
    let reloading = notify.wait_for("RELOADING=1", Some(watchdog), wait).await;
    let ready_again = notify.wait_for("READY=1", Some(reloading), wait).await;
    signal(&daemon, "TERM");
    let stopping = notify.wait_for("STOPPING=1", Some(ready_again), wait).await;
    let status = wait_for_exit(&mut daemon, wait).await;
    let messages = notify.messages();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();

    assert!(
        status.success(),
        "loftwatch exited with {status}: {log_text}"
    );
    assert!(
        messages[ready].lines().any(|l| l.starts_with("STATUS=")),
        "READY=1 without STATUS=: {:?}",
        messages[ready]
    );
    assert!(
        messages[reloading]
            .lines()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 without MONOTONIC_USEC=: {:?}",
        messages[reloading]
    );
    assert!(stopping > ready_again, "{messages:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_slow_probe_run() {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let latency = Duration::from_secs(1);
    sim.set_fault(Fault::new(
        Some("/v2/me.json"),
        FaultEffect::Latency(Delay::Fixed(latency)),
    ));
    let collector = OtlpReceiver::start().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let notify = NotifySocket::bind(folder.path());
    let log = folder.path().join("loftwatch.log");
    let socket = notify
        .path
        .to_str()
        .expect("socket path is UTF-8")
        .to_owned();
    let config = daemon_config(&sim.base_url(), Some(&collector.endpoint()));
    let env = [
        ("NOTIFY_SOCKET", socket.as_str()),
        ("LOFTWATCH_LOG_FORMAT", "json"),
    ];
    let mut daemon = start_daemon(folder.path(), &config, &log, &env);

    notify
        .wait_for("READY=1", None, Duration::from_secs(15))
        .await;
    // The first run starts within one interval (300 ms) of start-up and then waits 1 s for
    // the simulator, so it is in flight 600 ms after READY=1.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let terminated_at = SystemTime::now();
    let terminated = Instant::now();
    signal(&daemon, "TERM");
    let status = wait_for_exit(&mut daemon, Duration::from_secs(15)).await;
    let stop_took = terminated.elapsed();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();

    assert!(
        status.success(),
        "loftwatch exited with {status}: {log_text}"
    );
    assert!(
        stop_took < Duration::from_secs(8),
        "the stop took {stop_took:?}"
    );
    let requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|request| request.path == "/v2/me.json")
        .collect();
    let in_flight = requests.iter().find(|request| {
        request.received_at < terminated_at && request.received_at + latency > terminated_at
    });
    let in_flight = in_flight.unwrap_or_else(|| panic!("no request in flight: {requests:?}"));
    assert_eq!(in_flight.status, Some(200), "{in_flight:?}");
    // Every request the simulator answered, the one in flight at SIGTERM included, reached
    // the final metrics export.
    let recorded: u64 = collector
        .histogram_points("http.client.request.duration")
        .iter()
        .filter(|point| {
            attribute_map(&point.attributes)
                .get("loftwatch.probe")
                .map(String::as_str)
                == Some("me")
        })
        .map(|point| point.count)
        .sum();
    assert_eq!(recorded, requests.len() as u64, "{log_text}");
    sim.shutdown().await;
}

/// Starts the daemon with the extra environment `env`, stops it with SIGTERM once it is
/// ready, and returns its exit status and its log.
async fn run_until_ready(env: &[(&str, &str)]) -> (ExitStatus, String) {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let folder = tempfile::tempdir().expect("temporary folder");
    let notify = NotifySocket::bind(folder.path());
    let log = folder.path().join("loftwatch.log");
    let socket = notify
        .path
        .to_str()
        .expect("socket path is UTF-8")
        .to_owned();
    let mut env = env.to_vec();
    env.push(("NOTIFY_SOCKET", socket.as_str()));
    let config = daemon_config(&sim.base_url(), None);
    let mut daemon = start_daemon(folder.path(), &config, &log, &env);
    notify
        .wait_for("READY=1", None, Duration::from_secs(15))
        .await;
    signal(&daemon, "TERM");
    let status = wait_for_exit(&mut daemon, Duration::from_secs(15)).await;
    sim.shutdown().await;
    (status, std::fs::read_to_string(&log).expect("read the log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_as_lines() {
    let (status, text) = run_until_ready(&[("LOFTWATCH_LOG_FORMAT", "json")]).await;

    assert!(status.success(), "loftwatch exited with {status}: {text}");
    let mut messages = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        assert!(value["timestamp"].is_string(), "no timestamp: {line}");
        assert!(value["level"].is_string(), "no level: {line}");
        let message = value["fields"]["message"].as_str().unwrap_or_default();
        messages.push(message.to_owned());
    }
    assert!(
        messages.iter().any(|m| m == "loftwatch started"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "loftwatch stopped"),
        "{messages:?}"
    );
}

fn starts_with_digit(line: &str) -> bool {
    line.chars().next().is_some_and(|c| c.is_ascii_digit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journald_text_logs_are_plain() {
    // systemd sets JOURNAL_STREAM to the device and inode of the journal stream.
    let (status, text) = run_until_ready(&[("JOURNAL_STREAM", "8:12345")]).await;

    assert!(status.success(), "loftwatch exited with {status}: {text}");
    assert!(text.contains("loftwatch started"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in: {text}");
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or_default();
        assert!(
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&first),
            "line does not start with its level: {line}"
        );
        assert!(!starts_with_digit(line), "timestamp in: {line}");
    }

    // Outside journald the same lines carry their own timestamp.
    let (status, text) = run_until_ready(&[]).await;
    assert!(status.success(), "loftwatch exited with {status}: {text}");
    let started = text.lines().find(|line| line.contains("loftwatch started"));
    let started = started.unwrap_or_else(|| panic!("no start line in: {text}"));
    assert!(starts_with_digit(started), "no timestamp in: {started}");
}

/// Runs `dpkg-deb` with `args` and returns its standard output.
fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let output = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .expect("run dpkg-deb");
    assert!(
        output.status.success(),
        "dpkg-deb {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn deb_installs_binary_unit_config_and_docs() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let out = folder.path().join("out");
    // `--no-build --profile dev` packages the debug binary that cargo built for this test
    // instead of a release build, which takes minutes. cargo-deb strips it.
    let output = Command::new(env!("CARGO"))
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--output",
        ])
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo deb (cargo install cargo-deb --locked)");
    assert!(
        output.status.success(),
        "cargo deb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deb = std::fs::read_dir(&out)
        .expect("list the cargo deb output")
        .map(|entry| entry.expect("read an entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .expect("cargo deb wrote no .deb");

    let contents = dpkg_deb(&["--contents"], &deb);
    let files: Vec<&str> = contents
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    let expected = [
        "./usr/bin/loftwatch",
        "./lib/systemd/system/loftwatch.service",
        "./etc/loftwatch/alerts.toml",
        "./usr/share/doc/loftwatch/README.md",
        "./usr/share/doc/loftwatch/deploy.md",
        "./usr/share/doc/loftwatch/rules.md",
        "./usr/share/doc/loftwatch/simulator.md",
    ];
    for file in expected {
        assert!(files.contains(&file), "{file} missing from: {contents}");
    }
    let binary = contents
        .lines()
        .find(|line| line.ends_with("./usr/bin/loftwatch"))
        .expect("binary line");
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");

    let control = dpkg_deb(&["--field"], &deb);
    assert!(control.contains("Package: loftwatch"), "{control}");
    assert!(control.contains("ca-certificates"), "{control}");
    let listing = dpkg_deb(&["--info"], &deb);
    for script in ["conffiles", "postinst", "prerm", "postrm"] {
        assert!(listing.contains(script), "no {script} in: {listing}");
    }
    let control_dir = folder.path().join("control");
    let status = Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(&control_dir)
        .status()
        .expect("run dpkg-deb --control");
    assert!(status.success());
    let conffiles = std::fs::read_to_string(control_dir.join("conffiles")).expect("conffiles");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/loftwatch/alerts.toml"]
    );

    // The packaged files are the ones in the repository, and the binary runs.
    let root = folder.path().join("root");
    let status = Command::new("dpkg-deb")
        .arg("--extract")
        .arg(&deb)
        .arg(&root)
        .status()
        .expect("run dpkg-deb --extract");
    assert!(status.success());
    let unit = std::fs::read(root.join("lib/systemd/system/loftwatch.service")).unwrap();
    assert_eq!(unit, std::fs::read(UNIT).unwrap());
    let version = Command::new(root.join("usr/bin/loftwatch"))
        .arg("--version")
        .output()
        .expect("run the packaged binary");
    let version = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        version.trim(),
        format!("loftwatch {}", env!("CARGO_PKG_VERSION"))
    );
}
