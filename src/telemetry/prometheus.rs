//! Prometheus exposition of probe results, skips, rate-limit headers, alert states and receiver
//! counters, served as OpenMetrics text on `/metrics`.
//!
//! Names follow the OpenTelemetry-to-Prometheus mapping of the OTLP instruments in
//! [`super::Metrics`]: dots become underscores, the unit `s` adds `_seconds` and counters end in
//! `_total`. So `http.client.request.duration` is `http_client_request_duration_seconds` and
//! `loftwatch.probe.results` is `loftwatch_probe_results_total`, with the same buckets and
//! labels, and a query means the same in both.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::LATENCY_BUCKETS;
use super::metrics::url_template;
use super::receivers::ReceiverFamilies;
use crate::alert::{AlertState, AlertStatus};
use crate::config::ProbeSpec;
use crate::notify::{ReceiverCounts, ReceiverKind};
use crate::probe::{Outcome, ProbeResult};

/// `Content-Type` of the exposition that [`PrometheusMetrics::encode`] writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the request duration histogram. `http_response_status_code` and `error_type` are
/// left out when absent, as the OTLP attributes are, rather than written as empty strings.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct DurationLabels {
    http_request_method: String,
    server_address: String,
    url_template: String,
    http_response_status_code: Option<u16>,
    error_type: Option<&'static str>,
    loftwatch_probe: String,
    loftwatch_location: String,
}

impl EncodeLabelSet for DurationLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let mut labels: Vec<(&str, String)> = vec![
            ("http_request_method", self.http_request_method.clone()),
            ("server_address", self.server_address.clone()),
            ("url_template", self.url_template.clone()),
        ];
        if let Some(status) = self.http_response_status_code {
            labels.push(("http_response_status_code", status.to_string()));
        }
        if let Some(error_type) = self.error_type {
            labels.push(("error_type", error_type.to_owned()));
        }
        labels.push(("loftwatch_probe", self.loftwatch_probe.clone()));
        labels.push(("loftwatch_location", self.loftwatch_location.clone()));
        EncodeLabelSet::encode(&labels.as_slice(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    loftwatch_probe: String,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    error_type: &'static str,
    loftwatch_probe: String,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: String,
    loftwatch_probe: String,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    alertname: String,
    severity: &'static str,
    loftwatch_probe: String,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: &'static str,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    server_address: String,
    loftwatch_location: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocationLabels {
    loftwatch_location: String,
}

/// State of the circuit breaker in front of one SalesLoft host, exported as
/// `loftwatch_circuit_state`: 0 closed, 1 half-open, 2 open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow normally.
    Closed,
    /// A trial request is allowed to test whether the host recovered.
    HalfOpen,
    /// Requests are skipped until the open period ends.
    Open,
}

impl CircuitState {
    /// Returns the gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

/// Returns the gauge value of an alert state: 0 inactive, 1 pending, 2 firing.
fn alert_state_value(state: AlertState) -> i64 {
    match state {
        AlertState::Inactive => 0,
        AlertState::Pending => 1,
        AlertState::Firing => 2,
    }
}

fn histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The Prometheus registry of one loftwatch instance and the metric families it exposes.
///
/// The circuit-state and token-expiry families stay absent from the exposition until
/// [`PrometheusMetrics::set_circuit_state`] or [`PrometheusMetrics::set_token_expiry_seconds`]
/// gives them a real value, so no placeholder series is ever scraped.
#[derive(Debug)]
pub struct PrometheusMetrics {
    registry: Registry,
    location: String,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    results: Family<ResultLabels, Counter>,
    success: Family<ProbeLabels, Gauge>,
    skipped: Family<SkipLabels, Counter>,
    ratelimit_remaining: Family<ProbeLabels, Gauge>,
    ratelimit_cost: Family<ProbeLabels, Gauge>,
    alert_state: Family<AlertLabels, Gauge>,
    /// Label sets of `alert_state`, to remove those that leave the engine's snapshot.
    alert_labels: Mutex<HashSet<AlertLabels>>,
    notifications_sent: Family<ReceiverLabels, Counter>,
    notifications_failed: Family<ReceiverLabels, Counter>,
    receiver_details: ReceiverFamilies,
    circuit_state: Family<CircuitLabels, Gauge>,
    token_expiry: Family<LocationLabels, Gauge<f64, AtomicU64>>,
}

impl PrometheusMetrics {
    /// Creates the registry with every metric family; `location` labels every series.
    pub fn new(location: &str) -> PrometheusMetrics {
        let mut registry = Registry::default();
        let duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        registry.register_with_unit(
            "http_client_request_duration",
            "Duration of probe requests to SalesLoft, to the last body byte",
            Unit::Seconds,
            duration.clone(),
        );
        let results = Family::default();
        registry.register(
            "loftwatch_probe_results",
            "Probe runs by outcome (error_type is ok on success)",
            results.clone(),
        );
        let success = Family::default();
        registry.register(
            "probe_success",
            "1 when the latest run of the probe succeeded, else 0",
            success.clone(),
        );
        let skipped = Family::default();
        registry.register(
            "loftwatch_probe_skipped",
            "Probe runs skipped, by reason",
            skipped.clone(),
        );
        let ratelimit_remaining = Family::default();
        registry.register(
            "loftwatch_ratelimit_remaining_minute",
            "x-ratelimit-remaining-minute of the latest response to the probe",
            ratelimit_remaining.clone(),
        );
        let ratelimit_cost = Family::default();
        registry.register(
            "loftwatch_ratelimit_endpoint_cost",
            "x-ratelimit-endpoint-cost of the latest response to the probe",
            ratelimit_cost.clone(),
        );
        let alert_state = Family::default();
        registry.register(
            "loftwatch_alert_state",
            "State of each alert instance: 0 inactive, 1 pending, 2 firing",
            alert_state.clone(),
        );
        let notifications_sent = Family::default();
        registry.register(
            "loftwatch_notifications_sent",
            "Notifications delivered, per receiver",
            notifications_sent.clone(),
        );
        let notifications_failed = Family::default();
        registry.register(
            "loftwatch_notifications_failed",
            "Notifications given up after retries, rejections or a full queue, per receiver",
            notifications_failed.clone(),
        );
        let receiver_details = ReceiverFamilies::register(&mut registry);
        let circuit_state = Family::default();
        registry.register(
            "loftwatch_circuit_state",
            "Circuit breaker per SalesLoft host: 0 closed, 1 half-open, 2 open",
            circuit_state.clone(),
        );
        let token_expiry = Family::default();
        registry.register_with_unit(
            "loftwatch_token_expiry_timestamp",
            "Unix time at which the SalesLoft access token expires",
            Unit::Seconds,
            token_expiry.clone(),
        );
        PrometheusMetrics {
            registry,
            location: location.to_owned(),
            duration,
            results,
            success,
            skipped,
            ratelimit_remaining,
            ratelimit_cost,
            alert_state,
            alert_labels: Mutex::new(HashSet::new()),
            notifications_sent,
            notifications_failed,
            receiver_details,
            circuit_state,
            token_expiry,
        }
    }

    fn probe_labels(&self, probe: &str) -> ProbeLabels {
        ProbeLabels {
            loftwatch_probe: probe.to_owned(),
            loftwatch_location: self.location.clone(),
        }
    }

    /// Records one probe result: a duration sample when the outcome has one, one count by
    /// outcome, `probe_success`, and the rate-limit headers when the response carried them.
    pub fn record_result(&self, probe: &ProbeSpec, result: &ProbeResult, server_address: &str) {
        let name = result.probe.to_string();
        if result.outcome.has_latency_sample() {
            let labels = DurationLabels {
                http_request_method: probe.method.clone(),
                server_address: server_address.to_owned(),
                url_template: url_template(&probe.path).to_owned(),
                http_response_status_code: result.status,
                error_type: (result.outcome != Outcome::Ok).then(|| result.outcome.as_str()),
                loftwatch_probe: name.clone(),
                loftwatch_location: self.location.clone(),
            };
            self.duration
                .get_or_create(&labels)
                .observe(result.latency.as_secs_f64());
        }
        let labels = ResultLabels {
            error_type: result.outcome.as_str(),
            loftwatch_probe: name.clone(),
            loftwatch_location: self.location.clone(),
        };
        self.results.get_or_create(&labels).inc();
        let probe_labels = self.probe_labels(&name);
        let success = i64::from(result.outcome == Outcome::Ok);
        self.success.get_or_create(&probe_labels).set(success);
        if let Some(remaining) = result.rate_limit.remaining {
            let gauge = self.ratelimit_remaining.get_or_create(&probe_labels);
            gauge.set(i64::from(remaining));
        }
        if let Some(cost) = result.rate_limit.cost {
            let gauge = self.ratelimit_cost.get_or_create(&probe_labels);
            gauge.set(i64::from(cost));
        }
    }

    /// Counts `count` skipped runs of `probe` for `reason`, such as `in_flight`.
    pub fn record_skip(&self, probe: &str, reason: &str, count: u64) {
        let labels = SkipLabels {
            reason: reason.to_owned(),
            loftwatch_probe: probe.to_owned(),
            loftwatch_location: self.location.clone(),
        };
        self.skipped.get_or_create(&labels).inc_by(count);
    }

    /// Sets `loftwatch_alert_state` from the engine's snapshot of every alert instance and
    /// removes the series of instances no longer in it, such as those of a removed rule.
    pub fn set_alert_states(&self, statuses: &[AlertStatus]) {
        let mut current = HashSet::with_capacity(statuses.len());
        for status in statuses {
            let labels = AlertLabels {
                alertname: status.rule.to_string(),
                severity: status.severity.as_str(),
                loftwatch_probe: status.probe.to_string(),
                loftwatch_location: self.location.clone(),
            };
            let value = alert_state_value(status.state);
            self.alert_state.get_or_create(&labels).set(value);
            current.insert(labels);
        }
        let mut exported = self
            .alert_labels
            .lock()
            .expect("alert label lock is never poisoned");
        for stale in exported.difference(&current) {
            self.alert_state.remove(stale);
        }
        *exported = current;
    }

    /// Sets the counters and the latency histogram of one receiver from the notifier's counts,
    /// which only grow; a smaller value than exported is ignored.
    pub fn set_receiver_counts(&self, kind: ReceiverKind, counts: ReceiverCounts) {
        let labels = ReceiverLabels {
            receiver: kind.as_str(),
            loftwatch_location: self.location.clone(),
        };
        let sent = self.notifications_sent.get_or_create(&labels);
        sent.inc_by(counts.sent.saturating_sub(sent.get()));
        let failed = self.notifications_failed.get_or_create(&labels);
        failed.inc_by(counts.failed.saturating_sub(failed.get()));
        self.receiver_details.set(kind, &counts, &self.location);
    }

    /// Sets the circuit breaker state of one SalesLoft host; the series exists from the first
    /// call on.
    pub fn set_circuit_state(&self, host: &str, state: CircuitState) {
        let labels = CircuitLabels {
            server_address: host.to_owned(),
            loftwatch_location: self.location.clone(),
        };
        self.circuit_state
            .get_or_create(&labels)
            .set(state.gauge_value());
    }

    /// Sets when the current SalesLoft access token expires, as Unix time in seconds; the series
    /// exists from the first call on.
    pub fn set_token_expiry_seconds(&self, unix_seconds: f64) {
        let labels = LocationLabels {
            loftwatch_location: self.location.clone(),
        };
        self.token_expiry.get_or_create(&labels).set(unix_seconds);
    }

    /// Writes the OpenMetrics text exposition of every family that has a series.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::alert::Severity;

    fn status(rule: &str, probe: &str, state: AlertState) -> AlertStatus {
        AlertStatus {
            alert_id: format!("{rule}/{probe}"),
            rule: Arc::from(rule),
            probe: Arc::from(probe),
            severity: Severity::P1,
            state,
            value_text: None,
            since: SystemTime::now(),
        }
    }

    #[test]
    fn alert_states_follow_snapshot() {
        let metrics = PrometheusMetrics::new("test");
        metrics.set_alert_states(&[
            status("API errors", "me", AlertState::Firing),
            status("Auth down", "me", AlertState::Pending),
        ]);
        let text = metrics.encode();
        assert!(text.contains(
            "loftwatch_alert_state{alertname=\"API errors\",severity=\"P1\",\
             loftwatch_probe=\"me\",loftwatch_location=\"test\"} 2"
        ));
        assert!(text.contains("alertname=\"Auth down\""));

        metrics.set_alert_states(&[status("API errors", "me", AlertState::Inactive)]);
        let text = metrics.encode();
        assert!(text.contains("alertname=\"API errors\""));
        assert!(
            !text.contains("alertname=\"Auth down\""),
            "stale series kept"
        );
    }

    #[test]
    fn receiver_counters_never_decrease() {
        let metrics = PrometheusMetrics::new("test");
        let counts = |sent, failed| ReceiverCounts {
            sent,
            failed,
            ..ReceiverCounts::default()
        };
        metrics.set_receiver_counts(ReceiverKind::Email, counts(3, 1));
        metrics.set_receiver_counts(ReceiverKind::Email, counts(2, 1));
        let text = metrics.encode();
        assert!(text.contains(
            "loftwatch_notifications_sent_total{receiver=\"email\",loftwatch_location=\"test\"} 3"
        ));
        assert!(text.contains(
            "loftwatch_notifications_failed_total{receiver=\"email\",loftwatch_location=\"test\"} 1"
        ));
    }

    #[test]
    fn receiver_errors_and_latency_exposed() {
        let metrics = PrometheusMetrics::new("test");
        let mut counts = ReceiverCounts {
            sent: 1,
            attempt_errors: 2,
            ..ReceiverCounts::default()
        };
        counts.errors[3] = 2;
        counts.latency.buckets[0] = 1;
        counts.latency.buckets[5] = 2;
        counts.latency.count = 3;
        counts.latency.sum_micros = 500_000;
        metrics.set_receiver_counts(ReceiverKind::Webhook, counts);
        let text = metrics.encode();
        assert!(text.contains(
            "loftwatch_notification_errors_total{receiver=\"webhook\",reason=\"http_5xx\",\
             loftwatch_location=\"test\"} 2"
        ));
        assert!(
            text.contains(
                "loftwatch_notification_duration_seconds_bucket{le=\"0.25\",receiver=\"webhook\",\
             loftwatch_location=\"test\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains(
            "loftwatch_notification_duration_seconds_count{receiver=\"webhook\",\
             loftwatch_location=\"test\"} 3"
        ));
    }

    #[test]
    fn circuit_and_token_absent_until_set() {
        let metrics = PrometheusMetrics::new("test");
        let text = metrics.encode();
        assert!(!text.contains("loftwatch_circuit_state"));
        assert!(!text.contains("loftwatch_token_expiry"));

        metrics.set_circuit_state("api.example.test", CircuitState::HalfOpen);
        metrics.set_token_expiry_seconds(1_900_000_000.5);
        let text = metrics.encode();
        assert!(text.contains(
            "loftwatch_circuit_state{server_address=\"api.example.test\",\
             loftwatch_location=\"test\"} 1"
        ));
        assert!(text.contains("# UNIT loftwatch_token_expiry_timestamp_seconds seconds"));
        assert!(text.contains(
            "loftwatch_token_expiry_timestamp_seconds{loftwatch_location=\"test\"} 1900000000.5"
        ));
    }
}
