use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use chrono::TimeDelta;

use super::*;
use crate::probe::{Outcome, RateLimit, parse_cron};

fn spec(schedule: Schedule) -> Arc<ProbeSpec> {
    Arc::new(ProbeSpec {
        name: Arc::from("me"),
        method: "GET".to_owned(),
        path: "/v2/me.json".to_owned(),
        schedule,
        timeout: Duration::from_secs(5),
        max_body: 1 << 20,
        expect_status: vec![200],
        assertions: Vec::new(),
        latency_baseline: Duration::from_millis(300),
        priority: Default::default(),
    })
}

fn interval(every_secs: u64, splay_secs: u64) -> Schedule {
    Schedule::Interval {
        every: Duration::from_secs(every_secs),
        splay: Duration::from_secs(splay_secs),
    }
}

fn result(spec: &ProbeSpec) -> ProbeResult {
    ProbeResult {
        probe: spec.name.clone(),
        started_at: SystemTime::UNIX_EPOCH,
        finished: Instant::now(),
        latency: Duration::ZERO,
        outcome: Outcome::Ok,
        status: Some(200),
        rate_limit: RateLimit::default(),
        attempts: 1,
        detail: None,
    }
}

/// A wall clock that moves with the tokio clock and can be stepped.
#[derive(Clone)]
struct TestWall {
    origin: DateTime<Utc>,
    base: Instant,
    step: Arc<Mutex<TimeDelta>>,
}

impl TestWall {
    fn starting_at(text: &str) -> TestWall {
        TestWall {
            origin: text.parse().unwrap(),
            base: Instant::now(),
            step: Arc::new(Mutex::new(TimeDelta::zero())),
        }
    }

    fn shift(&self, by: TimeDelta) {
        *self.step.lock().unwrap() += by;
    }
}

impl WallClock for TestWall {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(Instant::now() - self.base).unwrap();
        self.origin + elapsed + *self.step.lock().unwrap()
    }
}

/// Starts a probe whose runs take the durations in `durations` (the last one repeats) and
/// records the tokio time at which each run started.
fn start(
    spec: Arc<ProbeSpec>,
    durations: Vec<Duration>,
    wall: TestWall,
) -> (
    mpsc::UnboundedReceiver<ProbeEvent>,
    Arc<Mutex<Vec<Instant>>>,
    watch::Sender<bool>,
) {
    let (events, receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let starts = Arc::new(Mutex::new(Vec::new()));
    let recorded = starts.clone();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let runner = move |spec: Arc<ProbeSpec>| {
        let starts = recorded.clone();
        let in_flight = in_flight.clone();
        let index = starts.lock().unwrap().len();
        let duration = durations[index.min(durations.len() - 1)];
        async move {
            starts.lock().unwrap().push(Instant::now());
            assert_eq!(
                in_flight.fetch_add(1, Ordering::SeqCst),
                0,
                "two runs in flight"
            );
            tokio::time::sleep(duration).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            result(&spec)
        }
    };
    tokio::spawn(drive(spec, runner, events, shutdown, wall));
    (receiver, starts, stop)
}

async fn next_result(events: &mut mpsc::UnboundedReceiver<ProbeEvent>) -> ProbeResult {
    match events.recv().await.expect("scheduler stopped") {
        ProbeEvent::Result(result) => result,
        other => panic!("expected a result, got {other:?}"),
    }
}

#[test]
fn splay_is_stable_and_below_interval() {
    let every = Duration::from_secs(60);
    assert_eq!(splay_for("me", every), splay_for("me", every));
    assert_ne!(splay_for("me", every), splay_for("people", every));
    for name in ["me", "people", "team", "cadences", "accounts", ""] {
        assert!(splay_for(name, every) < every, "{name}");
    }
    assert_eq!(splay_for("me", Duration::ZERO), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn interval_runs_at_exact_spacing() {
    let begin = Instant::now();
    let spec = spec(interval(10, 3));
    let (mut events, starts, _stop) = start(
        spec,
        vec![Duration::from_secs(2)],
        TestWall::starting_at("2025-01-01T00:00:00Z"),
    );
    for _ in 0..4 {
        next_result(&mut events).await;
    }
    let offsets: Vec<Duration> = starts
        .lock()
        .unwrap()
        .iter()
        .map(|at| *at - begin)
        .collect();
    let expected: Vec<Duration> = [3, 13, 23, 33].map(Duration::from_secs).to_vec();
    assert_eq!(offsets, expected);
}

#[tokio::test(start_paused = true)]
async fn slow_run_skips_ticks_without_burst() {
    let begin = Instant::now();
    let spec = spec(interval(10, 0));
    let durations = vec![Duration::from_secs(75), Duration::from_secs(1)];
    let (mut events, starts, _stop) = start(
        spec,
        durations,
        TestWall::starting_at("2025-01-01T00:00:00Z"),
    );

    next_result(&mut events).await;
    match events.recv().await.unwrap() {
        ProbeEvent::Skipped {
            probe,
            reason,
            count,
        } => {
            assert_eq!(&*probe, "me");
            assert_eq!(reason, SkipReason::InFlight);
            assert_eq!(count, 7);
        }
        other => panic!("expected skipped ticks, got {other:?}"),
    }
    next_result(&mut events).await;
    next_result(&mut events).await;
    let offsets: Vec<Duration> = starts
        .lock()
        .unwrap()
        .iter()
        .map(|at| *at - begin)
        .collect();
    assert_eq!(offsets, [0, 80, 90].map(Duration::from_secs).to_vec());
}

#[tokio::test(start_paused = true)]
async fn run_ending_on_tick_runs_that_tick() {
    let begin = Instant::now();
    let spec = spec(interval(10, 0));
    let durations = vec![Duration::from_secs(20), Duration::from_secs(1)];
    let (mut events, starts, _stop) = start(
        spec,
        durations,
        TestWall::starting_at("2025-01-01T00:00:00Z"),
    );

    next_result(&mut events).await;
    assert!(matches!(
        events.recv().await,
        Some(ProbeEvent::Skipped { count: 1, .. })
    ));
    next_result(&mut events).await;
    assert_eq!(starts.lock().unwrap()[1] - begin, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn stop_lets_run_in_flight_finish() {
    let spec = spec(interval(10, 0));
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let runner = |spec: Arc<ProbeSpec>| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        result(&spec)
    };
    let wall = TestWall::starting_at("2025-01-01T00:00:00Z");
    let task = tokio::spawn(drive(spec, runner, events, shutdown, wall));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("task ended after its run")
        .unwrap();
    assert!(matches!(receiver.recv().await, Some(ProbeEvent::Result(_))));
    assert!(
        receiver.recv().await.is_none(),
        "a run started after the stop"
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_stop_abandons_run() {
    let spec = spec(interval(10, 0));
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let runner = |spec: Arc<ProbeSpec>| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        result(&spec)
    };
    let wall = TestWall::starting_at("2025-01-01T00:00:00Z");
    let task = tokio::spawn(drive(spec, runner, events, shutdown, wall));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(stop);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("task ended")
        .unwrap();
    assert!(
        receiver.recv().await.is_none(),
        "an abandoned run sent a result"
    );
}

#[tokio::test(start_paused = true)]
async fn closed_receiver_ends_task() {
    let spec = spec(interval(10, 0));
    let (events, receiver) = mpsc::unbounded_channel();
    let (_stop, shutdown) = watch::channel(false);
    drop(receiver);
    let runner = |spec: Arc<ProbeSpec>| async move { result(&spec) };
    let wall = TestWall::starting_at("2025-01-01T00:00:00Z");
    let task = tokio::spawn(drive(spec, runner, events, shutdown, wall));
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("task ended")
        .unwrap();
}

fn cron(line: &str) -> Schedule {
    Schedule::Cron {
        line: line.to_owned(),
        cron: Box::new(parse_cron(line).unwrap()),
        zone: chrono_tz::UTC,
    }
}

#[tokio::test(start_paused = true)]
async fn cron_runs_on_wall_clock_times() {
    let wall = TestWall::starting_at("2025-01-01T00:07:00Z");
    let (mut events, starts, _stop) = start(
        spec(cron("*/15 * * * *")),
        vec![Duration::ZERO],
        wall.clone(),
    );
    next_result(&mut events).await;
    next_result(&mut events).await;
    let offsets: Vec<Duration> = starts
        .lock()
        .unwrap()
        .iter()
        .map(|at| *at - wall.base)
        .collect();
    assert_eq!(offsets, [8 * 60, 23 * 60].map(Duration::from_secs).to_vec());
}

#[tokio::test(start_paused = true)]
async fn cron_clock_stepped_back_does_not_run_early() {
    let wall = TestWall::starting_at("2025-01-01T00:07:00Z");
    let (mut events, starts, _stop) = start(
        spec(cron("*/15 * * * *")),
        vec![Duration::ZERO],
        wall.clone(),
    );
    next_result(&mut events).await;
    // Wall time 00:15 right after the run; step it back to 00:05.
    wall.shift(TimeDelta::minutes(-10));
    next_result(&mut events).await;
    let second = starts.lock().unwrap()[1] - wall.base;
    // 00:05 -> 00:30 is 25 minutes after the first run at 8 minutes.
    assert_eq!(second, Duration::from_secs(33 * 60));
    assert_eq!(
        wall.now(),
        "2025-01-01T00:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn cron_clock_stepped_forward_runs_once() {
    let wall = TestWall::starting_at("2025-01-01T00:07:00Z");
    let (mut events, starts, _stop) = start(
        spec(cron("*/15 * * * *")),
        vec![Duration::ZERO],
        wall.clone(),
    );
    next_result(&mut events).await;
    // Wall time 00:15 after the first run; jump to 02:14.
    wall.shift(TimeDelta::minutes(119));
    next_result(&mut events).await;
    next_result(&mut events).await;
    let starts = starts.lock().unwrap();
    let second = starts[1] - wall.base;
    let third = starts[2] - wall.base;
    // The sleep in progress ends one MAX_CRON_SLEEP after the first run and finds 02:15.
    assert_eq!(second, Duration::from_secs(8 * 60) + MAX_CRON_SLEEP);
    // The late run covers 02:15, so the schedule resumes at 02:30 with no burst between.
    assert_eq!(third, Duration::from_secs(24 * 60));
    assert!(matches!(
        events.try_recv(),
        Err(mpsc::error::TryRecvError::Empty)
    ));
}

#[tokio::test(start_paused = true)]
async fn cron_slow_run_reports_skipped() {
    let wall = TestWall::starting_at("2025-01-01T00:07:00Z");
    let durations = vec![Duration::from_secs(40 * 60), Duration::ZERO];
    let (mut events, starts, _stop) = start(spec(cron("*/15 * * * *")), durations, wall.clone());
    next_result(&mut events).await;
    assert!(matches!(
        events.recv().await,
        Some(ProbeEvent::Skipped { count: 2, .. })
    ));
    next_result(&mut events).await;
    // First run 00:15 to 00:55; 00:30 and 00:45 are skipped; next run at 01:00.
    assert_eq!(
        starts.lock().unwrap()[1] - wall.base,
        Duration::from_secs(53 * 60)
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_pause_skips_ticks_without_burst() {
    let begin = Instant::now();
    let spec = spec(interval(10, 0));
    let pause: Arc<Mutex<Option<Instant>>> = Arc::default();
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (pause_in_run, starts_in_run) = (pause.clone(), starts.clone());
    // The first run gets a 429 that pauses the host for 120 s from the request start.
    let runner = move |spec: Arc<ProbeSpec>| {
        let (pause, starts) = (pause_in_run.clone(), starts_in_run.clone());
        async move {
            let now = Instant::now();
            let first = starts.lock().unwrap().is_empty();
            starts.lock().unwrap().push(now);
            if first {
                *pause.lock().unwrap() = Some(now + Duration::from_secs(120));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            result(&spec)
        }
    };
    let paused_until = move || {
        let until = *pause.lock().unwrap();
        until
            .is_some_and(|until| until > Instant::now())
            .then_some(SkipReason::RetryAfter)
    };
    let (events, mut receiver) = mpsc::unbounded_channel();
    let (_stop, shutdown) = watch::channel(false);
    let wall = TestWall::starting_at("2025-06-02T14:00:00Z");
    tokio::spawn(drive_paused(
        spec,
        runner,
        paused_until,
        events,
        shutdown,
        wall,
    ));

    next_result(&mut receiver).await;
    let mut skipped = 0;
    // Skips until the run at the end of the pause.
    while let ProbeEvent::Skipped { reason, count, .. } =
        receiver.recv().await.expect("scheduler stopped")
    {
        assert_eq!(reason, SkipReason::RetryAfter);
        skipped += count;
    }
    next_result(&mut receiver).await;
    assert_eq!(skipped, 11, "ticks at 10 s to 110 s are skipped");
    let offsets: Vec<Duration> = starts
        .lock()
        .unwrap()
        .iter()
        .map(|at| *at - begin)
        .collect();
    let expected = [0, 120, 130].map(Duration::from_secs);
    assert_eq!(
        offsets, expected,
        "one run at the end of the pause, then the interval"
    );
}
