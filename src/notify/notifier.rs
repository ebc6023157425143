//! The notifier: one queue and one tokio task per receiver, with retries and backoff.
//!
//! With a store attached, each queued transition carries its outbox id, and the receiver's task
//! records the outcome in the outbox once delivery ended, so that an undelivered transition is
//! sent again after a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, warn};

use super::alertmanager::AlertmanagerReceiver;
use super::email::EmailReceiver;
use super::file_sink::FileSink;
use super::heartbeat::{Heartbeat, spawn_heartbeat};
use super::otlp::OtlpLogReceiver;
use super::retry::{Backoff, FallbackClock, RetryOutcome, deliver_with_retry};
use super::stats::{ReceiverCounts, ReceiverStats};
use super::webhook::WebhookReceiver;
use super::{DeliveryError, NotifyError};
use crate::alert::Transition;
use crate::config::{FallbackConfig, ReceiverName, Receivers};
use crate::store::{DeliveryStatus, OutboxEntry, Store, StoreError};

/// The store shared by a notifier and its tasks, set once by [`Notifier::attach_store`].
type SharedStore = Arc<OnceLock<Store>>;

/// A notification that a receiver delivers.
#[derive(Debug, Clone)]
pub(super) enum Notification {
    Transition(Transition),
    Heartbeat(Heartbeat),
}

impl Notification {
    /// Returns the id that logs name the notification by: the alert id, or `heartbeat`.
    fn id(&self) -> &str {
        match self {
            Notification::Transition(transition) => &transition.alert_id,
            Notification::Heartbeat(_) => "heartbeat",
        }
    }
}

/// One notification in a receiver's queue, with its outbox id when it was committed.
pub(super) struct Queued {
    pub(super) outbox_id: Option<i64>,
    pub(super) notification: Notification,
    /// The receiver that handed this notification over after failing past its
    /// `fallback_after`. Its outbox row records the outcome, and it is not handed on again.
    pub(super) handed_from: Option<ReceiverKind>,
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
    Alertmanager,
    Webhook,
}

impl ReceiverKind {
    /// Returns the name used in logs, metrics and outbox rows: `email`, `otlp`, `file`,
    /// `alertmanager` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverKind::Email => "email",
            ReceiverKind::Otlp => "otlp",
            ReceiverKind::File => "file",
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Webhook => "webhook",
        }
    }
}

impl From<ReceiverName> for ReceiverKind {
    fn from(name: ReceiverName) -> ReceiverKind {
        match name {
            ReceiverName::Email => ReceiverKind::Email,
            ReceiverName::Alertmanager => ReceiverKind::Alertmanager,
            ReceiverName::Webhook => ReceiverKind::Webhook,
        }
    }
}

/// A receiver whose deliveries the notifier retries.
enum RetriedReceiver {
    Email(EmailReceiver),
    Otlp(OtlpLogReceiver),
    File(FileSink),
    Alertmanager(AlertmanagerReceiver),
    Webhook(WebhookReceiver),
}

impl RetriedReceiver {
    async fn deliver(&self, notification: &Notification) -> Result<(), DeliveryError> {
        match (self, notification) {
            (RetriedReceiver::Email(email), Notification::Transition(transition)) => {
                email.deliver(transition).await
            }
            (RetriedReceiver::Email(email), Notification::Heartbeat(heartbeat)) => {
                email.deliver_heartbeat(heartbeat).await
            }
            (RetriedReceiver::Otlp(otlp), Notification::Transition(transition)) => {
                otlp.deliver(transition).await
            }
            // The heartbeat receiver is email, alertmanager or webhook; OTLP gets none.
            (RetriedReceiver::Otlp(_), Notification::Heartbeat(_)) => Ok(()),
            (RetriedReceiver::File(sink), Notification::Transition(transition)) => {
                sink.deliver(transition).await.map(|_stem| ())
            }
            // Validation lets the heartbeat name only email, alertmanager or webhook.
            (RetriedReceiver::File(_), Notification::Heartbeat(_)) => Ok(()),
            (RetriedReceiver::Alertmanager(am), Notification::Transition(transition)) => {
                am.deliver(transition).await
            }
            (RetriedReceiver::Alertmanager(am), Notification::Heartbeat(heartbeat)) => {
                am.deliver_heartbeat(heartbeat).await
            }
            (RetriedReceiver::Webhook(webhook), Notification::Transition(transition)) => {
                webhook.deliver(transition).await
            }
            (RetriedReceiver::Webhook(webhook), Notification::Heartbeat(heartbeat)) => {
                webhook.deliver_heartbeat(heartbeat).await
            }
        }
    }
}

struct ReceiverHandle {
    kind: ReceiverKind,
    queue: mpsc::Sender<Queued>,
    task: JoinHandle<()>,
    stats: Arc<ReceiverStats>,
}

/// A receiver task about to be spawned: its queue, counters and fallback.
struct Planned {
    kind: ReceiverKind,
    receiver: RetriedReceiver,
    fallback: Option<FallbackConfig>,
    queue: mpsc::Sender<Queued>,
    incoming: mpsc::Receiver<Queued>,
    stats: Arc<ReceiverStats>,
}

/// Delivers alert transitions to every configured receiver.
pub struct Notifier {
    receivers: Vec<ReceiverHandle>,
    store: SharedStore,
    heartbeat: Option<JoinHandle<()>>,
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
        let mut retried = Vec::new();
        if let Some(config) = &receivers.email {
            let email = RetriedReceiver::Email(EmailReceiver::new(config, secrets)?);
            retried.push((ReceiverKind::Email, email, config.fallback));
        }
        if let Some(config) = &receivers.alertmanager {
            let am = RetriedReceiver::Alertmanager(AlertmanagerReceiver::new(config)?);
            retried.push((ReceiverKind::Alertmanager, am, config.fallback));
        }
        if let Some(config) = &receivers.webhook {
            let webhook = RetriedReceiver::Webhook(WebhookReceiver::new(config, secrets)?);
            retried.push((ReceiverKind::Webhook, webhook, config.fallback));
        }
        if let Some(folder) = file_sink {
            let sink = FileSink::new(folder, receivers.email.as_ref())?;
            retried.push((ReceiverKind::File, RetriedReceiver::File(sink), None));
        }
        if let Some(config) = &receivers.otlp {
            let otlp = RetriedReceiver::Otlp(OtlpLogReceiver::new(config, location)?);
            retried.push((ReceiverKind::Otlp, otlp, None));
        }

        // Every queue exists before any task starts, so a receiver can hand notifications to
        // its fallback. Tasks hold only weak senders of other queues, so dropping the
        // notifier's senders still closes every queue at shutdown.
        let planned: Vec<Planned> = retried
            .into_iter()
            .map(|(kind, receiver, fallback)| {
                let (queue, incoming) = mpsc::channel::<Queued>(options.queue_capacity.max(1));
                Planned {
                    kind,
                    receiver,
                    fallback,
                    queue,
                    incoming,
                    stats: Arc::new(ReceiverStats::default()),
                }
            })
            .collect();
        let fallbacks: HashMap<ReceiverKind, FallbackTarget> = planned
            .iter()
            .map(|plan| {
                let target = FallbackTarget {
                    kind: plan.kind,
                    queue: plan.queue.downgrade(),
                    stats: plan.stats.clone(),
                };
                (plan.kind, target)
            })
            .collect();

        let store = SharedStore::default();
        let mut handles = Vec::new();
        let mut heartbeat = None;
        for plan in planned {
            let fallback = plan.fallback.and_then(|config| {
                let target = fallbacks.get(&ReceiverKind::from(config.receiver))?.clone();
                Some((FallbackClock::new(config.after), target))
            });
            if let Some(config) = &receivers.heartbeat {
                if ReceiverKind::from(config.receiver) == plan.kind {
                    heartbeat = Some(spawn_heartbeat(
                        plan.queue.downgrade(),
                        plan.stats.clone(),
                        Arc::from(location),
                        config.interval,
                    ));
                }
            }
            handles.push(spawn_retried(plan, fallback, &options, store.clone()));
        }
        Ok(Notifier {
            receivers: handles,
            store,
            heartbeat,
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

    /// Returns the durations of one receiver's requests recorded since the last call, for the
    /// OTLP latency histogram.
    pub fn take_latencies(&self, kind: ReceiverKind) -> Vec<Duration> {
        self.receivers
            .iter()
            .find(|receiver| receiver.kind == kind)
            .map(|receiver| receiver.stats.take_latencies())
            .unwrap_or_default()
    }

    /// Stops accepting transitions and delivers the queued ones until `deadline` has passed.
    /// Tasks still busy then are aborted and their queued notifications counted as failed.
    /// Returns the final counters of every receiver.
    pub async fn shutdown(self, deadline: Duration) -> Vec<(ReceiverKind, ReceiverCounts)> {
        let deadline_at = Instant::now() + deadline;
        if let Some(heartbeat) = self.heartbeat {
            heartbeat.abort();
        }
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
        notification: Notification::Transition(transition),
        handed_from: None,
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

/// The queue of the receiver that another one hands notifications to.
#[derive(Clone)]
struct FallbackTarget {
    kind: ReceiverKind,
    queue: mpsc::WeakSender<Queued>,
    stats: Arc<ReceiverStats>,
}

impl FallbackTarget {
    /// Queues a notification that `from` could not deliver. Returns false when the fallback's
    /// queue is full or closed.
    fn hand_over(&self, from: ReceiverKind, queued: &Queued) -> bool {
        let Some(queue) = self.queue.upgrade() else {
            return false;
        };
        let handed = Queued {
            outbox_id: queued.outbox_id,
            notification: queued.notification.clone(),
            handed_from: Some(from),
        };
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        if queue.try_send(handed).is_ok() {
            return true;
        }
        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
        false
    }
}

/// Records the outcome of one delivery in the outbox, when the notifier has a store and the
/// transition was committed. A notification handed over by another receiver is recorded on
/// that receiver's row. The write runs on the blocking pool because it waits for fsync.
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
    let (status, attempts, mut message) = match outcome {
        RetryOutcome::Delivered { attempts } => (DeliveryStatus::Delivered, *attempts, None),
        RetryOutcome::GaveUp { attempts, error } | RetryOutcome::HandOver { attempts, error } => {
            let status = if error.permanent && queued.handed_from.is_none() {
                DeliveryStatus::Failed
            } else {
                // NOTE: a transient failure that outlasts every attempt stays pending, so it is
                // delivered again at the next start but not earlier. So does a notification
                // handed to a fallback until the fallback delivered it.
                DeliveryStatus::Pending
            };
            (status, *attempts, Some(error.message.clone()))
        }
    };
    let receiver = match queued.handed_from {
        Some(from) => {
            message = Some(match message {
                None => format!("delivered by the fallback receiver {}", kind.as_str()),
                Some(error) => format!("fallback receiver {} failed: {error}", kind.as_str()),
            });
            from.as_str()
        }
        None => kind.as_str(),
    };
    let alert_id = queued.notification.id().to_owned();
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
        alert_id,
        outbox_id = id,
        error = failure,
        "cannot record the delivery in the outbox, it will be delivered again after a restart"
    );
}

/// Spawns the task of one retried receiver. The Alertmanager receiver also posts its firing
/// alerts again every `resend_interval` between notifications.
fn spawn_retried(
    plan: Planned,
    mut fallback: Option<(FallbackClock, FallbackTarget)>,
    options: &NotifierOptions,
    store: SharedStore,
) -> ReceiverHandle {
    let Planned {
        kind,
        receiver,
        queue,
        mut incoming,
        stats,
        ..
    } = plan;
    let task_stats = stats.clone();
    let backoff = options.backoff.clone();
    let task = tokio::spawn(async move {
        let mut resends = match &receiver {
            RetriedReceiver::Alertmanager(am) => {
                let every = am.resend_interval();
                let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Some(ticks)
            }
            _ => None,
        };
        loop {
            let queued = tokio::select! {
                queued = incoming.recv() => match queued {
                    Some(queued) => queued,
                    None => break,
                },
                _ = tick(&mut resends) => {
                    if let RetriedReceiver::Alertmanager(am) = &receiver {
                        resend(am, &task_stats).await;
                    }
                    continue;
                }
            };
            let notification = &queued.notification;
            let attempt = || receiver.deliver(notification);
            // A notification handed over by another receiver is not handed on again.
            let clock = match (&mut fallback, queued.handed_from) {
                (Some((clock, _)), None) => Some(clock),
                _ => None,
            };
            let id = notification.id();
            let outcome = deliver_with_retry(kind, id, &backoff, &task_stats, clock, attempt).await;
            if let (RetryOutcome::HandOver { .. }, Some((_, target))) = (&outcome, &fallback) {
                if !target.hand_over(kind, &queued) {
                    task_stats.add_failed(1);
                    error!(
                        receiver = kind.as_str(),
                        fallback = target.kind.as_str(),
                        alert_id = id,
                        "notification lost, the fallback receiver's queue is full"
                    );
                }
            }
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

/// Waits for the next tick of `ticks`, or forever when there is none.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Posts every firing alert to Alertmanager again. A failure is logged and counted but not
/// retried, because the next resend comes one interval later, well before the alerts expire.
async fn resend(am: &AlertmanagerReceiver, stats: &ReceiverStats) {
    let started = Instant::now();
    let result = am.resend_firing().await;
    match result {
        Ok(0) => {}
        Ok(_) => stats.observe_latency(started.elapsed()),
        Err(error) => {
            stats.observe_latency(started.elapsed());
            stats.add_attempt_error(error.reason);
            warn!(
                receiver = "alertmanager",
                error = %error,
                "resending the firing alerts failed, trying again at the next resend"
            );
        }
    }
}
