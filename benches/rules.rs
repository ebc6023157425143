//! Cost of one periodic rule-evaluation tick: 1000 probes, each evaluated against the five
//! checklist rules of the default `alerts.toml`. The windows are filled as a 10 s probe
//! interval fills them, with 30 results per probe in the 5 m latency windows.
//!
//! Run with `cargo bench --bench rules`.

use std::fmt::Write;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::time::Instant;

use loftwatch::alert::Engine;
use loftwatch::probe::{Outcome, ProbeResult, RateLimit};
use loftwatch::stats::Recorder;

const PROBES: usize = 1000;
const INTERVAL: Duration = Duration::from_secs(10);
/// The maximum rule window, which is also the recorder's retention.
const RETENTION: Duration = Duration::from_secs(300);

/// The checklist rules, as in the default configuration.
const RULES: &str = r#"
[[rule]]
name = "Auth down"
severity = "P1"
expr = "count(status == 401) > 0"
window = "1m"
runbook = "Bench rule."

[[rule]]
name = "Rate limited"
severity = "P2"
expr = "count(status == 429) > 10"
window = "1m"
runbook = "Bench rule."

[[rule]]
name = "API errors"
severity = "P1"
expr = "count(status >= 500) > 5"
window = "1m"
runbook = "Bench rule."

[[rule]]
name = "High latency"
severity = "P3"
expr = "p99 > 2000ms"
window = "5m"
min_samples = 5
runbook = "Bench rule."

[[rule]]
name = "Latency over baseline"
severity = "P3"
expr = "p99 > baseline"
window = "5m"
min_samples = 5
runbook = "Bench rule."
"#;

/// Builds a configuration of `PROBES` probes with the checklist rules.
fn config_text() -> String {
    let mut text = String::from("[salesloft]\nbase_url = \"http://127.0.0.1:9\"\n");
    for index in 0..PROBES {
        writeln!(
            text,
            "[[probe]]\nname = \"p{index:04}\"\npath = \"/v2/me.json\""
        )
        .expect("writing to a String cannot fail");
    }
    text.push_str(RULES);
    text
}

/// Returns a status for the `sample`-th result: mostly 200, with rare 401, 429 and 503.
fn status_for(sample: u64) -> u16 {
    match sample % 97 {
        0 => 503,
        1 => 429,
        2 if sample % 3 == 0 => 401,
        _ => 200,
    }
}

fn bench_tick(criterion: &mut Criterion) {
    let config = loftwatch::config::parse(&config_text(), "bench.toml")
        .expect("the bench configuration should be valid");
    let mut recorder = Recorder::new(config.engine.histogram_max, RETENTION);
    let start = Instant::now();
    let per_probe = RETENTION.as_secs() / INTERVAL.as_secs();
    // A small linear congruential generator keeps the latencies the same on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..per_probe {
        for probe in &config.probes {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let latency_micros = 60_000 + (seed >> 33) % 340_000;
            let status = status_for(seed >> 20);
            let outcome = if status == 200 {
                Outcome::Ok
            } else {
                Outcome::from_status(status)
            };
            recorder.record(&ProbeResult {
                probe: Arc::clone(&probe.name),
                started_at: SystemTime::UNIX_EPOCH,
                finished: start + INTERVAL * u32::try_from(round).expect("few rounds"),
                latency: Duration::from_micros(latency_micros),
                outcome,
                status: Some(status),
                rate_limit: RateLimit {
                    cost: Some(1),
                    remaining: Some(500),
                },
                attempts: 1,
                detail: None,
            });
        }
    }
    let now = start + RETENTION - Duration::from_millis(1);
    let mut engine = Engine::new(&config.rules, &config.probes, Arc::from("bench"));
    // The first tick creates every alert instance; the measured ticks find them in place.
    engine.evaluate(&recorder, now, SystemTime::now(), None);

    criterion.bench_function("evaluate tick, 1000 probes x 5 rules", |bencher| {
        bencher.iter(|| {
            let transitions = engine.evaluate(&recorder, black_box(now), SystemTime::now(), None);
            black_box(transitions)
        });
    });
}

criterion_group!(benches, bench_tick);
criterion_main!(benches);
