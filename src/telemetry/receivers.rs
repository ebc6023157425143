//! Receiver metrics: notifications sent, failed attempts by reason, hand-overs to a fallback
//! and the latency of each request, in the Prometheus exposition and over OTLP.
//!
//! The notifier counts in its own atomics ([`crate::notify::ReceiverCounts`]). These exporters
//! copy its snapshots, so the exposition is as fresh as the daemon's last copy, which it makes
//! after every rule evaluation.

use std::collections::HashMap;
use std::sync::Mutex;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::notify::{
    FailureReason, LatencyCounts, NOTIFICATION_LATENCY_BUCKETS, Notifier, ReceiverCounts,
    ReceiverKind,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: &'static str,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    receiver: &'static str,
    reason: &'static str,
    loftwatch_location: String,
}

/// A histogram exposed from the notifier's latest snapshot rather than observed here.
#[derive(Debug, Default)]
struct SnapshotHistogram(Mutex<LatencyCounts>);

impl TypedMetric for SnapshotHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for SnapshotHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = *self.0.lock().expect("histogram lock is never poisoned");
        // The encoder adds the counts up itself, and f64::MAX is its `+Inf` bound.
        let bounds = NOTIFICATION_LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.buckets).collect();
        let sum = counts.sum_micros as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The Prometheus families of receiver errors, hand-overs and latency.
#[derive(Debug)]
pub(super) struct ReceiverFamilies {
    errors: Family<ReasonLabels, Counter>,
    handed_over: Family<ReceiverLabels, Counter>,
    duration: Family<ReceiverLabels, SnapshotHistogram>,
}

impl ReceiverFamilies {
    /// Registers the families in `registry`.
    pub(super) fn register(registry: &mut Registry) -> ReceiverFamilies {
        let errors = Family::default();
        registry.register(
            "loftwatch_notification_errors",
            "Failed delivery attempts per receiver and reason, retried ones included",
            errors.clone(),
        );
        let handed_over = Family::default();
        registry.register(
            "loftwatch_notifications_handed_over",
            "Notifications handed to the fallback receiver after failing past fallback_after",
            handed_over.clone(),
        );
        let duration = Family::default();
        registry.register_with_unit(
            "loftwatch_notification_duration",
            "Duration of each request or SMTP session to a receiver, failed ones included",
            Unit::Seconds,
            duration.clone(),
        );
        ReceiverFamilies {
            errors,
            handed_over,
            duration,
        }
    }

    /// Copies one receiver's snapshot; counters only grow, so a smaller value is ignored.
    pub(super) fn set(&self, kind: ReceiverKind, counts: &ReceiverCounts, location: &str) {
        for reason in FailureReason::ALL {
            let labels = ReasonLabels {
                receiver: kind.as_str(),
                reason: reason.as_str(),
                loftwatch_location: location.to_owned(),
            };
            let counter = self.errors.get_or_create(&labels);
            counter.inc_by(counts.errors_for(reason).saturating_sub(counter.get()));
        }
        let labels = ReceiverLabels {
            receiver: kind.as_str(),
            loftwatch_location: location.to_owned(),
        };
        let handed_over = self.handed_over.get_or_create(&labels);
        handed_over.inc_by(counts.handed_over.saturating_sub(handed_over.get()));
        let histogram = self.duration.get_or_create(&labels);
        *histogram
            .0
            .lock()
            .expect("histogram lock is never poisoned") = counts.latency;
    }
}

/// The OTLP instruments of the receivers, with the totals already exported so that each copy
/// adds only the increase.
pub(super) struct ReceiverInstruments {
    sent: OtelCounter<u64>,
    failed: OtelCounter<u64>,
    errors: OtelCounter<u64>,
    duration: OtelHistogram<f64>,
    exported: Mutex<HashMap<(ReceiverKind, &'static str), u64>>,
}

impl ReceiverInstruments {
    /// Creates the instruments on `meter`.
    pub(super) fn register(meter: &Meter) -> ReceiverInstruments {
        let sent = meter
            .u64_counter("loftwatch.notifications.sent")
            .with_unit("{notification}")
            .with_description("Notifications delivered, per receiver")
            .build();
        let failed = meter
            .u64_counter("loftwatch.notifications.failed")
            .with_unit("{notification}")
            .with_description("Notifications given up, per receiver")
            .build();
        let errors = meter
            .u64_counter("loftwatch.notification.errors")
            .with_unit("{attempt}")
            .with_description("Failed delivery attempts per receiver and reason")
            .build();
        let duration = meter
            .f64_histogram("loftwatch.notification.duration")
            .with_unit("s")
            .with_description("Duration of each request or SMTP session to a receiver")
            .with_boundaries(NOTIFICATION_LATENCY_BUCKETS.to_vec())
            .build();
        ReceiverInstruments {
            sent,
            failed,
            errors,
            duration,
            exported: Mutex::new(HashMap::new()),
        }
    }

    /// Adds what every receiver of `notifier` counted since the last call, and records the
    /// request durations it kept for OTLP.
    pub(super) fn record(&self, notifier: &Notifier, location: &str) {
        let mut exported = self.exported.lock().expect("export lock is never poisoned");
        for kind in notifier.receiver_kinds() {
            let Some(counts) = notifier.counts(kind) else {
                continue;
            };
            let receiver = KeyValue::new("loftwatch.receiver", kind.as_str());
            let place = KeyValue::new("loftwatch.location", location.to_owned());
            let mut increase = |name: &'static str, total: u64| {
                let previous = exported.insert((kind, name), total).unwrap_or(0);
                total.saturating_sub(previous)
            };
            let attributes = [receiver.clone(), place.clone()];
            self.sent.add(increase("sent", counts.sent), &attributes);
            self.failed
                .add(increase("failed", counts.failed), &attributes);
            for reason in FailureReason::ALL {
                let added = increase(reason.as_str(), counts.errors_for(reason));
                if added > 0 {
                    let reason = KeyValue::new("error.type", reason.as_str());
                    let attributes = [receiver.clone(), reason, place.clone()];
                    self.errors.add(added, &attributes);
                }
            }
            for latency in notifier.take_latencies(kind) {
                self.duration.record(latency.as_secs_f64(), &attributes);
            }
        }
    }
}
