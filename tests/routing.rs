//! Routing of notifications by the running binary against the simulator and a real SMTP
//! server: inhibition, silences over the CLI and the HTTP API (kept across a reload),
//! maintenance windows, grouping and repeats, each with exact email counts. The paused-clock
//! unit tests of the dispatcher cover the exact timing of group_wait, group_interval and
//! repeat_interval.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use loftwatch::simulator::{
    self, Fault, FaultEffect, SimulatorHandle as Simulator, SimulatorOptions,
};
use support::smtp::{SmtpServer, decode_with_python};
use support::unused_port;

const TOKEN: &str = "routing-test-server-token";

/// Returns a configuration with probes `me` and `team`, rules `Auth down` (any 401),
/// `API errors` (more than two 5xx in 1 s) and `Rate limited` (more than four 429 in 2 s),
/// plus `extra` TOML.
fn config(sim: &Simulator, smtp: &SmtpServer, listen_port: u16, extra: &str) -> String {
    format!(
        "[salesloft]\nbase_url = \"{base}\"\ncredential = {{ env = \"SALESLOFT_TOKEN\" }}\n\
         retry_attempts = 1\nbreaker_failures = 1000\npause_on_429 = false\n\
         [engine]\neval_interval = \"100ms\"\nkeep_firing_for = \"500ms\"\n\
         [server]\nlisten = \"127.0.0.1:{listen_port}\"\ntoken = {{ env = \"SERVER_TOKEN\" }}\n\
         [receivers.email]\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"none\"\n\
         from = \"loftwatch@example.test\"\nto = [\"oncall@example.test\"]\n\
         [[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"100ms\"\n\
         [[probe]]\nname = \"team\"\npath = \"/v2/team.json\"\ninterval = \"100ms\"\n\
         [[rule]]\nname = \"Auth down\"\nseverity = \"P1\"\nexpr = \"count(status == 401) > 0\"\n\
         window = \"1s\"\nrunbook = \"Rotate the token.\"\n\
         [[rule]]\nname = \"API errors\"\nseverity = \"P1\"\nexpr = \"count(status >= 500) > 2\"\n\
         window = \"1s\"\nrunbook = \"Check status.salesloft.com.\"\n\
         [[rule]]\nname = \"Rate limited\"\nseverity = \"P2\"\n\
         expr = \"count(status == 429) > 4\"\nwindow = \"2s\"\nrunbook = \"Slow down.\"\n\
         {extra}",
        base = sim.base_url(),
        smtp = smtp.port(),
    )
}

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(path: &Path) -> Daemon {
        let log = path.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
            .args(["run", "--config"])
            .arg(path)
            .env("SALESLOFT_TOKEN", "routing-test-token")
            .env("SERVER_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start loftwatch run");
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self) {
        signal(&self.child, "TERM");
        let status = tokio::task::spawn_blocking(move || self.child.wait())
            .await
            .expect("join")
            .expect("wait for loftwatch");
        assert!(status.success(), "loftwatch exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    let mut subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|mail| decode_with_python(&mail.raw).subject)
        .collect();
    subjects.sort();
    subjects
}

fn count_starting(subjects: &[String], prefix: &str) -> usize {
    subjects
        .iter()
        .filter(|subject| subject.starts_with(prefix))
        .count()
}

async fn setup(extra_for: impl Fn(&Simulator, &SmtpServer, u16) -> String) -> Setup {
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .expect("start the simulator");
    let smtp = SmtpServer::start().await;
    let folder = tempfile::tempdir().expect("temporary folder");
    let port = unused_port();
    let path = folder.path().join("alerts.toml");
    let text = extra_for(&sim, &smtp, port);
    std::fs::write(&path, text).expect("write the configuration");
    let daemon = Daemon::start(&path);
    let server = format!("http://127.0.0.1:{port}");
    support::wait_until("the http server", Duration::from_secs(15), || async {
        let url = format!("{server}/api/v1/silences");
        reqwest::get(&url).await.ok().map(|_| ())
    })
    .await;
    Setup {
        sim,
        smtp,
        daemon,
        server,
        _folder: folder,
    }
}

struct Setup {
    sim: Simulator,
    smtp: SmtpServer,
    daemon: Daemon,
    server: String,
    _folder: tempfile::TempDir,
}

fn status_fault(path: &str, codes: Vec<u16>) -> Fault {
    Fault::new(Some(path), FaultEffect::Status(codes))
}

/// Runs `loftwatch silence ...` against `server` with the test token.
async fn silence_cli(server: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loftwatch"));
    command
        .arg("silence")
        .args(["--server", server, "--token", TOKEN])
        .args(args);
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run loftwatch silence")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_down_inhibits_api_errors() {
    let setup = setup(|sim, smtp, port| {
        let extra = "[[inhibit]]\nsource_matchers = ['alertname = \"Auth down\"']\n\
                     target_matchers = ['alertname =~ \"High latency|API errors\"']\n\
                     equal = [\"probe\"]\n";
        config(sim, smtp, port, extra)
    })
    .await;
    // me alternates 401 and 503: Auth down fires on the first response, API errors on the
    // third 503, and is inhibited. team returns 503 only: its API errors is not inhibited.
    setup
        .sim
        .set_fault(status_fault("/v2/me.json", vec![401, 503]));
    setup
        .sim
        .set_fault(status_fault("/v2/team.json", vec![503]));
    setup
        .smtp
        .wait_for_messages(2, Duration::from_secs(20))
        .await;
    support::wait_until(
        "API errors on me to fire",
        Duration::from_secs(10),
        || async {
            let log = setup.daemon.log();
            log.contains("reason=\"inhibited\"").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(count_starting(&all, "[P1 FIRING] API errors on team"), 1);
    assert_eq!(count_starting(&all, "[P1 FIRING] Auth down on me"), 1);
    setup.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_cli_mutes_and_survives_reload() {
    let setup = setup(|sim, smtp, port| config(sim, smtp, port, "")).await;
    let server = setup.server.clone();

    // Without the token the API rejects the silence.
    let client = reqwest::Client::new();
    let rejected = client
        .post(format!("{server}/api/v1/silences"))
        .body("{}")
        .send()
        .await
        .expect("post without token");
    assert_eq!(rejected.status().as_u16(), 401);

    let added = silence_cli(
        &server,
        &[
            "add",
            "probe=\"me\"",
            "--duration",
            "1h",
            "--author",
            "ana",
            "--comment",
            "SalesLoft maintenance",
        ],
    )
    .await;
    assert!(added.status.success(), "{added:?}");
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    assert_eq!(id.len(), 16, "{id:?}");

    setup.sim.set_fault(status_fault("/v2/me.json", vec![503]));
    setup
        .sim
        .set_fault(status_fault("/v2/team.json", vec![503]));
    setup
        .smtp
        .wait_for_messages(1, Duration::from_secs(20))
        .await;
    support::wait_until(
        "the silenced alert to fire",
        Duration::from_secs(10),
        || async {
            setup
                .daemon
                .log()
                .contains("reason=\"silenced\"")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(count_starting(&all, "[P1 FIRING] API errors on team"), 1);

    // A reload keeps the silence.
    signal(&setup.daemon.child, "HUP");
    support::wait_until("the reload", Duration::from_secs(10), || async {
        setup
            .daemon
            .log()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await;
    let listed = silence_cli(&server, &["list", "--json"]).await;
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json list");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(subjects(&setup.smtp).len(), 1);

    // Expiring it sends the firing alert of me, once.
    let expired = silence_cli(&server, &["expire", &id]).await;
    assert!(expired.status.success(), "{expired:?}");
    setup
        .smtp
        .wait_for_messages(2, Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(count_starting(&all, "[P1 FIRING] API errors on me"), 1);

    // Both resolve once.
    setup.sim.clear_faults();
    setup
        .smtp
        .wait_for_messages(4, Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(count_starting(&all, "[P1 RESOLVED] API errors on me"), 1);
    assert_eq!(count_starting(&all, "[P1 RESOLVED] API errors on team"), 1);

    let missing = silence_cli(&server, &["expire", "0000000000000000"]).await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(
        !setup.daemon.log().contains(TOKEN),
        "the token appears in the log"
    );
    setup.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_window_mutes_matching_probe() {
    // A window that starts every minute and lasts an hour is always open.
    let setup = setup(|sim, smtp, port| {
        let extra = "[[maintenance]]\nname = \"deploy\"\ncron = \"* * * * *\"\n\
                     duration = \"1h\"\ntimezone = \"Europe/Berlin\"\n\
                     matchers = ['probe = \"me\"']\n";
        config(sim, smtp, port, extra)
    })
    .await;
    setup.sim.set_fault(status_fault("/v2/me.json", vec![401]));
    setup
        .sim
        .set_fault(status_fault("/v2/team.json", vec![401]));
    setup
        .smtp
        .wait_for_messages(1, Duration::from_secs(20))
        .await;
    support::wait_until(
        "the muted alert to fire",
        Duration::from_secs(10),
        || async {
            setup
                .daemon
                .log()
                .contains("reason=\"maintenance\"")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(count_starting(&all, "[P1 FIRING] Auth down on team"), 1);
    setup.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_then_repeat_firing_alerts() {
    // me alternates 401 and 429: Auth down fires on the first response and Rate limited about
    // a second later. Grouped by probe with a 2 s group_wait, both leave together; grouped by
    // alert they would arrive a second apart. Each then repeats every 3 s.
    let setup = setup(|sim, smtp, port| {
        let extra = "[routing]\ngroup_by = [\"probe\"]\ngroup_wait = \"2s\"\n\
                     repeat_interval = \"3s\"\n";
        config(sim, smtp, port, extra)
    })
    .await;
    setup
        .sim
        .set_fault(status_fault("/v2/me.json", vec![401, 429]));
    let first = setup
        .smtp
        .wait_for_messages(2, Duration::from_secs(20))
        .await;
    let arrivals: Vec<_> = first.iter().map(|mail| mail.arrived).collect();
    let spread = arrivals
        .iter()
        .max()
        .unwrap()
        .duration_since(*arrivals.iter().min().unwrap())
        .unwrap_or_default();
    assert!(spread < Duration::from_millis(500), "spread {spread:?}");
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        count_starting(&all, "[P1 FIRING] Auth down on me"),
        1,
        "{all:?}"
    );
    assert_eq!(
        count_starting(&all, "[P2 FIRING] Rate limited on me"),
        1,
        "{all:?}"
    );

    // Sampled halfway between the first repeats (3 s after the group left) and the second.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let all = subjects(&setup.smtp);
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(
        count_starting(&all, "[P1 FIRING] Auth down on me"),
        2,
        "{all:?}"
    );
    assert_eq!(
        count_starting(&all, "[P2 FIRING] Rate limited on me"),
        2,
        "{all:?}"
    );
    assert!(setup.daemon.log().contains("notifying firing alert again"));
    setup.daemon.stop().await;
}
