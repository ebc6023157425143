//! `loftwatch demo`: the whole job on a fresh machine, with no credentials.
//!
//! It starts the simulator in process, runs the default configuration against it with probes
//! every second and rule windows of 30 s, plays a fault timeline that makes each checklist rule
//! fire and resolve, shows results and transitions live, and writes every notification into a
//! folder as `.eml` and `.json` files.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use loftwatch::alert::{Transition, TransitionKind};
use loftwatch::config::{self, Config, Schedule};
use loftwatch::daemon::{DaemonEvent, RunOptions};
use loftwatch::probe::{Outcome, ProbeResult};
use loftwatch::simulator::{self, Scenario, SimulatorOptions};

/// Probe period during the demo.
const DEMO_INTERVAL: Duration = Duration::from_secs(1);
/// Maximum rule window during the demo.
const DEMO_WINDOW: Duration = Duration::from_secs(30);
/// Resolve hysteresis during the demo.
const DEMO_KEEP_FIRING_FOR: Duration = Duration::from_secs(10);
/// The demo gives up if the timeline has not played out by then.
const DEMO_LIMIT: Duration = Duration::from_secs(180);
/// How often the statistics table is printed.
const TABLE_EVERY: Duration = Duration::from_secs(10);

/// The go-live checklist's rules, which the timeline makes fire and resolve. The default
/// configuration's other rules (unreachable host, open circuit, token refresh, team budget)
/// have no fault in the timeline, and the demo does not wait for them.
const CHECKLIST_RULES: [&str; 5] = [
    "Auth down",
    "Rate limited",
    "API errors",
    "High latency",
    "Latency over baseline",
];

/// The fault timeline: each checklist rule gets a fault, and all recover by 95 s.
const DEMO_SCENARIO: &str = include_str!("demo_scenario.toml");

/// Writes one formatted line to [`Stdout`].
macro_rules! say {
    ($stdout:expr) => {
        $stdout.line(format_args!(""))
    };
    ($stdout:expr, $($arg:tt)*) => {
        $stdout.line(format_args!($($arg)*))
    };
}

mod output;
mod timeline;

use output::Stdout;
use timeline::describe_step;

/// Runs the demo until every rule fired and resolved, the time limit passes, Ctrl-C, or the
/// reader of stdout goes away. Exit 0 when every rule fired and resolved.
pub async fn run(out: Option<PathBuf>) -> ExitCode {
    let out = out.unwrap_or_else(default_out_dir);
    if let Err(error) = std::fs::create_dir_all(&out) {
        eprintln!("cannot create {}: {error}", out.display());
        return ExitCode::FAILURE;
    }
    let scenario = match Scenario::from_toml(DEMO_SCENARIO) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("the built-in demo scenario is invalid: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listen = "127.0.0.1:0".parse().expect("a loopback address parses");
    let sim = match simulator::start(listen, SimulatorOptions::default()).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("cannot start the simulator on 127.0.0.1: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = match demo_config(&sim.base_url()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("the embedded default configuration is invalid:\n{error}");
            return ExitCode::FAILURE;
        }
    };
    let rule_names: Vec<Arc<str>> = CHECKLIST_RULES
        .iter()
        .map(|name| Arc::from(*name))
        .collect();
    if let Some(missing) = rule_names
        .iter()
        .find(|name| !config.rules.iter().any(|rule| rule.name == **name))
    {
        eprintln!("the embedded default configuration has no rule {missing:?}");
        return ExitCode::FAILURE;
    }

    let mut stdout = Stdout::default();
    say!(stdout, "loftwatch demo");
    say!(stdout, "  simulator:      {}", sim.base_url());
    say!(stdout, "  notifications:  {}", out.display());
    say!(
        stdout,
        "  timing:         default rules and probes, but probes every {}s, windows of at most \
         {}s, resolve after {}s,\n                  and no pause after a 429",
        DEMO_INTERVAL.as_secs(),
        DEMO_WINDOW.as_secs(),
        DEMO_KEEP_FIRING_FOR.as_secs()
    );
    say!(stdout, "  timeline (mm:ss, Ctrl-C stops):");
    for step in &scenario.steps {
        say!(stdout, "    {}", describe_step(step));
    }
    say!(stdout);
    if stdout.closed {
        sim.shutdown().await;
        return ExitCode::SUCCESS;
    }

    let (observer, mut events) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let options = RunOptions {
        env: Arc::new(|name: &str| (name == "SALESLOFT_TOKEN").then(|| "demo-token".to_owned())),
        config_path: None,
        file_sink: Some(out.clone()),
        observer: Some(observer),
        reload: None,
        shutdown,
    };
    let daemon = tokio::spawn(loftwatch::daemon::run(config, options));
    sim.play(scenario);

    let started = Instant::now();
    let mut display = Display::new(started, stdout);
    let mut interrupt = crate::cli::shutdown_signal();
    let mut table = tokio::time::interval_at(started + TABLE_EVERY, TABLE_EVERY);
    let deadline = tokio::time::sleep(DEMO_LIMIT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => display.event(event),
                None => break,
            },
            _ = table.tick() => display.table(),
            _ = &mut deadline => {
                say!(display.stdout, "\nthe demo's {} s limit passed", DEMO_LIMIT.as_secs());
                break;
            }
            _ = interrupt.changed() => break,
        }
        if display.stdout.closed {
            break;
        }
        if display.all_fired_and_resolved(&rule_names) {
            say!(display.stdout, "\nevery rule fired and resolved");
            break;
        }
    }
    let _ = stop.send(true);
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("the daemon stopped with an error: {error}"),
        Err(error) => eprintln!("the daemon task failed: {error}"),
    }
    sim.shutdown().await;
    if display.stdout.closed {
        // The reader closed the pipe (`loftwatch demo | head`), so nobody reads the summary.
        return ExitCode::SUCCESS;
    }
    if display.transitions_since_table > 0 {
        display.table();
    }
    let complete = display.summary(&rule_names);
    let files = std::fs::read_dir(&out)
        .map(|entries| entries.count())
        .unwrap_or(0);
    say!(
        display.stdout,
        "\n{files} notification files in {}",
        out.display()
    );
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn default_out_dir() -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    std::env::temp_dir().join(format!("loftwatch-demo-{stamp}"))
}

/// Builds the demo configuration: the embedded default, aimed at the simulator and sped up.
fn demo_config(base_url: &str) -> Result<Config, config::ConfigError> {
    let mut config = config::parse(config::DEFAULT_CONFIG, "alerts.toml (embedded)")?;
    config.salesloft.base_url = base_url.to_owned();
    // Probes keep probing through 429s, so the checklist's "more than 10 a minute" can show.
    config.salesloft.pause_on_429 = false;
    // A free loopback port, so the demo runs beside a daemon that holds the default port.
    config.server.listen.set_port(0);
    for probe in &mut config.probes {
        if let Schedule::Interval { every, splay } = &mut probe.schedule {
            *every = DEMO_INTERVAL;
            *splay = loftwatch::probe::splay_for(&probe.name, DEMO_INTERVAL);
        }
    }
    for rule in &mut config.rules {
        rule.window = rule.window.min(DEMO_WINDOW);
        rule.keep_firing_for = rule.keep_firing_for.min(DEMO_KEEP_FIRING_FOR);
    }
    Ok(config)
}

/// When an alert instance (rule, probe) fired and resolved, as time since the demo started.
type Timeline = BTreeMap<(Arc<str>, Arc<str>), (Option<Duration>, Option<Duration>)>;

/// Terminal display of the demo: live transitions and a periodic statistics table.
struct Display {
    started: Instant,
    recent: BTreeMap<Arc<str>, VecDeque<ProbeResult>>,
    fired: Timeline,
    stdout: Stdout,
    /// Transition lines printed since the last statistics table.
    transitions_since_table: usize,
}

impl Display {
    fn new(started: Instant, stdout: Stdout) -> Self {
        Display {
            started,
            recent: BTreeMap::new(),
            fired: BTreeMap::new(),
            stdout,
            transitions_since_table: 0,
        }
    }

    fn elapsed(&self) -> String {
        let seconds = self.started.elapsed().as_secs();
        format!("{:02}:{:02}", seconds / 60, seconds % 60)
    }

    fn event(&mut self, event: DaemonEvent) {
        match event {
            DaemonEvent::Result(result) => {
                let recent = self.recent.entry(result.probe.clone()).or_default();
                recent.push_back(result);
                let horizon = Instant::now() - DEMO_WINDOW.min(self.started.elapsed());
                while recent
                    .front()
                    .is_some_and(|oldest| oldest.finished < horizon)
                {
                    recent.pop_front();
                }
            }
            DaemonEvent::Skipped { .. } => {}
            DaemonEvent::Transition(transition) => self.transition(&transition),
        }
    }

    fn transition(&mut self, transition: &Transition) {
        let at = self.started.elapsed();
        let entry = self
            .fired
            .entry((transition.rule.clone(), transition.probe.clone()))
            .or_insert((None, None));
        let label = match transition.kind {
            TransitionKind::Firing => {
                entry.0.get_or_insert(at);
                "FIRING  "
            }
            TransitionKind::Resolved => {
                entry.1.get_or_insert(at);
                "RESOLVED"
            }
        };
        self.transitions_since_table += 1;
        let elapsed = self.elapsed();
        say!(
            self.stdout,
            "[{}] {label} {} {:<22} probe {:<7} value {} (threshold {} in {})",
            elapsed,
            transition.severity,
            transition.rule,
            transition.probe,
            transition.value_text,
            transition.threshold_text,
            transition.window_text,
        );
    }

    fn table(&mut self) {
        self.transitions_since_table = 0;
        let elapsed = self.elapsed();
        say!(
            self.stdout,
            "[{}] {:<8} {:>7} {:>7} {:>9} {:>9}  last outcomes (last {} s)",
            elapsed,
            "probe",
            "results",
            "ok %",
            "p50 ms",
            "p99 ms",
            DEMO_WINDOW.as_secs()
        );
        for (probe, recent) in &self.recent {
            let ok = recent
                .iter()
                .filter(|result| result.outcome == Outcome::Ok)
                .count();
            let mut latencies: Vec<f64> = recent
                .iter()
                .filter(|result| result.outcome.has_latency_sample())
                .map(|result| result.latency.as_secs_f64() * 1000.0)
                .collect();
            latencies.sort_by(f64::total_cmp);
            let last: Vec<String> = recent
                .iter()
                .rev()
                .take(5)
                .map(|result| {
                    result
                        .status
                        .map_or(result.outcome.to_string(), |s| s.to_string())
                })
                .collect();
            say!(
                self.stdout,
                "        {:<8} {:>7} {:>7.1} {:>9} {:>9}  {}",
                probe,
                recent.len(),
                100.0 * ok as f64 / recent.len().max(1) as f64,
                nearest_rank(&latencies, 0.50),
                nearest_rank(&latencies, 0.99),
                last.join(" "),
            );
        }
    }

    fn all_fired_and_resolved(&self, rules: &[Arc<str>]) -> bool {
        rules.iter().all(|rule| {
            let instances: Vec<_> = self
                .fired
                .iter()
                .filter(|((name, _), _)| name == rule)
                .collect();
            !instances.is_empty()
                && instances
                    .iter()
                    .all(|(_, (fired, resolved))| fired.is_some() && resolved.is_some())
        })
    }

    /// Prints when each rule fired and resolved; returns whether every rule did both.
    fn summary(&mut self, rules: &[Arc<str>]) -> bool {
        say!(
            self.stdout,
            "\n{:<24} {:<8} {:>8} {:>9}",
            "rule",
            "probe",
            "fired",
            "resolved"
        );
        let mut complete = true;
        for rule in rules {
            let instances: Vec<_> = self
                .fired
                .iter()
                .filter(|((name, _), _)| name == rule)
                .collect();
            if instances.is_empty() {
                say!(
                    self.stdout,
                    "{rule:<24} {:<8} {:>8} {:>9}",
                    "-",
                    "never",
                    "-"
                );
                complete = false;
            }
            for ((_, probe), (fired, resolved)) in instances {
                let show = |at: &Option<Duration>| {
                    at.map_or("-".to_owned(), |at| format!("{}s", at.as_secs()))
                };
                say!(
                    self.stdout,
                    "{rule:<24} {probe:<8} {:>8} {:>9}",
                    show(fired),
                    show(resolved)
                );
                complete &= fired.is_some() && resolved.is_some();
            }
        }
        complete
    }
}

fn nearest_rank(sorted: &[f64], quantile: f64) -> String {
    if sorted.is_empty() {
        return "-".to_owned();
    }
    let rank = (quantile * sorted.len() as f64).ceil().max(1.0) as usize;
    format!("{:.1}", sorted[rank - 1])
}
