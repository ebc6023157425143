//! Restoring saved alert instances on a paused clock: a restored firing alert neither fires
//! again nor skips its resolve, and a restored pending timer keeps its start.

use super::*;

const AUTH: &str = "count(status == 401) > 0";

/// Saves the single instance of `harness` at `start + at`, as the daemon does before a stop.
fn save(harness: &mut Harness, at: Duration) -> Vec<crate::alert::SavedAlert> {
    let now = harness.start + at;
    harness.engine.take_changes(now, harness.wall(now)).saved
}

/// Builds a new engine over the same rules, restored from `saved` at `start + at`.
fn restart(rules: &[RuleSpec], saved: &[crate::alert::SavedAlert], at: Duration) -> Harness {
    let mut harness = Harness::new(rules);
    let now = harness.start + at;
    let restored = harness.engine.restore(saved, now, harness.wall(now));
    assert_eq!(restored, saved.len());
    harness
}

#[tokio::test(start_paused = true)]
async fn restored_firing_alert_does_not_fire_again() {
    let rules = [rule("Auth down", AUTH, MINUTE)];
    let mut first = Harness::new(&rules);
    let fired = first.result("me", SECOND, 401, 50);
    assert_eq!(kinds(&fired), [TransitionKind::Firing]);
    assert_eq!(fired[0].sequence, 1);
    let saved = save(&mut first, 2 * SECOND);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].state, AlertState::Firing);

    let mut second = restart(&rules, &saved, Duration::ZERO);
    assert_eq!(second.state(), AlertState::Firing);
    let transitions = second.result("me", SECOND, 401, 50);
    assert!(transitions.is_empty(), "fired again: {transitions:?}");
}

#[tokio::test(start_paused = true)]
async fn restored_firing_alert_resolves_once() {
    let mut auth = rule("Auth down", AUTH, 10 * SECOND);
    auth.keep_firing_for = 5 * SECOND;
    let rules = [auth];
    let mut first = Harness::new(&rules);
    first.result("me", SECOND, 401, 50);
    let saved = save(&mut first, SECOND);
    let firing_since = saved[0].firing_since.expect("firing_since saved");

    let mut second = restart(&rules, &saved, Duration::ZERO);
    assert!(second.result("me", SECOND, 200, 50).is_empty());
    assert!(
        second.tick(5 * SECOND).is_empty(),
        "resolved before keep_firing_for"
    );
    let resolved = second.tick(6 * SECOND);
    assert_eq!(kinds(&resolved), [TransitionKind::Resolved]);
    assert_eq!(resolved[0].sequence, 2);
    assert_eq!(resolved[0].firing_since, firing_since);
    assert!(second.tick(7 * SECOND).is_empty());
}

#[tokio::test(start_paused = true)]
async fn restored_pending_timer_keeps_its_start() {
    let mut auth = rule("Auth down", AUTH, MINUTE);
    auth.for_ = 10 * SECOND;
    let rules = [auth];
    let mut first = Harness::new(&rules);
    assert!(first.result("me", SECOND, 401, 50).is_empty());
    let saved = save(&mut first, 4 * SECOND);
    assert_eq!(saved[0].state, AlertState::Pending);

    // The monotonic clock of the new engine starts elsewhere while the wall clock of both
    // harnesses starts at the same time, as after a restart. The condition became true at
    // wall time 1 s, so `for` ends at 11 s.
    tokio::time::advance(100 * SECOND).await;
    let mut second = restart(&rules, &saved, 5 * SECOND);
    assert_eq!(second.state(), AlertState::Pending);
    assert!(second.result("me", 10 * SECOND, 401, 50).is_empty());
    let fired = second.result("me", 11 * SECOND, 401, 50);
    assert_eq!(kinds(&fired), [TransitionKind::Firing]);
}

#[tokio::test(start_paused = true)]
async fn saved_alert_of_removed_rule_reported_removed() {
    let rules = [rule("Auth down", AUTH, MINUTE)];
    let mut first = Harness::new(&rules);
    first.result("me", SECOND, 401, 50);
    let saved = save(&mut first, SECOND);

    let mut second = Harness::new(&[rule("API errors", "count(status >= 500) > 5", MINUTE)]);
    let now = second.start;
    assert_eq!(second.engine.restore(&saved, now, second.wall(now)), 0);
    let changes = second.engine.take_changes(now, second.wall(now));
    assert_eq!(changes.removed, [(Arc::from("Auth down"), Arc::from("me"))]);
}
