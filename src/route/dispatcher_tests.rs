use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::*;
use crate::alert::Severity;
use crate::route::{GroupSettings, Matcher, RouteSpec, Silence, default_inhibit_rule};
use crate::store::Store;

const RUNNING: [&str; 2] = ["email", "otlp"];

fn transition(rule: &str, probe: &str, severity: Severity, kind: TransitionKind) -> Transition {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    Transition {
        alert_id: format!("{rule}/{probe}"),
        sequence: 1,
        kind,
        rule: Arc::from(rule),
        probe: Arc::from(probe),
        location: Arc::from("default"),
        severity,
        expr: Arc::from("count(status == 401) > 0"),
        value: Some(1.0),
        value_text: "1".to_owned(),
        threshold_text: "> 0".to_owned(),
        window_text: "1m".to_owned(),
        runbook: Arc::from("Rotate the token."),
        summary: "summary".to_owned(),
        at,
        firing_since: at,
    }
}

fn firing(rule: &str, severity: Severity) -> Transition {
    transition(rule, "me", severity, TransitionKind::Firing)
}

fn resolved(rule: &str, severity: Severity) -> Transition {
    transition(rule, "me", severity, TransitionKind::Resolved)
}

/// Plans and "commits" transitions with increasing ids, as the journal would.
struct Harness {
    dispatcher: Dispatcher,
    next_id: i64,
}

impl Harness {
    fn new(config: RoutingConfig, silences: Option<SilenceBook>) -> Harness {
        Harness {
            dispatcher: Dispatcher::new(config, silences),
            next_id: 1,
        }
    }

    /// Returns the receivers planned for each transition.
    fn submit(&mut self, transitions: Vec<Transition>) -> Vec<Vec<&'static str>> {
        let now = Instant::now();
        let planned = self
            .dispatcher
            .plan(transitions, &RUNNING, now, SystemTime::now());
        let receivers = planned.iter().map(|(_, r)| r.clone()).collect();
        let entries = planned
            .into_iter()
            .map(|(transition, receivers)| {
                let id = self.next_id;
                self.next_id += 1;
                (OutboxEntry { id, transition }, receivers)
            })
            .collect();
        self.dispatcher.enqueue(entries, now);
        receivers
    }

    fn due(&mut self) -> Vec<RoutedEntry> {
        self.dispatcher.take_due(Instant::now())
    }
}

fn grouped_by_probe(group_wait: Duration, group_interval: Duration) -> RoutingConfig {
    RoutingConfig {
        defaults: GroupSettings {
            group_by: vec!["probe".to_owned()],
            group_wait: Some(group_wait),
            group_interval,
            repeat_interval: Duration::from_secs(3600),
        },
        ..RoutingConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn p1_leaves_without_group_wait() {
    let mut harness = Harness::new(RoutingConfig::default(), None);
    harness.submit(vec![firing("Auth down", Severity::P1)]);
    let due = harness.due();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, RUNNING);
}

#[tokio::test(start_paused = true)]
async fn p3_waits_default_group_wait() {
    let mut harness = Harness::new(RoutingConfig::default(), None);
    harness.submit(vec![firing("High latency", Severity::P3)]);
    assert!(harness.due().is_empty());
    tokio::time::advance(Duration::from_millis(4900)).await;
    assert!(harness.due().is_empty());
    tokio::time::advance(Duration::from_millis(100)).await;
    assert_eq!(harness.due().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn group_batches_then_waits_interval() {
    let config = grouped_by_probe(Duration::from_secs(2), Duration::from_secs(10));
    let mut harness = Harness::new(config, None);
    harness.submit(vec![firing("High latency", Severity::P3)]);
    tokio::time::advance(Duration::from_secs(1)).await;
    harness.submit(vec![firing("Rate limited", Severity::P2)]);
    assert!(harness.due().is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    let first = harness.due();
    assert_eq!(first.len(), 2, "both alerts of the group leave together");

    // A new alert that joins after the flush waits for group_interval since the flush, but a
    // resolve leaves at once.
    harness.submit(vec![firing("API errors", Severity::P1)]);
    tokio::time::advance(Duration::from_secs(1)).await;
    harness.submit(vec![resolved("High latency", Severity::P3)]);
    let resolve = harness.due();
    assert_eq!(resolve.len(), 1);
    assert_eq!(resolve[0].0.transition.kind, TransitionKind::Resolved);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert!(harness.due().is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    let joined = harness.due();
    assert_eq!(joined.len(), 1);
    assert_eq!(&*joined[0].0.transition.rule, "API errors");
    assert!(harness.due().is_empty());
}

#[tokio::test(start_paused = true)]
async fn resolve_waits_with_unsent_firing() {
    let mut harness = Harness::new(RoutingConfig::default(), None);
    harness.submit(vec![firing("High latency", Severity::P3)]);
    tokio::time::advance(Duration::from_secs(1)).await;
    harness.submit(vec![resolved("High latency", Severity::P3)]);
    assert!(
        harness.due().is_empty(),
        "the resolve does not overtake its firing"
    );
    tokio::time::advance(Duration::from_secs(4)).await;
    let due = harness.due();
    let kinds: Vec<_> = due.iter().map(|(entry, _)| entry.transition.kind).collect();
    assert_eq!(kinds, [TransitionKind::Firing, TransitionKind::Resolved]);
}

#[tokio::test(start_paused = true)]
async fn firing_alert_repeats_after_interval() {
    let mut config = RoutingConfig::default();
    config.defaults.repeat_interval = Duration::from_secs(60);
    let mut harness = Harness::new(config, None);
    harness.submit(vec![firing("Auth down", Severity::P1)]);
    assert_eq!(harness.due().len(), 1);
    let repeats = |harness: &mut Harness| {
        harness
            .dispatcher
            .take_repeats(&RUNNING, Instant::now(), SystemTime::now())
            .len()
    };
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(repeats(&mut harness), 0);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(repeats(&mut harness), 1);
    assert_eq!(repeats(&mut harness), 0);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(repeats(&mut harness), 1);

    harness.submit(vec![resolved("Auth down", Severity::P1)]);
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(repeats(&mut harness), 0, "a resolved alert does not repeat");
}

#[tokio::test(start_paused = true)]
async fn auth_down_inhibits_same_batch() {
    let config = RoutingConfig {
        inhibit: vec![default_inhibit_rule()],
        ..RoutingConfig::default()
    };
    let mut harness = Harness::new(config, None);
    let planned = harness.submit(vec![
        firing("High latency", Severity::P3),
        firing("Auth down", Severity::P1),
    ]);
    assert!(planned[0].is_empty(), "High latency is inhibited");
    assert_eq!(planned[1], RUNNING);
    // Its resolve is not sent either, since its firing was not.
    let planned = harness.submit(vec![resolved("High latency", Severity::P3)]);
    assert!(planned[0].is_empty());
}

#[tokio::test(start_paused = true)]
async fn silenced_firing_and_resolve_muted() {
    let book = SilenceBook::load(Store::open_in_memory().unwrap()).unwrap();
    let now = SystemTime::now();
    book.add(Silence {
        id: Silence::new_id(),
        matchers: vec![Matcher::parse("alertname = \"API errors\"").unwrap()],
        starts_at: now - Duration::from_secs(60),
        ends_at: now + Duration::from_secs(3600),
        created_by: "ana".to_owned(),
        comment: "known outage".to_owned(),
    })
    .unwrap();
    let mut harness = Harness::new(RoutingConfig::default(), Some(book));
    let planned = harness.submit(vec![
        firing("API errors", Severity::P1),
        firing("Auth down", Severity::P1),
    ]);
    assert!(planned[0].is_empty());
    assert_eq!(planned[1], RUNNING);
    assert_eq!(harness.due().len(), 1);
    let planned = harness.submit(vec![resolved("API errors", Severity::P1)]);
    assert!(planned[0].is_empty());
}

#[tokio::test(start_paused = true)]
async fn expired_silence_sends_late_firing() {
    let book = SilenceBook::load(Store::open_in_memory().unwrap()).unwrap();
    let now = SystemTime::now();
    let id = Silence::new_id();
    book.add(Silence {
        id: id.clone(),
        matchers: vec![Matcher::parse("probe = \"me\"").unwrap()],
        starts_at: now - Duration::from_secs(60),
        ends_at: now + Duration::from_secs(3600),
        created_by: "ana".to_owned(),
        comment: String::new(),
    })
    .unwrap();
    let mut harness = Harness::new(RoutingConfig::default(), Some(book.clone()));
    let planned = harness.submit(vec![firing("Auth down", Severity::P1)]);
    assert!(planned[0].is_empty());
    let repeats = harness
        .dispatcher
        .take_repeats(&RUNNING, Instant::now(), SystemTime::now());
    assert!(repeats.is_empty(), "still silenced");

    book.expire(&id, SystemTime::now()).unwrap();
    let repeats = harness
        .dispatcher
        .take_repeats(&RUNNING, Instant::now(), SystemTime::now());
    assert_eq!(repeats.len(), 1);
    assert_eq!(repeats[0].1, RUNNING);
    let planned = harness.submit(vec![resolved("Auth down", Severity::P1)]);
    assert_eq!(planned[0], RUNNING, "the resolve follows the late firing");
}

#[tokio::test(start_paused = true)]
async fn route_receivers_split_by_severity() {
    let config = RoutingConfig {
        routes: vec![RouteSpec {
            matchers: vec![Matcher::parse("severity = \"P1\"").unwrap()],
            receivers: Some(vec!["email".to_owned()]),
            continue_matching: false,
            settings: GroupSettings::default(),
        }],
        ..RoutingConfig::default()
    };
    let mut harness = Harness::new(config, None);
    let planned = harness.submit(vec![
        firing("Auth down", Severity::P1),
        firing("High latency", Severity::P3),
    ]);
    assert_eq!(planned[0], ["email"]);
    assert_eq!(planned[1], RUNNING);
}

#[tokio::test(start_paused = true)]
async fn restored_alert_repeats_and_resolves() {
    let mut config = RoutingConfig::default();
    config.defaults.repeat_interval = Duration::from_secs(60);
    let mut harness = Harness::new(config, None);
    let restored = vec![(firing("Auth down", Severity::P1), vec!["otlp".to_owned()])];
    harness
        .dispatcher
        .restore_firing(restored, &RUNNING, Instant::now());
    tokio::time::advance(Duration::from_secs(60)).await;
    let repeats = harness
        .dispatcher
        .take_repeats(&RUNNING, Instant::now(), SystemTime::now());
    assert_eq!(repeats.len(), 1);
    assert_eq!(repeats[0].1, ["otlp"]);
    let planned = harness.submit(vec![resolved("Auth down", Severity::P1)]);
    assert_eq!(
        planned[0],
        ["otlp"],
        "the resolve goes where the firing went"
    );
}
