//! The heartbeat: a periodic "loftwatch is alive" notification, so that a receiver-side
//! dead-man's switch notices a loftwatch that stopped or lost its receivers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use tokio::sync::mpsc::WeakSender;
use tokio::task::JoinHandle;

use super::NotifyError;
use super::notifier::{Notification, Queued};
use super::render::format_utc;
use super::stats::ReceiverStats;

/// `alertname` of the heartbeat alert sent to Alertmanager and webhooks.
pub const HEARTBEAT_NAME: &str = "LoftwatchHeartbeat";

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Location label of this loftwatch instance.
    pub location: Arc<str>,
    /// Number of this heartbeat since start, from 1.
    pub sequence: u64,
    /// Wall-clock time the heartbeat was sent.
    pub at: SystemTime,
    /// Wall-clock time the notifier started, the `startsAt` of the heartbeat alert.
    pub started: SystemTime,
    /// Time until the next heartbeat.
    pub interval: Duration,
}

impl Heartbeat {
    /// Builds the heartbeat email: `[heartbeat] loftwatch in eu-west is alive`.
    pub(super) fn render_email(
        &self,
        from: &Mailbox,
        to: &[Mailbox],
    ) -> Result<Message, NotifyError> {
        let subject = format!("[heartbeat] loftwatch in {} is alive", self.location);
        let body = format!(
            "loftwatch in {} is running and can send notifications.\n\n\
             Heartbeat:  {}\nTime:       {}\nRunning since: {}\nNext in:    {}\n\n\
             A missing heartbeat means loftwatch stopped or cannot reach this receiver.\n",
            self.location,
            self.sequence,
            format_utc(self.at),
            format_utc(self.started),
            humantime::format_duration(self.interval),
        );
        let mut builder = Message::builder()
            .from(from.clone())
            .subject(subject)
            .date(self.at)
            .header(ContentType::TEXT_PLAIN);
        for mailbox in to {
            builder = builder.to(mailbox.clone());
        }
        builder
            .body(body)
            .map_err(|source| NotifyError::RenderEmail {
                alert_id: HEARTBEAT_NAME.to_owned(),
                source,
            })
    }
}

/// Queues a heartbeat for one receiver every `interval`, the first one interval after start.
/// A heartbeat is not retried beyond the receiver's backoff and not kept in the outbox, because
/// the next one replaces it. The task ends when the receiver's queue closes.
pub(super) fn spawn_heartbeat(
    queue: WeakSender<Queued>,
    stats: Arc<ReceiverStats>,
    location: Arc<str>,
    interval: Duration,
) -> JoinHandle<()> {
    let started = SystemTime::now();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0;
        loop {
            ticks.tick().await;
            let Some(queue) = queue.upgrade() else {
                return;
            };
            sequence += 1;
            let heartbeat = Heartbeat {
                location: location.clone(),
                sequence,
                at: SystemTime::now(),
                started,
                interval,
            };
            let queued = Queued {
                outbox_id: None,
                notification: Notification::Heartbeat(heartbeat),
                handed_from: None,
            };
            stats.pending.fetch_add(1, Ordering::Relaxed);
            if queue.try_send(queued).is_err() {
                stats.pending.fetch_sub(1, Ordering::Relaxed);
                stats.add_failed(1);
                tracing::error!(sequence, "heartbeat dropped, the receiver's queue is full");
            }
        }
    })
}
