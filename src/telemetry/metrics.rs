//! OTLP metrics of probe results: the request duration histogram and the result and skip
//! counters.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use tokio::time::Instant;
use tracing::warn;

use super::TelemetryError;
use super::receivers::ReceiverInstruments;
use crate::config::{OtlpConfig, ProbeSpec};
use crate::notify::Notifier;
use crate::probe::{Outcome, ProbeResult};

/// Bucket boundaries of `http.client.request.duration`, in seconds. They are dense around
/// typical API latencies and include the checklist thresholds of 0.3 s (read baseline), 0.5 s
/// (write baseline) and 2 s (high latency), so those counts are exact.
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
    10.0, 20.0, 30.0,
];

/// Shortest time between two warnings about failed metrics exports to one endpoint.
const EXPORT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Rate limit of the failed-export warning: at most one per [`EXPORT_WARNING_EVERY`], with the
/// number of failures that were not logged in between.
#[derive(Debug, Default)]
struct WarningLimit {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl WarningLimit {
    /// Returns `Some(failures not logged since the last warning)` when a warning is due at
    /// `now`, or counts the failure and returns `None`.
    fn failure(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_warning
            .is_none_or(|last| now.saturating_duration_since(last) >= EXPORT_WARNING_EVERY);
        if !due {
            self.suppressed += 1;
            return None;
        }
        self.last_warning = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Wraps the metrics exporter to log failed exports as one WARN per minute. The SDK's own
/// ERROR for every failed export is filtered out in `cli::logging`.
struct WarnedExporter<E> {
    inner: E,
    endpoint: String,
    limit: std::sync::Mutex<WarningLimit>,
}

impl<E: PushMetricExporter> PushMetricExporter for WarnedExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if let Err(error) = &result {
            let due = match self.limit.lock() {
                Ok(mut limit) => limit.failure(Instant::now()),
                Err(_) => Some(0),
            };
            if let Some(suppressed) = due {
                warn!(
                    endpoint = %self.endpoint,
                    error = %error,
                    failures_not_logged = suppressed,
                    "otlp metrics export failed, metrics of this interval are dropped"
                );
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

struct Instruments {
    provider: SdkMeterProvider,
    duration: Histogram<f64>,
    results: Counter<u64>,
    skipped: Counter<u64>,
    resends: Counter<u64>,
    ratelimit_remaining: Gauge<u64>,
    ratelimit_cost: Gauge<u64>,
    circuit_state: Gauge<u64>,
    token_expiry: Gauge<f64>,
    receivers: ReceiverInstruments,
}

/// Builds the OTLP/HTTP exporter and the meter provider with its periodic reader.
fn start_provider(config: &OtlpConfig, location: &str) -> Result<SdkMeterProvider, TelemetryError> {
    let endpoint = format!("{}/v1/metrics", config.endpoint.trim_end_matches('/'));
    let endpoint_for_logs = endpoint.clone();
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .with_timeout(config.timeout)
        .build()
        .map_err(|source| TelemetryError::Exporter { endpoint, source })?;
    let exporter = WarnedExporter {
        inner: exporter,
        endpoint: endpoint_for_logs,
        limit: std::sync::Mutex::new(WarningLimit::default()),
    };
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.export_interval)
        .build();

    let resource = Resource::builder()
        .with_service_name("loftwatch")
        .with_attribute(KeyValue::new("loftwatch.location", location.to_owned()))
        .build();
    Ok(SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(reader)
        .build())
}

impl Instruments {
    fn register(provider: SdkMeterProvider) -> Instruments {
        let meter = provider.meter("loftwatch");
        let duration = meter
            .f64_histogram("http.client.request.duration")
            .with_unit("s")
            .with_description("Duration of probe requests to SalesLoft, to the last body byte")
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        let results = meter
            .u64_counter("loftwatch.probe.results")
            .with_unit("{result}")
            .with_description("Probe runs by outcome")
            .build();
        let skipped = meter
            .u64_counter("loftwatch.probe.skipped")
            .with_unit("{run}")
            .with_description("Probe runs skipped, by reason")
            .build();
        let resends = meter
            .u64_counter("loftwatch.probe.resends")
            .with_unit("{request}")
            .with_description("Requests sent again after a 5xx or a connection error")
            .build();
        let ratelimit_remaining = meter
            .u64_gauge("loftwatch.ratelimit.remaining_minute")
            .with_unit("{cost}")
            .with_description("Team budget left in the minute, from x-ratelimit-remaining-minute")
            .build();
        let ratelimit_cost = meter
            .u64_gauge("loftwatch.ratelimit.endpoint_cost")
            .with_unit("{cost}")
            .with_description("Cost of the probe's request, from x-ratelimit-endpoint-cost")
            .build();
        let circuit_state = meter
            .u64_gauge("loftwatch.circuit.state")
            .with_description("Circuit breaker of a host: 0 closed, 1 half-open, 2 open")
            .build();
        let token_expiry = meter
            .f64_gauge("loftwatch.token.expiry_timestamp")
            .with_unit("s")
            .with_description("Unix time the OAuth access token expires")
            .build();
        let receivers = ReceiverInstruments::register(&meter);
        Instruments {
            provider,
            duration,
            results,
            skipped,
            resends,
            ratelimit_remaining,
            ratelimit_cost,
            circuit_state,
            token_expiry,
            receivers,
        }
    }
}

/// Records probe results as OTLP metrics, or does nothing when OTLP is not configured.
pub struct Metrics {
    instruments: Option<Instruments>,
    location: Arc<str>,
}

/// Returns the probe path without its query string, for `url.template`.
pub(super) fn url_template(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _query)| path)
}

impl Metrics {
    /// Starts the periodic exporter when `otlp` is set. The reader exports every
    /// `export_interval` from its own thread to `<endpoint>/v1/metrics`.
    pub fn new(otlp: Option<&OtlpConfig>, location: &str) -> Result<Metrics, TelemetryError> {
        let location: Arc<str> = Arc::from(location);
        let Some(config) = otlp else {
            return Ok(Metrics {
                instruments: None,
                location,
            });
        };
        let provider = start_provider(config, &location)?;
        let instruments = Instruments::register(provider);
        Ok(Metrics {
            instruments: Some(instruments),
            location,
        })
    }

    /// Returns whether metrics are exported.
    pub fn is_enabled(&self) -> bool {
        self.instruments.is_some()
    }

    /// Records one probe result: a duration point when the outcome has a latency sample, and
    /// one count of `loftwatch.probe.results` in every case.
    pub fn record_result(&self, probe: &ProbeSpec, result: &ProbeResult, server_address: &str) {
        let Some(instruments) = &self.instruments else {
            return;
        };
        let probe_name = KeyValue::new("loftwatch.probe", result.probe.to_string());
        let location = KeyValue::new("loftwatch.location", self.location.to_string());
        if result.outcome.has_latency_sample() {
            let mut attributes = vec![
                KeyValue::new("http.request.method", probe.method.clone()),
                KeyValue::new("server.address", server_address.to_owned()),
                KeyValue::new("url.template", url_template(&probe.path).to_owned()),
                probe_name.clone(),
                location.clone(),
            ];
            if let Some(status) = result.status {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
            if result.outcome != Outcome::Ok {
                attributes.push(KeyValue::new("error.type", result.outcome.as_str()));
            }
            instruments
                .duration
                .record(result.latency.as_secs_f64(), &attributes);
        }
        let attributes = [
            KeyValue::new("error.type", result.outcome.as_str()),
            probe_name,
            location,
        ];
        instruments.results.add(1, &attributes);
        let probe_only = [attributes[1].clone(), attributes[2].clone()];
        if result.attempts > 1 {
            instruments
                .resends
                .add(u64::from(result.attempts - 1), &probe_only);
        }
        if let Some(remaining) = result.rate_limit.remaining {
            instruments
                .ratelimit_remaining
                .record(u64::from(remaining), &probe_only);
        }
        if let Some(cost) = result.rate_limit.cost {
            instruments
                .ratelimit_cost
                .record(u64::from(cost), &probe_only);
        }
    }

    /// Records the state that is not tied to one result: the circuit breaker of each host
    /// (0 closed, 1 half-open, 2 open) and the Unix time the OAuth access token expires.
    pub fn record_state(&self, circuits: &[(String, u64)], token_expiry: Option<f64>) {
        let Some(instruments) = &self.instruments else {
            return;
        };
        let location = KeyValue::new("loftwatch.location", self.location.to_string());
        for (host, state) in circuits {
            let attributes = [
                KeyValue::new("server.address", host.clone()),
                location.clone(),
            ];
            instruments.circuit_state.record(*state, &attributes);
        }
        if let Some(expiry) = token_expiry {
            instruments.token_expiry.record(expiry, &[location]);
        }
    }

    /// Counts `count` skipped probe runs, such as `reason = "rate_budget"` or `"circuit_open"`.
    pub fn record_skip(&self, probe: &str, reason: &str, count: u64) {
        let Some(instruments) = &self.instruments else {
            return;
        };
        let attributes = [
            KeyValue::new("loftwatch.probe", probe.to_owned()),
            KeyValue::new("reason", reason.to_owned()),
            KeyValue::new("loftwatch.location", self.location.to_string()),
        ];
        instruments.skipped.add(count, &attributes);
    }

    /// Adds the receiver counters and request durations of `notifier` since the last call.
    pub fn record_receivers(&self, notifier: &Notifier) {
        if let Some(instruments) = &self.instruments {
            instruments.receivers.record(notifier, &self.location);
        }
    }

    /// Exports what was recorded and stops the reader thread. This blocks the calling thread
    /// until the final export ends (bounded by the exporter timeout), so async code calls it
    /// through `spawn_blocking` or at exit.
    pub fn shutdown(&self) {
        let Some(instruments) = &self.instruments else {
            return;
        };
        if let Err(error) = instruments.provider.shutdown() {
            warn!(error = %error, "otlp metrics shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_template_drops_query() {
        assert_eq!(
            url_template("/v2/people?per_page=1&include_paging_counts=true"),
            "/v2/people"
        );
        assert_eq!(url_template("/v2/me"), "/v2/me");
    }

    #[test]
    fn latency_buckets_increase() {
        assert!(LATENCY_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn export_warning_once_per_minute() {
        let start = Instant::now();
        let mut limit = WarningLimit::default();
        assert_eq!(limit.failure(start), Some(0));
        assert_eq!(limit.failure(start + Duration::from_secs(10)), None);
        assert_eq!(limit.failure(start + Duration::from_secs(59)), None);
        assert_eq!(limit.failure(start + Duration::from_secs(60)), Some(2));
        assert_eq!(limit.failure(start + Duration::from_secs(61)), None);
        assert_eq!(limit.failure(start + Duration::from_secs(125)), Some(1));
    }
}
