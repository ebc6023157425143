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
use crate::server::{Server, ServerState, default_health_freshness};
use crate::stats::Recorder;
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
    Server(#[from] crate::server::ServerError),
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
    // HTTP server of /health and /metrics.
    let server_state = ServerState::new(
        &location,
        config
            .server
            .health_freshness
            .unwrap_or_else(|| default_health_freshness(&config.probes)),
    );
    let server_token = match &config.server.token {
        Some(source) => Some(source.load("server.token", &*env)?),
        None => None,
    };
    let server = Server::bind(&config.server, server_token, server_state.clone()).await?;
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
    let server_address = host_of(&config.salesloft.base_url);
    let specs: HashMap<Arc<str>, Arc<ProbeSpec>> = config
        .probes
        .iter()
        .map(|probe| (probe.name.clone(), Arc::new(probe.clone())))
        .collect();

    let server_task = server.spawn(options.shutdown.clone());
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
    let deliver = |transitions: Vec<Transition>| {
        for transition in transitions {
            log_transition(&transition);
            if let Some(observer) = &observer {
                let _ = observer.send(DaemonEvent::Transition(transition.clone()));
            }
            notifier.send(transition);
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
                            server_state.record_result(spec, &result, &server_address);
                        }
                        let transitions = engine.evaluate(
                            &recorder,
                            Instant::now(),
                            SystemTime::now(),
                            Some(&result.probe),
                        );
                        server_state.set_engine_and_receivers(&engine, &notifier);
                        if let Some(observer) = &observer {
                            let _ = observer.send(DaemonEvent::Result(result));
                        }
                        deliver(transitions);
                    }
                    ProbeEvent::Skipped { probe, reason, count } => {
                        metrics.record_skip(&probe, reason.as_str(), count);
                        server_state.record_skip(&probe, reason.as_str(), count);
                        if let Some(observer) = &observer {
                            let reason = reason.as_str();
                            let _ = observer.send(DaemonEvent::Skipped { probe, reason, count });
                        }
                    }
                }
            }
            _ = tick.tick() => {
                deliver(engine.evaluate(&recorder, Instant::now(), SystemTime::now(), None));
                server_state.set_engine_and_receivers(&engine, &notifier);
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }

    info!("loftwatch stopping");
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
    if tokio::time::timeout_at(deadline, server_task)
        .await
        .is_err()
    {
        warn!("the http server did not stop within the shutdown grace period");
    }
    info!("loftwatch stopped");
    Ok(())
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
