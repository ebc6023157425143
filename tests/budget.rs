//! The circuit breaker, the rate budget and their alert signals against the in-process
//! simulator, and the cost report of `loftwatch validate`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loftwatch::alert::{AlertState, Engine, TransitionKind};
use loftwatch::config::{self, Config};
use loftwatch::probe::{ProbeEvent, SkipReason, spawn_probe};
use loftwatch::salesloft::{BreakerState, Client, Secret};
use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use loftwatch::stats::Recorder;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const TOKEN: &str = "budget-test-token-5e1a";
const ME_PROBE: &str = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"100ms\"\n";

async fn start_sim() -> SimulatorHandle {
    simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
        .await
        .unwrap()
}

/// Parses a configuration against `base_url` with `extra` appended.
fn config(base_url: &str, extra: &str) -> Config {
    config_open_for(base_url, "1s", extra)
}

/// Parses a configuration like [`config`] with a breaker that stays open for `open_for`.
fn config_open_for(base_url: &str, open_for: &str, extra: &str) -> Config {
    let text = format!(
        "[salesloft]\nbase_url = \"{base_url}\"\ncredential = {{ env = \"SALESLOFT_TOKEN\" }}\n\
         retry_attempts = 1\nbreaker_failures = 3\nbreaker_open_for = \"{open_for}\"\n{extra}"
    );
    config::parse(&text, "test.toml").expect("the test configuration is valid")
}

/// Spawns every probe of `config` through `client`.
fn spawn_all(
    config: &Config,
    client: &Arc<Client>,
) -> (mpsc::UnboundedReceiver<ProbeEvent>, watch::Sender<bool>) {
    let (events, receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    for spec in &config.probes {
        spawn_probe(
            Arc::new(spec.clone()),
            client.clone(),
            events.clone(),
            shutdown.clone(),
        );
    }
    (receiver, stop)
}

#[tokio::test]
async fn breaker_opens_and_sends_one_trial() {
    let sim = start_sim().await;
    let config = config(&sim.base_url(), ME_PROBE);
    let client = Arc::new(Client::new(&config.salesloft, Secret::new(TOKEN)).unwrap());
    sim.set_fault(Fault::new(None, FaultEffect::Status(vec![503])));
    let (mut events, _stop) = spawn_all(&config, &client);

    let mut results = 0;
    let mut skipped = 0;
    let deadline = Instant::now() + Duration::from_millis(1800);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            ProbeEvent::Result(result) => {
                assert_eq!(result.status, Some(503));
                results += 1;
            }
            ProbeEvent::Skipped { reason, count, .. } => {
                assert_eq!(reason, SkipReason::CircuitOpen);
                skipped += count;
            }
        }
    }
    // Three failures open the breaker for 1 s; its one trial at about 1.3 s fails again.
    assert_eq!(results, 4, "three failures and one trial");
    assert!(skipped >= 8, "ticks while open are skipped, got {skipped}");
    assert_eq!(client.breakers().state(client.host()), BreakerState::Open);

    sim.clear_faults();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(client.breakers().state(client.host()), BreakerState::Closed);
}

#[tokio::test]
async fn circuit_alert_holds_without_data() {
    let sim = start_sim().await;
    let rules = "[[rule]]\nname = \"circuit\"\nseverity = \"P1\"\nexpr = \"circuit_open > 0\"\n\
                 window = \"1s\"\nrunbook = \"r\"\n\
                 [[rule]]\nname = \"errors\"\nseverity = \"P1\"\n\
                 expr = \"count(status >= 500) > 0\"\nwindow = \"1s\"\nkeep_firing_for = \"0s\"\n\
                 runbook = \"r\"\n";
    // The breaker opens at about 0.3 s and sends no trial before 3.3 s, so the 1 s windows
    // are empty from about 1.3 s.
    let config = config_open_for(&sim.base_url(), "3s", &format!("{ME_PROBE}{rules}"));
    let client = Arc::new(Client::new(&config.salesloft, Secret::new(TOKEN)).unwrap());
    sim.set_fault(Fault::new(None, FaultEffect::Status(vec![500])));
    let (mut events, _stop) = spawn_all(&config, &client);
    let mut recorder = Recorder::new(Duration::from_secs(600), Duration::from_secs(60));
    let mut engine = Engine::new(&config.rules, &config.probes, Arc::from("test"));

    let deadline = Instant::now() + Duration::from_millis(2500);
    let mut fired = Vec::new();
    let mut resolved = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if let ProbeEvent::Result(result) = event {
            recorder.record(&result);
        }
        let now = Instant::now();
        for transition in engine.evaluate_with(&recorder, &*client, now, SystemTime::now(), None) {
            match transition.kind {
                TransitionKind::Firing => fired.push(transition.rule.to_string()),
                TransitionKind::Resolved => resolved.push(transition.rule.to_string()),
            }
        }
    }
    assert!(
        fired.contains(&"circuit".to_owned()),
        "{fired:?} {:?}",
        engine.snapshot()
    );
    assert!(fired.contains(&"errors".to_owned()), "{fired:?}");
    // The 1 s window emptied while the breaker skipped ticks: no data, so no resolve.
    assert!(resolved.is_empty(), "{resolved:?}");
    let errors = engine
        .snapshot()
        .into_iter()
        .find(|status| &*status.rule == "errors")
        .expect("errors alert");
    assert_eq!(errors.state, AlertState::Firing);
}

#[tokio::test]
async fn budget_rule_fires_when_drained() {
    let sim = start_sim().await;
    let rules = "[[rule]]\nname = \"budget\"\nseverity = \"P2\"\n\
                 expr = \"min(ratelimit_remaining) < 60\"\nwindow = \"3m\"\nrunbook = \"r\"\n";
    let config = config(&sim.base_url(), &format!("{ME_PROBE}{rules}"));
    let client = Arc::new(Client::new(&config.salesloft, Secret::new(TOKEN)).unwrap());
    let (mut events, _stop) = spawn_all(&config, &client);
    let mut recorder = Recorder::new(Duration::from_secs(600), Duration::from_secs(600));
    let mut engine = Engine::new(&config.rules, &config.probes, Arc::from("test"));

    let mut drained = false;
    let mut fired = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let ProbeEvent::Result(result) = event else {
            continue;
        };
        recorder.record(&result);
        let transitions = engine.evaluate(&recorder, Instant::now(), SystemTime::now(), None);
        if !drained {
            assert!(transitions.is_empty(), "fired before the drain");
            // Another client of the team spends all but 10 units.
            let left = sim.consume_budget(0);
            sim.consume_budget(left.saturating_sub(10));
            drained = true;
        } else if !transitions.is_empty() {
            assert_eq!(&*transitions[0].rule, "budget");
            fired = true;
            break;
        }
    }
    assert!(
        fired,
        "the budget rule fires once the remaining budget is under 60"
    );
}

#[tokio::test]
async fn low_priority_pauses_below_floor() {
    let sim = start_sim().await;
    let probes = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\ninterval = \"100ms\"\n\
                  [[probe]]\nname = \"team\"\npath = \"/v2/team.json\"\ninterval = \"100ms\"\n\
                  priority = \"low\"\n";
    let config = config(&sim.base_url(), probes);
    let client = Arc::new(Client::new(&config.salesloft, Secret::new(TOKEN)).unwrap());
    // Leave 40 units, under the floor of 60.
    let left = sim.consume_budget(0);
    sim.consume_budget(left.saturating_sub(40));
    let (mut events, _stop) = spawn_all(&config, &client);

    let mut low_skips = 0;
    let mut low_results = 0;
    let mut normal_results = 0;
    let deadline = Instant::now() + Duration::from_millis(800);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match event {
            ProbeEvent::Result(result) if &*result.probe == "team" => low_results += 1,
            ProbeEvent::Result(_) => normal_results += 1,
            ProbeEvent::Skipped { probe, reason, .. } if &*probe == "team" => {
                assert_eq!(reason, SkipReason::BudgetFloor);
                low_skips += 1;
            }
            ProbeEvent::Skipped { .. } => {}
        }
    }
    assert!(
        normal_results >= 5,
        "normal probes keep running: {normal_results}"
    );
    assert!(low_skips >= 4, "the low-priority probe pauses: {low_skips}");
    // Its first tick may come before any response reported the remaining budget.
    assert!(low_results <= 1, "low-priority results: {low_results}");
}

fn validate(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loftwatch.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
        .arg("validate")
        .arg(&path)
        .output()
        .expect("run loftwatch validate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn validate_reports_default_cost() {
    let (code, stdout, stderr) = validate(include_str!("../alerts.toml"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("probes cost 12.0 per minute of 12.0 allowed"),
        "{stdout}"
    );
    assert!(stdout.contains("probe \"me\": 6.0 per minute"), "{stdout}");
}

#[test]
fn validate_rejects_deep_page() {
    let text = "[[probe]]\nname = \"deep\"\npath = \"/v2/people.json?per_page=1&page=200\"\n\
                interval = \"1m\"\n";
    let (code, _stdout, stderr) = validate(text);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(":3:8: probe[0].path: page 200 costs 8"),
        "{stderr}"
    );
}

#[test]
fn validate_rejects_over_share() {
    let text = "[salesloft]\nbudget_share = 0.01\n\
                [[probe]]\nname = \"fast\"\npath = \"/v2/me.json\"\ninterval = \"5s\"\n";
    let (code, stdout, stderr) = validate(text);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stdout.contains("probes cost 12.0 per minute of 6.0"),
        "{stdout}"
    );
    assert!(
        stderr.contains(":2:16: salesloft.budget_share: probes cost 12.0 per minute"),
        "{stderr}"
    );
}
