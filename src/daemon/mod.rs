//! The daemon: wires the scheduler, recorder, rule engine and notifiers together.
//!
//! Probe tasks hand their results over an unbounded channel, so a probe never waits for
//! recording, evaluation or notification. The main loop records each result, evaluates that
//! probe's rules at once, evaluates every rule again on the engine tick, and hands transitions
//! to the notifier, whose receivers each deliver on their own tasks. A reload swaps the
//! configuration in place and keeps the windows and the alert state.

mod credentials;
mod lifecycle;
mod probes;
mod reload;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::alert::{Engine, Transition, TransitionKind};
use crate::config::Config;
use crate::notify::Notifier;
use crate::probe::{ProbeEvent, ProbeResult};
use crate::route::{Dispatcher, RoutedEntry};
use crate::salesloft::{BreakerState, Client, RateLimitPauses};
use crate::server::{Server, ServerState, default_health_freshness};
use crate::stats::Recorder;
use crate::store::{Journal, StoreError};
use crate::telemetry::CircuitState;
use crate::telemetry::Metrics;
use lifecycle::Lifecycle;
use probes::ProbeTasks;

pub use crate::config::state_directory;
pub use credentials::{Credentials, build_client};
pub use reload::ReloadSummary;
use state::{open_database, restore};

/// How long runs in flight get to finish at shutdown, and then again how long queued
/// notifications get to leave. The final OTLP metrics export comes after both, bounded by the
/// exporter's `timeout`, so a stop takes at most twice this plus that timeout.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often finished minutes of probe history are written to the store and old ones pruned.
pub const HISTORY_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Looks up an environment variable; passed in so tests never touch the process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// An event reported to an observer such as the demo's terminal display.
#[derive(Debug, Clone)]
pub enum DaemonEvent {
    /// A probe finished.
    Result(ProbeResult),
    /// A tick fell while the probe was busy or paused.
    Skipped {
        probe: Arc<str>,
        reason: &'static str,
        count: u64,
    },
    /// An alert started or stopped firing.
    Transition(Transition),
}

/// A request to re-read the configuration file; the reply carries what changed or why the new
/// configuration was rejected.
pub struct ReloadRequest {
    pub reply: oneshot::Sender<Result<ReloadSummary, String>>,
}

/// Everything the daemon needs besides its configuration.
pub struct RunOptions {
    /// Looks up environment variables (secrets, `CREDENTIALS_DIRECTORY`).
    pub env: EnvLookup,
    /// The configuration file, re-read on reload; without it, reloads are rejected.
    pub config_path: Option<PathBuf>,
    /// Folder that receives every notification as files, for the demo.
    pub file_sink: Option<PathBuf>,
    /// Receives results and transitions as they happen.
    pub observer: Option<mpsc::UnboundedSender<DaemonEvent>>,
    /// Reload requests, from SIGHUP or the HTTP API.
    pub reload: Option<mpsc::Receiver<ReloadRequest>>,
    /// Turns true to stop the daemon.
    pub shutdown: watch::Receiver<bool>,
}

/// Fatal start-up problems, before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Secret(#[from] crate::config::SecretError),
    #[error("cannot build the SalesLoft client: {0}")]
    Client(String),
    #[error("cannot start the notifiers: {0}")]
    Notify(String),
    #[error("cannot start OTLP metrics: {0}")]
    Telemetry(String),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running daemon's parts.
struct Daemon {
    config: Config,
    env: EnvLookup,
    file_sink: Option<PathBuf>,
    credentials: Credentials,
    pauses: Arc<RateLimitPauses>,
    client: Arc<Client>,
    probes: ProbeTasks,
    recorder: Recorder,
    engine: Engine,
    notifier: Notifier,
    /// Alert state and the outbox; every transition is committed here before it is sent.
    journal: Journal,
    /// Routes, groups, repeats and mutes notifications.
    dispatcher: Dispatcher,
    metrics: Metrics,
    server_address: String,
    observer: Option<mpsc::UnboundedSender<DaemonEvent>>,
    firing: usize,
    lifecycle: Lifecycle,
    /// State shown by the HTTP server: latest results, alert states, metrics.
    server_state: ServerState,
}

/// Runs probes, rules and notifications until `options.shutdown` turns true.
pub async fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let credentials = Credentials::load(&config.salesloft, &options.env, None)?;
    let pauses = Arc::new(RateLimitPauses::new());
    let client = Arc::new(build_client(&config.salesloft, &credentials, &pauses)?);
    let location = config.salesloft.location.clone();
    // The database first: a second loftwatch on the same file stops here, with an error that
    // names the file, before it could fail on the HTTP port instead.
    let store = open_database(&config, &*options.env)?;
    let freshness = config
        .server
        .health_freshness
        .unwrap_or_else(|| default_health_freshness(&config.probes));
    let (reload_tx, mut reload_rx) = mpsc::channel(4);
    let server_state = ServerState::new(&location, freshness).with_reload(reload_tx.clone());
    let server_token = match &config.server.token {
        Some(source) => Some(source.load("server.token", &*options.env)?),
        None => None,
    };
    let server = Server::bind(&config.server, server_token, server_state.clone()).await?;
    let metrics = start_metrics(&config)?;
    let notifier = start_notifier(&config, &options.env, options.file_sink.clone())?;
    let mut engine = Engine::new(&config.rules, &config.probes, location);
    let (journal, silences) = restore(store, &mut engine, &notifier)?;
    server_state.attach_store(journal.store().clone());
    server_state.set_rules(&config.rules);
    server_state.set_silences(silences.clone());
    let mut dispatcher = Dispatcher::new(config.routing.clone(), Some(silences));
    let firing = journal.store().firing_notifications()?;
    let firing = firing
        .into_iter()
        .map(|(entry, receivers)| (entry.transition, receivers))
        .collect();
    dispatcher.restore_firing(firing, &notifier.receiver_names(), Instant::now());
    let mut daemon = Daemon {
        recorder: Recorder::new(config.engine.histogram_max, retention(&config)),
        engine,
        journal,
        dispatcher,
        server_address: host_of(&config.salesloft.base_url),
        probes: ProbeTasks::new(events_tx),
        credentials,
        pauses,
        client,
        notifier,
        metrics,
        env: options.env,
        file_sink: options.file_sink,
        observer: options.observer,
        config,
        firing: 0,
        lifecycle: Lifecycle::new(),
        server_state,
    };
    let server_task = server.spawn(options.shutdown.clone());
    // SIGHUP requests join the HTTP server's on one channel.
    if let Some(mut signals) = options.reload {
        tokio::spawn(async move {
            while let Some(request) = signals.recv().await {
                if reload_tx.send(request).await.is_err() {
                    return;
                }
            }
        });
    }
    daemon
        .probes
        .apply(&daemon.config.probes, &daemon.client, false);
    info!(
        probes = daemon.config.probes.len(),
        rules = daemon.config.rules.len(),
        base_url = %daemon.config.salesloft.base_url,
        state_directory = ?state_directory(&*daemon.env),
        "loftwatch started"
    );
    daemon.lifecycle.ready(&daemon.status_line());

    let mut tick = tokio::time::interval(daemon.config.engine.eval_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Without a watchdog the period is a day, and the pet below does nothing.
    let pet_every = daemon
        .lifecycle
        .watchdog_period()
        .map_or(Duration::from_secs(86_400), |p| p / 2);
    let mut watchdog_tick = tokio::time::interval(pet_every);
    watchdog_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut history_tick = tokio::time::interval(HISTORY_FLUSH_INTERVAL);
    history_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = options.shutdown;
    let config_path = options.config_path;
    loop {
        tokio::select! {
            event = events_rx.recv() => match event {
                Some(event) => daemon.handle_event(event),
                None => break,
            },
            _ = tick.tick() => {
                daemon.evaluate(None);
                daemon.export_state();
            }
            _ = watchdog_tick.tick() => daemon.lifecycle.watchdog(),
            _ = history_tick.tick() => daemon.flush_history(false),
            Some(request) = reload_rx.recv() => {
                daemon.lifecycle.reloading();
                let outcome = daemon.reload(config_path.as_deref()).await;
                if outcome.is_ok() {
                    daemon.server_state.set_rules(&daemon.config.rules);
                    let names: Vec<&str> =
                        daemon.config.probes.iter().map(|probe| &*probe.name).collect();
                    daemon.server_state.history().retain_probes(&names);
                }
                if outcome.is_ok() && daemon.config.engine.eval_interval != tick.period() {
                    tick = tokio::time::interval(daemon.config.engine.eval_interval);
                    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                }
                daemon.lifecycle.ready(&daemon.status_line());
                let _ = request.reply.send(outcome);
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }

    info!("loftwatch stopping");
    daemon.lifecycle.stopping();
    // Saves the timers that changed since the last evaluation.
    daemon.deliver(Vec::new());
    // Runs in flight finish first, so their results reach the windows, the rules, the
    // notifications and the final metrics export.
    daemon.probes.stop_all(SHUTDOWN_GRACE).await;
    while let Ok(event) = events_rx.try_recv() {
        daemon.handle_event(event);
    }
    // The minute in progress is written too, so a restart keeps the history up to the stop.
    daemon.flush_history(true);
    daemon.notifier.shutdown(SHUTDOWN_GRACE).await;
    let metrics = daemon.metrics;
    let _ = tokio::task::spawn_blocking(move || metrics.shutdown()).await;
    // The server saw the same shutdown signal and closes its listener at once.
    if tokio::time::timeout(Duration::from_secs(2), server_task)
        .await
        .is_err()
    {
        warn!("the http server did not stop within the shutdown grace period");
    }
    info!("loftwatch stopped");
    Ok(())
}

fn start_metrics(config: &Config) -> Result<Metrics, StartError> {
    Metrics::new(config.receivers.otlp.as_ref(), &config.salesloft.location)
        .map_err(|error| StartError::Telemetry(error.to_string()))
}

fn start_notifier(
    config: &Config,
    env: &EnvLookup,
    file_sink: Option<PathBuf>,
) -> Result<Notifier, StartError> {
    Notifier::start(
        &config.receivers,
        &**env,
        &config.salesloft.location,
        file_sink,
    )
    .map_err(|error| StartError::Notify(error.to_string()))
}

/// Returns how long results are kept: the longest rule window.
fn retention(config: &Config) -> Duration {
    config
        .rules
        .iter()
        .map(|rule| rule.window)
        .max()
        .unwrap_or_default()
}

impl Daemon {
    fn handle_event(&mut self, event: ProbeEvent) {
        match event {
            ProbeEvent::Result(result) => {
                self.probes
                    .record_start(&result.probe, result.finished - result.latency);
                // A result of a probe removed by a reload, still in flight then, is dropped.
                let Some(spec) = self.probes.spec(&result.probe).cloned() else {
                    return;
                };
                self.recorder.record(&result);
                self.metrics
                    .record_result(&spec, &result, &self.server_address);
                self.server_state
                    .record_result(&spec, &result, &self.server_address);
                let probe = result.probe.clone();
                if let Some(observer) = &self.observer {
                    let _ = observer.send(DaemonEvent::Result(result));
                }
                self.evaluate(Some(&probe));
            }
            ProbeEvent::Skipped {
                probe,
                reason,
                count,
            } => {
                self.metrics.record_skip(&probe, reason.as_str(), count);
                self.server_state
                    .record_skip(&probe, reason.as_str(), count);
                if let Some(observer) = &self.observer {
                    let reason = reason.as_str();
                    let _ = observer.send(DaemonEvent::Skipped {
                        probe,
                        reason,
                        count,
                    });
                }
            }
        }
    }

    fn evaluate(&mut self, probe: Option<&str>) {
        let transitions = self.engine.evaluate_with(
            &self.recorder,
            &*self.client,
            Instant::now(),
            SystemTime::now(),
            probe,
        );
        let changed = !transitions.is_empty();
        self.deliver(transitions);
        // Copying every alert state into /metrics costs O(rules x probes), too much to repeat
        // after each result of a large configuration. The periodic tick copies them at least
        // every eval_interval, and a result that fires or resolves an alert copies them at once.
        if probe.is_none() || changed {
            self.server_state
                .set_engine_and_receivers(&self.engine, &self.notifier);
            self.metrics.record_receivers(&self.notifier);
        }
    }

    /// Exports what is not tied to one result: each host's circuit breaker and the OAuth
    /// access token's expiry, to OTLP and /metrics.
    fn export_state(&self) {
        let circuits: Vec<(String, BreakerState)> = self.client.breakers().states();
        let expiry = self
            .client
            .oauth()
            .and_then(|session| session.status().expires_in)
            .and_then(|left| (SystemTime::now() + left).duration_since(UNIX_EPOCH).ok())
            .map(|at| at.as_secs_f64());
        let numbers: Vec<(String, u64)> = circuits
            .iter()
            .map(|(host, state)| (host.clone(), u64::from(state.as_number())))
            .collect();
        self.metrics.record_state(&numbers, expiry);
        let prometheus = self.server_state.prometheus();
        for (host, state) in &circuits {
            let state = match state {
                BreakerState::Closed => CircuitState::Closed,
                BreakerState::HalfOpen => CircuitState::HalfOpen,
                BreakerState::Open => CircuitState::Open,
            };
            prometheus.set_circuit_state(host, state);
        }
        if let Some(expiry) = expiry {
            prometheus.set_token_expiry_seconds(expiry);
        }
    }

    /// Logs the transitions, commits them with the engine's changed timers, then hands the
    /// committed outbox entries to the receivers. After a failed commit the journal keeps them
    /// in memory and the next call retries, so nothing leaves before it is on disk.
    fn deliver(&mut self, transitions: Vec<Transition>) {
        let changed = !transitions.is_empty();
        for transition in &transitions {
            log_transition(transition);
            match transition.kind {
                TransitionKind::Firing => self.firing += 1,
                TransitionKind::Resolved => self.firing = self.firing.saturating_sub(1),
            }
            if let Some(observer) = &self.observer {
                let _ = observer.send(DaemonEvent::Transition(transition.clone()));
            }
        }
        let now = Instant::now();
        let wall = SystemTime::now();
        let running = self.notifier.receiver_names();
        let routed = self.dispatcher.plan(transitions, &running, now, wall);
        let changes = self.engine.take_changes(now, wall);
        let committed = self.journal.commit_routed(changes, routed);
        self.dispatch(committed, &running, now, wall);
        if changed {
            self.lifecycle.status(&self.status_line());
        }
    }

    /// Writes the finished minutes of probe history to the store, every minute with `all`,
    /// and deletes rollups older than `history.retention`. Rollups whose write failed stay in
    /// memory and are written with the next batch.
    fn flush_history(&mut self, all: bool) {
        let now = SystemTime::now();
        let history = self.server_state.history();
        let rollups = history.take_finished(now, all);
        let store = self.journal.store();
        if !rollups.is_empty() {
            if let Err(error) = store.write_rollups(&rollups) {
                warn!(%error, minutes = rollups.len(), "cannot write probe history");
                history.keep_unwritten(rollups);
                return;
            }
        }
        let cutoff = now
            .checked_sub(self.config.history.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match store.prune_rollups(cutoff) {
            Ok(0) => {}
            Ok(pruned) => debug!(pruned, "old probe history pruned"),
            Err(error) => warn!(%error, "cannot prune probe history"),
        }
    }

    /// Hands committed notifications to their groups, then sends the notifications whose
    /// group is due and the repeats of firing alerts.
    fn dispatch(
        &mut self,
        committed: Vec<RoutedEntry>,
        running: &[&'static str],
        now: Instant,
        wall: SystemTime,
    ) {
        self.dispatcher.enqueue(committed, now);
        for (entry, receivers) in self.dispatcher.take_due(now) {
            self.notifier.dispatch_to(&entry, &receivers);
        }
        for (transition, receivers) in self.dispatcher.take_repeats(running, now, wall) {
            info!(
                alert = %transition.rule,
                probe = %transition.probe,
                receivers = ?receivers,
                "notifying firing alert again"
            );
            self.notifier.send_to(&transition, &receivers);
        }
    }

    /// Returns the one-line status shown by `systemctl status`.
    fn status_line(&self) -> String {
        format!(
            "{} probes, {} alerts firing",
            self.probes.len(),
            self.firing
        )
    }
}

fn log_transition(transition: &Transition) {
    match transition.kind {
        TransitionKind::Firing => warn!(
            alert = %transition.rule,
            probe = %transition.probe,
            severity = %transition.severity,
            value = %transition.value_text,
            threshold = %transition.threshold_text,
            "alert firing"
        ),
        TransitionKind::Resolved => info!(
            alert = %transition.rule,
            probe = %transition.probe,
            severity = %transition.severity,
            value = %transition.value_text,
            "alert resolved"
        ),
    }
}

/// Returns the host part of a base URL, for the `server.address` attribute.
pub fn host_of(base_url: &str) -> String {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}
