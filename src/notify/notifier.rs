//! The notifier: one queue and one tokio task per receiver, with retries and backoff.
//!
//! With a store attached, each queued transition carries its outbox id, and the receiver's task
//! records the outcome in the outbox once delivery ended, so that an undelivered transition is
//! sent again after a restart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, warn};

use super::email::EmailReceiver;
use super::file_sink::FileSink;
use super::otlp::OtlpLogReceiver;
use super::retry::{Backoff, RetryOutcome, deliver_with_retry};
use super::{DeliveryError, NotifyError};
use crate::alert::Transition;
use crate::config::Receivers;
use crate::store::{DeliveryStatus, OutboxEntry, Store, StoreError};

/// The store shared by a notifier and its tasks, set once by [`Notifier::attach_store`].
type SharedStore = Arc<OnceLock<Store>>;

/// One transition in a receiver's queue, with its outbox id when it was committed.
struct Queued {
    outbox_id: Option<i64>,
    transition: Transition,
}

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
    queue: mpsc::Sender<Queued>,
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
    store: SharedStore,
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

        let store = SharedStore::default();
        let mut handles = Vec::new();
        if let Some(email) = email {
            let receiver = RetriedReceiver::Email(email);
            handles.push(spawn_retried(
                ReceiverKind::Email,
                receiver,
                &options,
                store.clone(),
            ));
        }
        if let Some(otlp) = &otlp {
            handles.push(spawn_otlp(
                otlp.clone(),
                otlp_stats,
                &options,
                store.clone(),
            ));
        }
        if let Some(file) = file {
            handles.push(spawn_retried(
                ReceiverKind::File,
                RetriedReceiver::File(file),
                &options,
                store.clone(),
            ));
        }
        Ok(Notifier {
            receivers: handles,
            otlp,
            store,
        })
    }

    /// Makes every receiver record its delivery outcomes in `store`. Only the first store
    /// attached is used.
    pub fn attach_store(&self, store: Store) {
        if self.store.set(store).is_err() {
            warn!("the notifier already has a store, keeping the first one");
        }
    }

    /// Returns the names of the running receivers (`email`, `otlp`, `file`), which key their
    /// outbox rows.
    pub fn receiver_names(&self) -> Vec<&'static str> {
        self.receivers
            .iter()
            .map(|receiver| receiver.kind.as_str())
            .collect()
    }

    /// Queues a transition that was not committed for every receiver and returns at once.
    /// When a receiver's queue is full, the transition is dropped for that receiver, logged and
    /// counted as failed.
    pub fn send(&self, transition: Transition) {
        for receiver in &self.receivers {
            enqueue(receiver, None, transition.clone());
        }
    }

    /// Queues a committed transition for every receiver, like [`Notifier::send`]. A
    /// transition dropped from a full queue stays pending in the outbox.
    pub fn dispatch(&self, entry: &OutboxEntry) {
        for receiver in &self.receivers {
            enqueue(receiver, Some(entry.id), entry.transition.clone());
        }
    }

    /// Queues a committed transition for the running receivers named in `receivers` only.
    pub fn dispatch_to(&self, entry: &OutboxEntry, receivers: &[&str]) {
        for receiver in &self.receivers {
            if receivers.contains(&receiver.kind.as_str()) {
                enqueue(receiver, Some(entry.id), entry.transition.clone());
            }
        }
    }

    /// Queues a transition that is not committed, such as a repeat of a firing alert, for the
    /// running receivers named in `receivers` only.
    pub fn send_to(&self, transition: &Transition, receivers: &[&str]) {
        for receiver in &self.receivers {
            if receivers.contains(&receiver.kind.as_str()) {
                enqueue(receiver, None, transition.clone());
            }
        }
    }

    /// Queues every transition that `store` has as pending for a running receiver, oldest
    /// first, and returns how many deliveries were queued.
    pub fn resume(&self, store: &Store) -> Result<usize, StoreError> {
        let mut queued = 0;
        for receiver in &self.receivers {
            for entry in store.pending(receiver.kind.as_str())? {
                enqueue(receiver, Some(entry.id), entry.transition);
                queued += 1;
            }
        }
        Ok(queued)
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

/// Queues one transition for one receiver, or logs and counts it as failed when the queue is
/// full or the task stopped.
fn enqueue(receiver: &ReceiverHandle, outbox_id: Option<i64>, transition: Transition) {
    receiver.stats.pending.fetch_add(1, Ordering::Relaxed);
    let alert_id = transition.alert_id.clone();
    let queued = Queued {
        outbox_id,
        transition,
    };
    let reason = match receiver.queue.try_send(queued) {
        Ok(()) => return,
        Err(TrySendError::Full(_)) => "queue full",
        Err(TrySendError::Closed(_)) => "receiver task stopped",
    };
    receiver.stats.pending.fetch_sub(1, Ordering::Relaxed);
    receiver.stats.add_failed(1);
    error!(
        receiver = receiver.kind.as_str(),
        alert_id, outbox_id, reason, "notification dropped"
    );
}

/// Records the outcome of one delivery in the outbox, when the notifier has a store and the
/// transition was committed. The write runs on the blocking pool because it waits for fsync.
async fn record_outcome(
    store: &SharedStore,
    kind: ReceiverKind,
    queued: &Queued,
    outcome: &RetryOutcome,
) {
    let (Some(store), Some(id)) = (store.get(), queued.outbox_id) else {
        return;
    };
    let store = store.clone();
    let (status, attempts, message) = match outcome {
        RetryOutcome::Delivered { attempts } => (DeliveryStatus::Delivered, *attempts, None),
        RetryOutcome::GaveUp { attempts, error } => {
            let status = if error.permanent {
                DeliveryStatus::Failed
            } else {
                // NOTE: a transient failure that outlasts every attempt stays pending, so it is
                // delivered again at the next start but not earlier.
                DeliveryStatus::Pending
            };
            (status, *attempts, Some(error.message.clone()))
        }
    };
    let receiver = kind.as_str();
    let written = tokio::task::spawn_blocking(move || {
        store.record_delivery(id, receiver, status, attempts, message.as_deref())
    })
    .await;
    let failure = match written {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(join_error) => join_error.to_string(),
    };
    error!(
        receiver,
        alert_id = queued.transition.alert_id,
        outbox_id = id,
        error = failure,
        "cannot record the delivery in the outbox, it will be delivered again after a restart"
    );
}

// TODO: a receiver down longer than a configured `fallback_after` should hand its outbox
// rows to the receiver named by `fallback`. Neither key exists yet, so a dead receiver only
// retries.
fn spawn_retried(
    kind: ReceiverKind,
    receiver: RetriedReceiver,
    options: &NotifierOptions,
    store: SharedStore,
) -> ReceiverHandle {
    let (queue, mut incoming) = mpsc::channel::<Queued>(options.queue_capacity.max(1));
    let stats = Arc::new(ReceiverStats::default());
    let task_stats = stats.clone();
    let backoff = options.backoff.clone();
    let task = tokio::spawn(async move {
        while let Some(queued) = incoming.recv().await {
            let transition = &queued.transition;
            let attempt = || receiver.deliver(transition);
            let alert_id = transition.alert_id.as_str();
            let outcome = deliver_with_retry(kind, alert_id, &backoff, &task_stats, attempt).await;
            record_outcome(&store, kind, &queued, &outcome).await;
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
    store: SharedStore,
) -> ReceiverHandle {
    let (queue, mut incoming) = mpsc::channel::<Queued>(options.queue_capacity.max(1));
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        while let Some(queued) = incoming.recv().await {
            // The batch processor retries the export itself, so handing the record over counts
            // as delivered in the outbox.
            otlp.emit(&queued.transition);
            let outcome = RetryOutcome::Delivered { attempts: 1 };
            record_outcome(&store, ReceiverKind::Otlp, &queued, &outcome).await;
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
