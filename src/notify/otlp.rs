//! The OTLP receiver: one log record per transition, exported over OTLP/HTTP with protobuf.
//!
//! Each record is exported on its own, so the notifier retries it with backoff and records the
//! outcome in the outbox like an email. The exporter uses a blocking HTTP client, so exports run
//! on a dedicated thread and a dead or black-holed collector never blocks a tokio worker.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use tokio::sync::oneshot;

use super::render::{AlertLogRecord, AttributeValue, log_severity};
use super::{DeliveryError, NotifyError};
use crate::alert::Transition;
use crate::config::OtlpConfig;

/// Name of the instrumentation scope of the alert log records.
const SCOPE: &str = "loftwatch.notify";

/// One export for the exporter thread, with the channel for its result.
struct ExportJob {
    record: SdkLogRecord,
    reply: oneshot::Sender<OTelSdkResult>,
}

/// Exports transitions as OTLP log records, one attempt per [`OtlpLogReceiver::deliver`].
pub struct OtlpLogReceiver {
    /// Creates the log records; it has no processor, so nothing is exported through it.
    logger: SdkLogger,
    jobs: std_mpsc::Sender<ExportJob>,
    endpoint: String,
}

/// Returns the base endpoint with `suffix` appended, without a doubled slash.
pub(crate) fn signal_endpoint(base: &str, suffix: &str) -> String {
    format!("{}{suffix}", base.trim_end_matches('/'))
}

impl OtlpLogReceiver {
    /// Builds the exporter and starts its thread. The resource names the service `loftwatch`
    /// and carries the `loftwatch.location` attribute. The exporter itself does not retry:
    /// the notifier does, with its own backoff.
    pub(crate) fn new(config: &OtlpConfig, location: &str) -> Result<OtlpLogReceiver, NotifyError> {
        let endpoint = signal_endpoint(&config.endpoint, "/v1/logs");
        let mut exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(config.timeout)
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|source| NotifyError::OtlpExporter {
                endpoint: endpoint.clone(),
                source,
            })?;
        let resource = Resource::builder()
            .with_service_name("loftwatch")
            .with_attribute(KeyValue::new("loftwatch.location", location.to_owned()))
            .build();
        exporter.set_resource(&resource);
        let provider = SdkLoggerProvider::builder().with_resource(resource).build();
        let logger = provider.logger(SCOPE);

        let (jobs, incoming) = std_mpsc::channel::<ExportJob>();
        let thread = std::thread::Builder::new()
            .name("otlp-log-export".to_owned())
            .spawn(move || export_jobs(&exporter, &incoming));
        if let Err(source) = thread {
            return Err(NotifyError::OtlpThread { source });
        }
        Ok(OtlpLogReceiver {
            logger,
            jobs,
            endpoint,
        })
    }

    /// Exports the log record of a transition once and waits for the collector's reply, at
    /// most the configured `otlp.timeout`. Every failure is transient, so the notifier retries.
    pub async fn deliver(&self, transition: &Transition) -> Result<(), DeliveryError> {
        let (reply, result) = oneshot::channel();
        let job = ExportJob {
            record: self.record(transition),
            reply,
        };
        let failed = |reason: String| {
            DeliveryError::transient(format!(
                "otlp log export to {} failed: {reason}",
                self.endpoint
            ))
        };
        if self.jobs.send(job).is_err() {
            return Err(failed("the exporter thread stopped".to_owned()));
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(failed(error.to_string())),
            Err(_) => Err(failed("the exporter thread stopped".to_owned())),
        }
    }

    fn record(&self, transition: &Transition) -> SdkLogRecord {
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
        record
    }
}

/// Runs on the exporter thread until every sender is gone. The exporter's blocking HTTP client
/// must neither run nor be dropped on a tokio worker, so it lives and dies on this thread.
fn export_jobs<E: LogExporter>(exporter: &E, incoming: &std_mpsc::Receiver<ExportJob>) {
    let scope = InstrumentationScope::builder(SCOPE).build();
    for job in incoming {
        let records = [(&job.record, &scope)];
        let result = block_on(exporter.export(LogBatch::new(&records)));
        // The notifier may have given up on this job at shutdown; nobody waits then.
        let _ = job.reply.send(result);
    }
}

/// Wakes the exporter thread when the export future can make progress.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` to completion on the current thread, parking between polls. The blocking
/// exporter finishes within its first poll; the loop covers exporters that do not.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
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
