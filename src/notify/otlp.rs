//! The OTLP receiver: one log record per transition, exported over OTLP/HTTP with protobuf.
//!
//! Records go through the SDK's batch processor, which exports on its own thread, so a dead
//! or black-holed collector never blocks the notifier. The exporter retries within the
//! configured timeout and a counting wrapper records what was exported or lost.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchConfigBuilder, BatchLogProcessor, LogBatch, LogExporter, SdkLogger, SdkLoggerProvider,
};
use tracing::warn;

use super::NotifyError;
use super::render::{AlertLogRecord, AttributeValue, log_severity};
use super::retry::Backoff;
use super::stats::ReceiverStats;
use crate::alert::Transition;
use crate::config::OtlpConfig;

/// How long the batch processor waits to collect records before an export. Alerts should
/// leave quickly, so this is shorter than the SDK's default of one second.
const BATCH_DELAY: Duration = Duration::from_millis(200);

/// Emits transitions as OTLP log records.
pub struct OtlpLogReceiver {
    provider: SdkLoggerProvider,
    logger: SdkLogger,
}

/// Wraps the OTLP exporter to count exported and lost records.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    stats: Arc<ReceiverStats>,
    endpoint: String,
}

impl<E: LogExporter> LogExporter for CountingExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let records = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.stats.add_sent(records),
            Err(error) => {
                self.stats.add_attempt_error(super::FailureReason::Other);
                self.stats.add_failed(records);
                warn!(
                    receiver = "otlp",
                    endpoint = %self.endpoint,
                    records,
                    error = %error,
                    "otlp log export failed, records dropped"
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Returns the base endpoint with `suffix` appended, without a doubled slash.
pub(crate) fn signal_endpoint(base: &str, suffix: &str) -> String {
    format!("{}{suffix}", base.trim_end_matches('/'))
}

/// Converts the notifier's backoff into the exporter's retry policy. The exporter also stops
/// retrying when its timeout runs out.
pub(crate) fn retry_policy(backoff: &Backoff) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(backoff.max_attempts.saturating_sub(1) as usize)
        .with_initial_delay(backoff.initial)
        .with_max_delay(backoff.max)
}

impl OtlpLogReceiver {
    /// Builds the exporter and the logger provider. The resource names the service
    /// `loftwatch` and carries the `loftwatch.location` attribute.
    pub(crate) fn new(
        config: &OtlpConfig,
        location: &str,
        backoff: &Backoff,
        stats: Arc<ReceiverStats>,
    ) -> Result<OtlpLogReceiver, NotifyError> {
        let endpoint = signal_endpoint(&config.endpoint, "/v1/logs");
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(config.timeout)
            .with_retry_policy(retry_policy(backoff))
            .build()
            .map_err(|source| NotifyError::OtlpExporter {
                endpoint: endpoint.clone(),
                source,
            })?;
        let exporter = CountingExporter {
            inner: exporter,
            stats,
            endpoint,
        };
        let processor = BatchLogProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(BATCH_DELAY)
                    .build(),
            )
            .build();
        let resource = Resource::builder()
            .with_service_name("loftwatch")
            .with_attribute(KeyValue::new("loftwatch.location", location.to_owned()))
            .build();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(processor)
            .build();
        let logger = provider.logger("loftwatch.notify");
        Ok(OtlpLogReceiver { provider, logger })
    }

    /// Hands the log record of a transition to the batch processor. This never waits for the
    /// network. The processor drops records when its queue is full (2048 records, the default
    /// of opentelemetry_sdk 0.33).
    pub fn emit(&self, transition: &Transition) {
        let content = AlertLogRecord::from_transition(transition);
        let (severity, severity_text) = log_severity(transition);
        let mut record = self.logger.create_log_record();
        record.set_event_name("alert.transition");
        record.set_timestamp(transition.at);
        record.set_observed_timestamp(SystemTime::now());
        record.set_severity_number(severity);
        record.set_severity_text(severity_text);
        record.set_body(AnyValue::from(content.body));
        for (key, value) in content.attributes {
            let value = match value {
                AttributeValue::Text(text) => AnyValue::from(text),
                AttributeValue::Number(number) => AnyValue::from(number),
            };
            record.add_attribute(key, value);
        }
        self.logger.emit(record);
    }

    /// Exports what is queued and stops the processor thread. This blocks the calling thread
    /// for up to `timeout`, so async code calls it through `spawn_blocking`.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(error) = self.provider.shutdown_with_timeout(timeout) {
            warn!(receiver = "otlp", error = %error, "otlp logger shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_endpoint_appends_path() {
        assert_eq!(
            signal_endpoint("http://127.0.0.1:4318", "/v1/logs"),
            "http://127.0.0.1:4318/v1/logs"
        );
        assert_eq!(
            signal_endpoint("http://127.0.0.1:4318/", "/v1/logs"),
            "http://127.0.0.1:4318/v1/logs"
        );
    }
}
