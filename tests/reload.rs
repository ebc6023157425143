//! Configuration reload on SIGHUP: windows and alert state survive, a removed probe's firing
//! alert resolves once and its schedule stops, and an invalid file is rejected while the old
//! configuration keeps running.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorOptions};
use support::smtp::{SmtpServer, decode_with_python};

fn config(base_url: &str, smtp_port: u16, probes: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [salesloft]\nbase_url = \"{base_url}\"\ncredential = {{ env = \"SALESLOFT_TOKEN\" }}\n\
         [engine]\neval_interval = \"100ms\"\nkeep_firing_for = \"1s\"\n\
         [receivers.email]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"loftwatch@example.test\"\nto = [\"oncall@example.test\"]\n\
         [[rule]]\nname = \"API errors\"\nseverity = \"P1\"\nexpr = \"count(status >= 500) > 2\"\n\
         window = \"3s\"\nrunbook = \"Check status.salesloft.com.\"\n"
    );
    for (name, path, interval) in probes {
        text.push_str(&format!(
            "[[probe]]\nname = \"{name}\"\npath = \"{path}\"\ninterval = \"{interval}\"\n"
        ));
    }
    text
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    smtp.messages()
        .iter()
        .map(|mail| decode_with_python(&mail.raw).subject)
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the configuration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_keeps_state_and_resolves_removed() {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let smtp = SmtpServer::start().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = folder.path().join("alerts.toml");
    let base = sim.base_url();
    let first = [
        ("a", "/v2/me.json", "200ms"),
        ("c", "/v2/team.json", "200ms"),
    ];
    write(&path, &config(&base, smtp.port(), &first));
    let log_path = folder.path().join("loftwatch.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
        .args(["run", "--config"])
        .arg(&path)
        .env("SALESLOFT_TOKEN", "reload-test-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start loftwatch run");

    sim.set_fault(Fault::new(
        Some("/v2/team.json"),
        FaultEffect::Status(vec![503]),
    ));
    smtp.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(subjects(&smtp).len(), 1);
    assert!(
        subjects(&smtp)[0].starts_with("[P1 FIRING] API errors on c"),
        "{:?}",
        subjects(&smtp)
    );

    // Change a's interval and add d: c keeps firing, with no second email.
    let second = [
        ("a", "/v2/me.json", "300ms"),
        ("c", "/v2/team.json", "200ms"),
        ("d", "/v2/cadences.json", "200ms"),
    ];
    write(&path, &config(&base, smtp.port(), &second));
    signal(&daemon, "HUP");
    support::wait_until("probe d to run", Duration::from_secs(10), || async {
        (sim.stats().path("/v2/cadences.json") >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        subjects(&smtp).len(),
        1,
        "a reload sent notifications: {:?}",
        subjects(&smtp)
    );

    // An invalid file is rejected and everything keeps running.
    write(&path, "[[probe]]\nname = \"a\"\ninterval = \"soon\"\n");
    signal(&daemon, "HUP");
    let before = sim.stats().path("/v2/me.json");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        sim.stats().path("/v2/me.json") > before,
        "probe a stopped after a rejected reload"
    );
    assert!(
        daemon.try_wait().expect("poll loftwatch").is_none(),
        "loftwatch exited"
    );
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(log.contains("configuration reload rejected"), "{log}");
    assert_eq!(subjects(&smtp).len(), 1);

    // Removing c resolves its alert once and stops its schedule.
    let third = [
        ("a", "/v2/me.json", "300ms"),
        ("d", "/v2/cadences.json", "200ms"),
    ];
    write(&path, &config(&base, smtp.port(), &third));
    signal(&daemon, "HUP");
    smtp.wait_for_messages(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let team_requests = sim.stats().path("/v2/team.json");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.stats().path("/v2/team.json"),
        team_requests,
        "removed probe c still runs"
    );
    let all = subjects(&smtp);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[1].starts_with("[P1 RESOLVED] API errors on c"),
        "{all:?}"
    );

    signal(&daemon, "TERM");
    let status = tokio::task::spawn_blocking(move || daemon.wait())
        .await
        .expect("join")
        .expect("wait for loftwatch");
    assert!(status.success(), "loftwatch exited with {status}");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.contains("reload-test-token"),
        "the token appears in the log"
    );
}
