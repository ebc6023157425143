//! Engine tests on a paused clock: window boundaries, `for`, `keep_firing_for`, no data and the
//! fields of transitions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::Engine;
use crate::alert::{AlertState, Severity, Transition, TransitionKind, parse};
use crate::config::{ProbeSpec, RuleSpec, Schedule};
use crate::probe::{Outcome, ProbeResult, RateLimit};
use crate::stats::Recorder;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

fn probe(name: &str, method: &str, baseline_ms: u64) -> ProbeSpec {
    ProbeSpec {
        name: Arc::from(name),
        method: method.to_owned(),
        path: "/v2/me.json".to_owned(),
        schedule: Schedule::Interval {
            every: 10 * SECOND,
            splay: Duration::ZERO,
        },
        timeout: 10 * SECOND,
        max_body: 1 << 20,
        expect_status: vec![200],
        assertions: Vec::new(),
        latency_baseline: Duration::from_millis(baseline_ms),
        priority: Default::default(),
    }
}

fn rule(name: &str, expr: &str, window: Duration) -> RuleSpec {
    RuleSpec {
        name: Arc::from(name),
        severity: Severity::P1,
        expr_text: Arc::from(expr),
        expr: parse(expr).unwrap(),
        window,
        for_: Duration::ZERO,
        keep_firing_for: Duration::ZERO,
        min_samples: 1,
        runbook: Arc::from("rotate the token"),
        summary: None,
        probes: Vec::new(),
    }
}

/// A recorder, an engine over the probe `me` and a clock, starting at the paused `Instant::now`.
struct Harness {
    recorder: Recorder,
    engine: Engine,
    start: Instant,
}

impl Harness {
    fn new(rules: &[RuleSpec]) -> Harness {
        Harness::with_probes(rules, &[probe("me", "GET", 300)])
    }

    fn with_probes(rules: &[RuleSpec], probes: &[ProbeSpec]) -> Harness {
        Harness {
            recorder: Recorder::new(10 * MINUTE, Duration::from_secs(3600)),
            engine: Engine::new(rules, probes, Arc::from("eu-1")),
            start: Instant::now(),
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + (now - self.start)
    }

    /// Records a result of `probe` at `start + at` and evaluates that probe's rules.
    fn result(
        &mut self,
        probe: &str,
        at: Duration,
        status: u16,
        latency_ms: u64,
    ) -> Vec<Transition> {
        let finished = self.start + at;
        let outcome = if status == 200 {
            Outcome::Ok
        } else {
            Outcome::from_status(status)
        };
        self.recorder.record(&ProbeResult {
            probe: Arc::from(probe),
            started_at: self.wall(finished),
            finished,
            latency: Duration::from_millis(latency_ms),
            outcome,
            status: Some(status),
            rate_limit: RateLimit::default(),
            attempts: 1,
            detail: None,
        });
        let wall = self.wall(finished);
        self.engine
            .evaluate(&self.recorder, finished, wall, Some(probe))
    }

    /// Evaluates every rule at `start + at`, as the periodic tick does.
    fn tick(&mut self, at: Duration) -> Vec<Transition> {
        let now = self.start + at;
        self.engine
            .evaluate(&self.recorder, now, self.wall(now), None)
    }

    fn state(&self) -> AlertState {
        self.engine.snapshot()[0].state
    }
}

fn kinds(transitions: &[Transition]) -> Vec<TransitionKind> {
    transitions
        .iter()
        .map(|transition| transition.kind)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn ten_in_one_minute_stay_quiet() {
    let mut harness = Harness::new(&[rule("Rate limited", "count(status == 429) > 10", MINUTE)]);
    for i in 0..10 {
        let transitions = harness.result("me", 5 * SECOND * i, 429, 80);
        assert!(transitions.is_empty(), "result {i} fired");
    }
    assert!(harness.tick(59 * SECOND).is_empty());
    assert_eq!(harness.state(), AlertState::Inactive);
}

#[tokio::test(start_paused = true)]
async fn straddling_minutes_fire_at_eleventh() {
    let mut harness = Harness::new(&[rule("Rate limited", "count(status == 429) > 10", MINUTE)]);
    // Six results late in one calendar minute, then six early in the next.
    let times = (0..6).map(|i| 40 + 3 * i).chain((0..6).map(|i| 61 + 3 * i));
    let mut fired_at = Vec::new();
    for (index, second) in times.enumerate() {
        let transitions = harness.result("me", Duration::from_secs(second), 429, 80);
        if !transitions.is_empty() {
            fired_at.push(index + 1);
        }
    }
    assert_eq!(fired_at, vec![11]);
}

#[tokio::test(start_paused = true)]
async fn quantile_needs_min_samples() {
    let mut p99 = rule("High latency", "p99 > 2000ms", 5 * MINUTE);
    p99.min_samples = 5;
    let mut harness = Harness::new(&[p99]);
    for (i, latency) in [2500, 100, 100, 100].into_iter().enumerate() {
        let transitions = harness.result("me", SECOND * i as u32, 200, latency);
        assert!(transitions.is_empty(), "sample {} fired", i + 1);
        assert_eq!(harness.engine.snapshot()[0].value_text, None);
    }
    let transitions = harness.result("me", 4 * SECOND, 200, 100);
    assert_eq!(kinds(&transitions), vec![TransitionKind::Firing]);
    assert_eq!(transitions[0].value_text, "2500 ms");
    assert_eq!(transitions[0].value, Some(2500.0));
    assert_eq!(transitions[0].threshold_text, "> 2000 ms");
    let summary = "p99 latency 2500 ms in 5m on probe me (threshold > 2000 ms)";
    assert_eq!(transitions[0].summary, summary);
}

#[tokio::test(start_paused = true)]
async fn clamped_latency_still_fires() {
    let mut harness = Harness::new(&[rule("High latency", "p99 > 2000ms", 5 * MINUTE)]);
    let transitions = harness.result("me", SECOND, 200, 15 * 60 * 1000);
    assert_eq!(harness.recorder.overflow_count("me"), 1);
    assert_eq!(kinds(&transitions), vec![TransitionKind::Firing]);
    assert_eq!(transitions[0].value_text, "600000 ms");
}

#[tokio::test(start_paused = true)]
async fn for_delays_firing() {
    let mut errors = rule("API errors", "count(status >= 500) > 0", 10 * MINUTE);
    errors.for_ = 2 * MINUTE;
    let mut harness = Harness::new(&[errors]);
    assert!(harness.result("me", Duration::ZERO, 503, 90).is_empty());
    assert_eq!(harness.state(), AlertState::Pending);
    for second in [30, 60, 90, 119] {
        assert!(
            harness.tick(Duration::from_secs(second)).is_empty(),
            "fired at {second} s"
        );
    }
    assert_eq!(
        kinds(&harness.tick(2 * MINUTE)),
        vec![TransitionKind::Firing]
    );
    assert!(harness.tick(150 * SECOND).is_empty());
    assert_eq!(harness.state(), AlertState::Firing);
}

#[tokio::test(start_paused = true)]
async fn pending_turning_false_is_silent() {
    let mut errors = rule("API errors", "count(status >= 500) > 0", MINUTE);
    errors.for_ = 2 * MINUTE;
    let mut harness = Harness::new(&[errors]);
    assert!(harness.result("me", Duration::ZERO, 503, 90).is_empty());
    assert_eq!(harness.state(), AlertState::Pending);
    assert!(harness.result("me", 61 * SECOND, 200, 90).is_empty());
    assert_eq!(harness.state(), AlertState::Inactive);
    // A new bad result starts `for` again from its own time.
    for second in [90, 120, 150, 180, 209] {
        let transitions = harness.result("me", Duration::from_secs(second), 503, 90);
        assert!(transitions.is_empty(), "fired at {second} s");
    }
    let transitions = harness.result("me", 210 * SECOND, 503, 90);
    assert_eq!(kinds(&transitions), vec![TransitionKind::Firing]);
}

#[tokio::test(start_paused = true)]
async fn keep_firing_for_delays_resolve() {
    let mut auth = rule("Auth down", "count(status == 401) > 0", MINUTE);
    auth.keep_firing_for = 2 * MINUTE;
    let mut harness = Harness::new(&[auth]);
    let mut all = harness.result("me", Duration::ZERO, 401, 90);
    assert_eq!(kinds(&all), vec![TransitionKind::Firing]);

    // False from 61 s on; a 401 at 100 s makes it true again, so the clock restarts at 161 s.
    all.extend(harness.result("me", 61 * SECOND, 200, 90));
    all.extend(harness.result("me", 100 * SECOND, 401, 90));
    all.extend(harness.result("me", 161 * SECOND, 200, 90));
    for second in (170..281).step_by(10) {
        all.extend(harness.result("me", Duration::from_secs(second), 200, 90));
    }
    assert_eq!(kinds(&all), vec![TransitionKind::Firing]);
    all.extend(harness.result("me", 281 * SECOND, 200, 90));
    for second in (290..600).step_by(10) {
        all.extend(harness.result("me", Duration::from_secs(second), 200, 90));
    }
    assert_eq!(
        kinds(&all),
        vec![TransitionKind::Firing, TransitionKind::Resolved]
    );
    assert_eq!(all[1].at, harness.wall(harness.start + 281 * SECOND));
    assert_eq!(harness.state(), AlertState::Inactive);
}

#[tokio::test(start_paused = true)]
async fn one_firing_one_resolved() {
    let mut harness = Harness::new(&[rule("Auth down", "count(status == 401) > 0", MINUTE)]);
    let mut all = Vec::new();
    for second in 0..30 {
        all.extend(harness.result("me", Duration::from_secs(second), 401, 90));
        all.extend(harness.tick(Duration::from_secs(second) + SECOND / 2));
    }
    for second in 30..200 {
        all.extend(harness.result("me", Duration::from_secs(second), 200, 90));
        all.extend(harness.tick(Duration::from_secs(second) + SECOND / 2));
    }
    assert_eq!(
        kinds(&all),
        vec![TransitionKind::Firing, TransitionKind::Resolved]
    );
    let (firing, resolved) = (&all[0], &all[1]);
    assert_eq!(firing.alert_id, resolved.alert_id);
    assert_eq!(resolved.firing_since, firing.at);
    assert_eq!(firing.firing_since, firing.at);
    assert_eq!(resolved.value_text, "0");
}

#[tokio::test(start_paused = true)]
async fn no_data_neither_fires_nor_resolves() {
    let mut auth = rule("Auth down", "count(status == 401) > 0", MINUTE);
    auth.min_samples = 3;
    let mut harness = Harness::new(&[auth]);
    assert!(harness.result("me", Duration::ZERO, 401, 90).is_empty());
    assert!(harness.result("me", SECOND, 401, 90).is_empty());
    assert_eq!(
        kinds(&harness.result("me", 2 * SECOND, 200, 90)),
        vec![TransitionKind::Firing]
    );
    // The window empties: no data, so the alert keeps firing however long it lasts.
    for minute in 2..30 {
        assert!(
            harness.tick(MINUTE * minute).is_empty(),
            "changed at minute {minute}"
        );
    }
    assert_eq!(harness.state(), AlertState::Firing);
}

#[tokio::test(start_paused = true)]
async fn transition_fields_are_filled() {
    let mut harness = Harness::new(&[rule("Auth down", "count(status == 401) > 0", MINUTE)]);
    for second in 0..3 {
        assert!(
            harness
                .result("me", Duration::from_secs(second), 200, 90)
                .is_empty()
        );
    }
    let transitions = harness.result("me", 3 * SECOND, 401, 90);
    assert!(harness.result("me", 4 * SECOND, 401, 90).is_empty());
    let transitions = [transitions, harness.result("me", 5 * SECOND, 401, 90)].concat();
    assert_eq!(transitions.len(), 1);

    let firing = &transitions[0];
    assert_eq!(firing.kind, TransitionKind::Firing);
    assert_eq!(&*firing.rule, "Auth down");
    assert_eq!(&*firing.probe, "me");
    assert_eq!(&*firing.location, "eu-1");
    assert_eq!(firing.severity, Severity::P1);

    assert_eq!(&*firing.expr, "count(status == 401) > 0");
    assert_eq!(firing.value, Some(1.0));
    assert_eq!(firing.value_text, "1");
    assert_eq!(firing.threshold_text, "> 0");
    assert_eq!(firing.window_text, "1m");
    assert_eq!(&*firing.runbook, "rotate the token");

    assert_eq!(
        firing.summary,
        "1 response matching status == 401 in 1m on probe me"
    );
    assert_eq!(firing.at, harness.wall(harness.start + 3 * SECOND));
    assert_eq!(firing.alert_id.len(), 16);
}

#[tokio::test(start_paused = true)]
async fn ratio_and_template_summary() {
    let mut errors = rule("Error ratio", "ratio(outcome != ok) > 20%", 10 * MINUTE);
    errors.summary = Some("{value} failed on {probe} over {window} ({threshold})".to_owned());
    let mut harness = Harness::new(&[errors]);
    for second in 0..4 {
        assert!(
            harness
                .result("me", Duration::from_secs(second), 200, 90)
                .is_empty()
        );
    }
    let transitions = harness.result("me", 4 * SECOND, 503, 90);
    assert!(transitions.is_empty(), "1 in 5 is 20 %, not above it");
    let transitions = harness.result("me", 5 * SECOND, 503, 90);
    assert_eq!(transitions[0].value_text, "33.33 %");
    let value = transitions[0].value.unwrap();
    assert!((value - 100.0 / 3.0).abs() < 1e-9, "value {value}");
    assert_eq!(
        transitions[0].summary,
        "33.33 % failed on me over 10m (> 20 %)"
    );
}

#[tokio::test(start_paused = true)]
async fn baseline_is_per_probe() {
    let probes = [probe("me", "GET", 300), probe("upsert", "POST", 500)];
    let rules = [rule("Latency over baseline", "p99 > baseline", 5 * MINUTE)];
    let mut harness = Harness::with_probes(&rules, &probes);
    let read = harness.result("me", SECOND, 200, 400);
    assert_eq!(kinds(&read), vec![TransitionKind::Firing]);
    assert_eq!(read[0].threshold_text, "> 300 ms (baseline)");
    assert!(harness.result("upsert", SECOND, 200, 400).is_empty());
    assert_eq!(
        kinds(&harness.result("upsert", 2 * SECOND, 200, 600)),
        vec![TransitionKind::Firing]
    );
}

#[tokio::test(start_paused = true)]
async fn probe_evaluation_is_scoped() {
    let probes = [probe("me", "GET", 300), probe("people", "GET", 300)];
    let mut scoped = rule("Auth down", "count(status == 401) > 0", MINUTE);
    scoped.probes = vec![Arc::from("people")];
    let mut harness = Harness::with_probes(&[scoped], &probes);
    assert!(harness.result("me", SECOND, 401, 90).is_empty());
    assert!(harness.tick(2 * SECOND).is_empty());
    let transitions = harness.result("people", 3 * SECOND, 401, 90);
    assert_eq!(kinds(&transitions), vec![TransitionKind::Firing]);
    assert_eq!(&*transitions[0].probe, "people");
    let snapshot = harness.engine.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(&*snapshot[0].probe, "people");
}

#[tokio::test(start_paused = true)]
async fn removed_probe_resolves() {
    let probes = [probe("me", "GET", 300), probe("people", "GET", 300)];
    let rules = [rule("Auth down", "count(status == 401) > 0", MINUTE)];
    let mut harness = Harness::with_probes(&rules, &probes);
    assert_eq!(harness.result("me", SECOND, 401, 90).len(), 1);
    assert!(harness.result("people", SECOND, 200, 90).is_empty());
    let wall = harness.wall(harness.start + 2 * SECOND);
    let transitions = harness.engine.retain_probes(&["people"], wall);
    assert_eq!(kinds(&transitions), vec![TransitionKind::Resolved]);
    assert_eq!(&*transitions[0].probe, "me");
    assert_eq!(harness.engine.snapshot().len(), 1);
    assert!(harness.tick(3 * SECOND).is_empty());
}

#[path = "restore_tests.rs"]
mod restore;
