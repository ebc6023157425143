//! The daemon: wires the scheduler, recorder, rule engine and notifiers together.
//!
//! Probe tasks hand their results over an unbounded channel, so a probe never waits for
//! recording, evaluation or notification. This task records each result, evaluates that probe's
//! rules at once, evaluates every rule again on the engine tick, and hands transitions to the
//! notifier, whose receivers each deliver on their own tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use crate::alert::{Engine, Transition, TransitionKind};
use crate::config::{Config, ProbeSpec};
use crate::notify::Notifier;
use crate::probe::ProbeResult;
use crate::probe::{ProbeEvent, spawn_probe};
use crate::salesloft::Client;
use crate::stats::Recorder;
use crate::store::{Journal, Store, StoreError};
use crate::telemetry::Metrics;

/// How long in-flight probes and queued notifications get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What the daemon reports to an observer such as the demo's terminal display.
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

/// Looks up an environment variable; passed in so tests never touch the process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Everything the daemon needs besides its configuration.
pub struct RunOptions {
    /// Looks up environment variables (secrets, `CREDENTIALS_DIRECTORY`).
    pub env: EnvLookup,
    /// Folder that receives every notification as files, for the demo.
    pub file_sink: Option<std::path::PathBuf>,
    /// Receives results and transitions as they happen.
    pub observer: Option<mpsc::UnboundedSender<DaemonEvent>>,
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
    Store(#[from] StoreError),
}

/// Runs probes, rules and notifications until `options.shutdown` turns true.
pub async fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    let env = options.env.clone();
    let token = config
        .salesloft
        .credential
        .load("salesloft.credential", &*env)?;
    let client = Client::new(&config.salesloft, token.into())
        .map_err(|error| StartError::Client(error.to_string()))?;
    let client = Arc::new(client);
    let location = config.salesloft.location.clone();
    let metrics = Metrics::new(config.receivers.otlp.as_ref(), &location)
        .map_err(|error| StartError::Telemetry(error.to_string()))?;
    let notifier = Notifier::start(
        &config.receivers,
        &*env,
        &location,
        options.file_sink.clone(),
    )
    .map_err(|error| StartError::Notify(error.to_string()))?;

    let retention = config
        .rules
        .iter()
        .map(|rule| rule.window)
        .max()
        .unwrap_or_default();
    let mut recorder = Recorder::new(config.engine.histogram_max, retention);
    let mut engine = Engine::new(&config.rules, &config.probes, location.clone());
    let mut journal = open_store(&config, &*env, &mut engine, &notifier)?;
    let server_address = host_of(&config.salesloft.base_url);
    let specs: HashMap<Arc<str>, Arc<ProbeSpec>> = config
        .probes
        .iter()
        .map(|probe| (probe.name.clone(), Arc::new(probe.clone())))
        .collect();

    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let mut shutdown = options.shutdown.clone();
    let tasks: Vec<JoinHandle<()>> = specs
        .values()
        .map(|spec| {
            spawn_probe(
                spec.clone(),
                client.clone(),
                events_tx.clone(),
                options.shutdown.clone(),
            )
        })
        .collect();
    drop(events_tx);
    info!(
        probes = specs.len(),
        rules = config.rules.len(),
        base_url = %config.salesloft.base_url,
        "loftwatch started"
    );

    let mut tick = tokio::time::interval(config.engine.eval_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let observer = options.observer;
    let mut deliver = |engine: &mut Engine, transitions: Vec<Transition>| {
        for transition in &transitions {
            log_transition(transition);
            if let Some(observer) = &observer {
                let _ = observer.send(DaemonEvent::Transition(transition.clone()));
            }
        }
        // Committed before any receiver gets it. After a failed commit the journal keeps it and
        // the next evaluation retries.
        let changes = engine.take_changes(Instant::now(), SystemTime::now());
        for entry in journal.commit(changes, transitions) {
            notifier.dispatch(&entry);
        }
    };
    loop {
        tokio::select! {
            event = events_rx.recv() => {
                let Some(event) = event else { break };
                match event {
                    ProbeEvent::Result(result) => {
                        recorder.record(&result);
                        if let Some(spec) = specs.get(&result.probe) {
                            metrics.record_result(spec, &result, &server_address);
                        }
                        let transitions = engine.evaluate(
                            &recorder,
                            Instant::now(),
                            SystemTime::now(),
                            Some(&result.probe),
                        );
                        if let Some(observer) = &observer {
                            let _ = observer.send(DaemonEvent::Result(result));
                        }
                        deliver(&mut engine, transitions);
                    }
                    ProbeEvent::Skipped { probe, reason, count } => {
                        metrics.record_skip(&probe, reason.as_str(), count);
                        if let Some(observer) = &observer {
                            let reason = reason.as_str();
                            let _ = observer.send(DaemonEvent::Skipped { probe, reason, count });
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let transitions =
                    engine.evaluate(&recorder, Instant::now(), SystemTime::now(), None);
                deliver(&mut engine, transitions);
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }

    info!("loftwatch stopping");
    // Saves the timers that changed since the last evaluation.
    deliver(&mut engine, Vec::new());
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    for task in tasks {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            warn!("a probe did not finish within the shutdown grace period");
        }
    }
    notifier
        .shutdown(deadline.saturating_duration_since(Instant::now()))
        .await;
    metrics.shutdown();
    info!("loftwatch stopped");
    Ok(())
}

/// Opens the store (the configured path, else `$STATE_DIRECTORY/loftwatch.db`, else memory),
/// restores the engine's alerts from it and queues the deliveries it still holds.
fn open_store(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    engine: &mut Engine,
    notifier: &Notifier,
) -> Result<Journal, StartError> {
    let path = config
        .store
        .path
        .clone()
        .or_else(|| crate::store::default_path(env));
    let store = match path {
        Some(path) => Store::open(&path)?,
        None => {
            warn!(
                "store.path is not set and STATE_DIRECTORY is not either: alert state and \
                 undelivered notifications are kept in memory and lost at exit"
            );
            Store::open_in_memory()?
        }
    };
    let saved = store.load_alerts()?;
    let restored = engine.restore(&saved, Instant::now(), SystemTime::now());
    notifier.attach_store(store.clone());
    let resumed = notifier.resume(&store)?;
    info!(
        path = %store.path().display(),
        restored_alerts = restored,
        resumed_deliveries = resumed,
        "state restored"
    );
    Ok(Journal::new(store, notifier.receiver_names()))
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
