//! The set of running probe tasks, which a reload changes probe by probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{ProbeSpec, Schedule};
use crate::probe::{ProbeEvent, spawn_probe};
use crate::salesloft::Client;

struct ProbeTask {
    spec: Arc<ProbeSpec>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Running probe tasks by probe name.
pub(super) struct ProbeTasks {
    tasks: HashMap<Arc<str>, ProbeTask>,
    /// Start of each probe's latest run, so a restarted probe does not run again too soon.
    last_start: HashMap<Arc<str>, Instant>,
    events: mpsc::UnboundedSender<ProbeEvent>,
}

impl ProbeTasks {
    pub(super) fn new(events: mpsc::UnboundedSender<ProbeEvent>) -> Self {
        ProbeTasks {
            tasks: HashMap::new(),
            last_start: HashMap::new(),
            events,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(super) fn spec(&self, name: &str) -> Option<&Arc<ProbeSpec>> {
        self.tasks.get(name).map(|task| &task.spec)
    }

    /// Notes when a probe's run started, from its result.
    pub(super) fn record_start(&mut self, name: &Arc<str>, started: Instant) {
        self.last_start.insert(name.clone(), started);
    }

    /// Starts, restarts and stops tasks so that exactly `specs` run. A probe whose spec and
    /// client are unchanged keeps its task and its cadence. A changed one restarts no earlier
    /// than one old period after its previous run, so a reload never doubles a request.
    pub(super) fn apply(
        &mut self,
        specs: &[ProbeSpec],
        client: &Arc<Client>,
        client_changed: bool,
    ) {
        let desired: HashMap<&str, &ProbeSpec> =
            specs.iter().map(|spec| (&*spec.name, spec)).collect();
        let names: Vec<Arc<str>> = self.tasks.keys().cloned().collect();
        for name in names {
            let unchanged = desired
                .get(&*name)
                .is_some_and(|spec| !client_changed && **spec == *self.tasks[&name].spec);
            if unchanged {
                continue;
            }
            // Dropping the task's stop sender ends the task and abandons a run in flight, so
            // the restarted probe never has two requests in flight.
            let task = self.tasks.remove(&name).expect("the name was just listed");
            drop(task.stop);
            if !desired.contains_key(&*name) {
                info!(probe = %name, "probe removed");
                self.last_start.remove(&name);
            }
            let not_before = self.not_before(&name, &task.spec);
            if let Some(spec) = desired.get(&*name) {
                info!(probe = %name, "probe changed, restarting its schedule");
                self.start((*spec).clone(), client, not_before);
            }
        }
        for spec in specs {
            if !self.tasks.contains_key(&spec.name) {
                info!(probe = %spec.name, "probe added");
                self.start(spec.clone(), client, None);
            }
        }
    }

    fn not_before(&self, name: &str, old: &ProbeSpec) -> Option<Instant> {
        let Schedule::Interval { every, .. } = old.schedule else {
            return None;
        };
        self.last_start.get(name).map(|started| *started + every)
    }

    fn start(&mut self, spec: ProbeSpec, client: &Arc<Client>, not_before: Option<Instant>) {
        let spec = Arc::new(spec);
        let (stop, stopped) = watch::channel(false);
        let events = self.events.clone();
        let client = client.clone();
        let task_spec = spec.clone();
        let handle = tokio::spawn(async move {
            let mut wait = stopped.clone();
            if let Some(not_before) = not_before {
                // The new schedule's own splay comes on top of this wait.
                tokio::select! {
                    _ = tokio::time::sleep_until(not_before) => {}
                    _ = wait.changed() => return,
                }
            }
            let _ = spawn_probe(task_spec, client, events, stopped).await;
        });
        self.tasks
            .insert(spec.name.clone(), ProbeTask { spec, stop, handle });
    }

    /// Stops scheduling new runs and waits up to `grace` for runs in flight to finish and send
    /// their results. Runs still in flight at the end of `grace` are abandoned. The specs stay,
    /// so the results sent meanwhile are still recorded.
    pub(super) async fn stop_all(&mut self, grace: Duration) {
        for task in self.tasks.values() {
            let _ = task.stop.send(true);
        }
        let deadline = Instant::now() + grace;
        for (name, task) in &mut self.tasks {
            if tokio::time::timeout_at(deadline, &mut task.handle)
                .await
                .is_err()
            {
                warn!(
                    probe = %name,
                    grace_ms = grace.as_millis(),
                    "probe run still in flight at the end of the shutdown grace period, abandoning it"
                );
                // Dropping the task's stop sender abandons the run.
                drop(std::mem::replace(&mut task.stop, watch::channel(true).0));
            }
        }
    }
}
