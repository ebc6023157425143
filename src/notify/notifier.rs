//! The notifier: one queue and one tokio task per receiver, with retries and backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, warn};

use super::email::EmailReceiver;
use super::file_sink::FileSink;
use super::otlp::OtlpLogReceiver;
use super::retry::{Backoff, deliver_with_retry};
use super::{DeliveryError, NotifyError};
use crate::alert::Transition;
use crate::config::Receivers;

/// Settings of the notifier that the configuration file does not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierOptions {
    /// Retry schedule of every receiver.
    pub backoff: Backoff,
    /// Transitions each receiver queues before [`Notifier::send`] drops new ones.
    pub queue_capacity: usize,
}

impl Default for NotifierOptions {
    fn default() -> NotifierOptions {
        NotifierOptions {
            backoff: Backoff::default(),
            queue_capacity: 1024,
        }
    }
}

/// The kinds of receiver a notifier can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiverKind {
    Email,
    Otlp,
    File,
}

impl ReceiverKind {
    /// Returns the name used in logs: `email`, `otlp` or `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Email => "email",
            ReceiverKind::Otlp => "otlp",
            ReceiverKind::File => "file",
        }
    }
}

/// Live counters of one receiver, shared between the notifier, its task and the exporter.
#[derive(Debug, Default)]
pub(crate) struct ReceiverStats {
    sent: AtomicU64,
    failed: AtomicU64,
    attempt_errors: AtomicU64,
    pending: AtomicU64,
}

impl ReceiverStats {
    pub(crate) fn add_sent(&self, count: u64) {
        self.sent.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_failed(&self, count: u64) {
        self.failed.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_attempt_error(&self) {
        self.attempt_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> ReceiverCounts {
        ReceiverCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            attempt_errors: self.attempt_errors.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one receiver's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverCounts {
    /// Notifications delivered. For OTLP, log records the collector accepted.
    pub sent: u64,
    /// Notifications given up: retries exhausted, a permanent rejection, a full queue, or
    /// still queued when the shutdown deadline passed.
    pub failed: u64,
    /// Failed attempts, retried ones included. For OTLP, failed exports of a batch.
    pub attempt_errors: u64,
    /// Notifications queued or being delivered. OTLP records leave this count once the
    /// batch processor has them.
    pub pending: u64,
}

/// A receiver whose deliveries the notifier retries.
enum RetriedReceiver {
    Email(EmailReceiver),
    File(FileSink),
}

impl RetriedReceiver {
    async fn deliver(&self, transition: &Transition) -> Result<(), DeliveryError> {
        match self {
            RetriedReceiver::Email(email) => email.deliver(transition).await,
            RetriedReceiver::File(sink) => sink.deliver(transition).await.map(|_stem| ()),
        }
    }
}

struct ReceiverHandle {
    kind: ReceiverKind,
    queue: mpsc::Sender<Transition>,
    task: JoinHandle<()>,
    stats: Arc<ReceiverStats>,
}

/// Delivers alert transitions to every configured receiver.
///
/// NOTE: dropping a notifier without [`Notifier::shutdown`] shuts the OTLP logger provider down
/// in its `Drop`, which can block a runtime thread while a black-holed collector times out.
pub struct Notifier {
    receivers: Vec<ReceiverHandle>,
    otlp: Option<Arc<OtlpLogReceiver>>,
}

impl Notifier {
    /// Starts one task per configured receiver with the default [`NotifierOptions`].
    /// `secrets` looks up environment variables for [`crate::config::SecretSource::load`].
    /// `location` labels the OTLP resource. When `file_sink` is set, every transition is also
    /// written into that folder. Must be called inside a tokio runtime.
    pub fn start(
        receivers: &Receivers,
        secrets: &dyn Fn(&str) -> Option<String>,
        location: &str,
        file_sink: Option<PathBuf>,
    ) -> Result<Notifier, NotifyError> {
        Notifier::start_with(
            receivers,
            secrets,
            location,
            file_sink,
            NotifierOptions::default(),
        )
    }

    /// Starts the notifier like [`Notifier::start`], with explicit options.
    pub fn start_with(
        receivers: &Receivers,
        secrets: &dyn Fn(&str) -> Option<String>,
        location: &str,
        file_sink: Option<PathBuf>,
        options: NotifierOptions,
    ) -> Result<Notifier, NotifyError> {
        // Build every receiver before spawning any task, so an error leaves nothing running.
        let email = match &receivers.email {
            Some(config) => Some(EmailReceiver::new(config, secrets)?),
            None => None,
        };
        let file = match file_sink {
            Some(folder) => Some(FileSink::new(folder, receivers.email.as_ref())?),
            None => None,
        };
        let otlp_stats = Arc::new(ReceiverStats::default());
        let otlp = match &receivers.otlp {
            Some(config) => Some(Arc::new(OtlpLogReceiver::new(
                config,
                location,
                &options.backoff,
                otlp_stats.clone(),
            )?)),
            None => None,
        };

        let mut handles = Vec::new();
        if let Some(email) = email {
            let receiver = RetriedReceiver::Email(email);
            handles.push(spawn_retried(ReceiverKind::Email, receiver, &options));
        }
        if let Some(otlp) = &otlp {
            handles.push(spawn_otlp(otlp.clone(), otlp_stats, &options));
        }
        if let Some(file) = file {
            handles.push(spawn_retried(
                ReceiverKind::File,
                RetriedReceiver::File(file),
                &options,
            ));
        }
        Ok(Notifier {
            receivers: handles,
            otlp,
        })
    }

    /// Queues a transition for every receiver and returns at once. When a receiver's queue is
    /// full, the transition is dropped for that receiver, logged and counted as failed.
    pub fn send(&self, transition: Transition) {
        for receiver in &self.receivers {
            receiver.stats.pending.fetch_add(1, Ordering::Relaxed);
            let alert_id = transition.alert_id.clone();
            let reason = match receiver.queue.try_send(transition.clone()) {
                Ok(()) => continue,
                Err(TrySendError::Full(_)) => "queue full",
                Err(TrySendError::Closed(_)) => "receiver task stopped",
            };
            receiver.stats.pending.fetch_sub(1, Ordering::Relaxed);
            receiver.stats.add_failed(1);
            error!(
                receiver = receiver.kind.as_str(),
                alert_id, reason, "notification dropped"
            );
        }
    }

    /// Returns the kinds of the running receivers, in start order.
    pub fn receiver_kinds(&self) -> Vec<ReceiverKind> {
        self.receivers
            .iter()
            .map(|receiver| receiver.kind)
            .collect()
    }

    /// Returns the current counters of one receiver, or `None` when it is not configured.
    pub fn counts(&self, kind: ReceiverKind) -> Option<ReceiverCounts> {
        let receiver = self
            .receivers
            .iter()
            .find(|receiver| receiver.kind == kind)?;
        Some(receiver.stats.snapshot())
    }

    /// Stops accepting transitions and delivers the queued ones until `deadline` has passed.
    /// Tasks still busy then are aborted and their queued notifications counted as failed.
    /// Returns the final counters of every receiver.
    pub async fn shutdown(self, deadline: Duration) -> Vec<(ReceiverKind, ReceiverCounts)> {
        let deadline_at = Instant::now() + deadline;
        let mut finished = Vec::new();
        for receiver in self.receivers {
            let ReceiverHandle {
                kind,
                queue,
                mut task,
                stats,
            } = receiver;
            drop(queue);
            if tokio::time::timeout_at(deadline_at, &mut task)
                .await
                .is_err()
            {
                task.abort();
                let lost = stats.pending.swap(0, Ordering::Relaxed);
                stats.add_failed(lost);
                error!(
                    receiver = kind.as_str(),
                    lost, "shutdown deadline passed, notifications lost"
                );
            }
            finished.push((kind, stats));
        }

        if let Some(otlp) = self.otlp {
            // The provider shutdown blocks its thread while the batch processor exports.
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            let flush = tokio::task::spawn_blocking(move || otlp.shutdown(remaining));
            let grace = remaining + Duration::from_millis(100);
            if tokio::time::timeout(grace, flush).await.is_err() {
                warn!(
                    receiver = "otlp",
                    "otlp shutdown did not finish before the deadline"
                );
            }
        }

        finished
            .into_iter()
            .map(|(kind, stats)| (kind, stats.snapshot()))
            .collect()
    }
}

fn spawn_retried(
    kind: ReceiverKind,
    receiver: RetriedReceiver,
    options: &NotifierOptions,
) -> ReceiverHandle {
    let (queue, mut incoming) = mpsc::channel::<Transition>(options.queue_capacity.max(1));
    let stats = Arc::new(ReceiverStats::default());
    let task_stats = stats.clone();
    let backoff = options.backoff.clone();
    let task = tokio::spawn(async move {
        while let Some(transition) = incoming.recv().await {
            let attempt = || receiver.deliver(&transition);
            let alert_id = transition.alert_id.as_str();
            deliver_with_retry(kind, alert_id, &backoff, &task_stats, attempt).await;
            task_stats.pending.fetch_sub(1, Ordering::Relaxed);
        }
    });
    ReceiverHandle {
        kind,
        queue,
        task,
        stats,
    }
}

fn spawn_otlp(
    otlp: Arc<OtlpLogReceiver>,
    stats: Arc<ReceiverStats>,
    options: &NotifierOptions,
) -> ReceiverHandle {
    let (queue, mut incoming) = mpsc::channel::<Transition>(options.queue_capacity.max(1));
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        while let Some(transition) = incoming.recv().await {
            otlp.emit(&transition);
            task_stats.pending.fetch_sub(1, Ordering::Relaxed);
        }
    });
    ReceiverHandle {
        kind: ReceiverKind::Otlp,
        queue,
        task,
        stats,
    }
}
