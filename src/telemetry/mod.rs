//! Telemetry: probe results exported as OpenTelemetry metrics over OTLP/HTTP, and the same
//! measurements in the Prometheus exposition served on `/metrics`.
//!
//! Instrument names and attributes follow the OpenTelemetry HTTP client semantic conventions,
//! plus `loftwatch.probe` and `loftwatch.location`.

mod metrics;
mod prometheus;
mod receivers;

pub use metrics::{LATENCY_BUCKETS, Metrics};
pub use prometheus::{CircuitState, OPENMETRICS_CONTENT_TYPE, PrometheusMetrics};

/// The metrics exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "cannot set up the otlp metrics exporter for {endpoint:?}: {source}; check otlp.endpoint"
    )]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
}
