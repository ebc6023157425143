//! An OTLP/HTTP receiver for tests: accepts protobuf exports on `/v1/metrics` and `/v1/logs`,
//! decodes and stores them, and replies 200 with an empty export response. Also a black hole
//! that accepts connections and never replies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, metric,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wait_until;

/// Largest request the receiver reads.
const MAX_REQUEST: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Received {
    logs: Vec<ExportLogsServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    rejected: Vec<String>,
}

/// An OTLP/HTTP receiver on 127.0.0.1; it stops when dropped.
pub struct OtlpReceiver {
    port: u16,
    received: Arc<Mutex<Received>>,
    task: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Binds a free port on 127.0.0.1 and serves until dropped.
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _peer)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, shared.clone()));
            }
        });
        OtlpReceiver {
            port,
            received,
            task,
        }
    }

    /// Returns the base endpoint to configure: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns every log record received so far, in arrival order.
    pub fn log_records(&self) -> Vec<LogRecord> {
        let received = self.received.lock().unwrap();
        let resource_logs = received
            .logs
            .iter()
            .flat_map(|request| &request.resource_logs);
        let scope_logs = resource_logs.flat_map(|resource| &resource.scope_logs);
        scope_logs
            .flat_map(|scope| scope.log_records.clone())
            .collect()
    }

    /// Returns every metric received so far, from every export, in arrival order.
    pub fn metrics(&self) -> Vec<Metric> {
        let received = self.received.lock().unwrap();
        let resource_metrics = received
            .metrics
            .iter()
            .flat_map(|request| &request.resource_metrics);
        let scope_metrics = resource_metrics.flat_map(|resource| &resource.scope_metrics);
        scope_metrics
            .flat_map(|scope| scope.metrics.clone())
            .collect()
    }

    /// Returns every histogram point of the metric `name` received so far.
    pub fn histogram_points(&self, name: &str) -> Vec<HistogramDataPoint> {
        let metrics = self
            .metrics()
            .into_iter()
            .filter(|metric| metric.name == name);
        metrics
            .flat_map(|metric| match metric.data {
                Some(metric::Data::Histogram(histogram)) => histogram.data_points,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Returns every sum (counter) point of the metric `name` received so far.
    pub fn sum_points(&self, name: &str) -> Vec<NumberDataPoint> {
        let metrics = self
            .metrics()
            .into_iter()
            .filter(|metric| metric.name == name);
        metrics
            .flat_map(|metric| match metric.data {
                Some(metric::Data::Sum(sum)) => sum.data_points,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Returns the requests the receiver could not handle (wrong path, undecodable body), described.
    pub fn rejected(&self) -> Vec<String> {
        self.received.lock().unwrap().rejected.clone()
    }

    /// Waits until at least `count` log records arrived and returns them.
    pub async fn wait_for_log_records(&self, count: usize, timeout: Duration) -> Vec<LogRecord> {
        wait_until(&format!("{count} otlp log records"), timeout, || async {
            let records = self.log_records();
            (records.len() >= count).then_some(records)
        })
        .await
    }

    /// Waits until histogram points of `name` match `accept` and returns them.
    pub async fn wait_for_histogram<F>(
        &self,
        name: &str,
        timeout: Duration,
        accept: F,
    ) -> Vec<HistogramDataPoint>
    where
        F: Fn(&[HistogramDataPoint]) -> bool,
    {
        wait_until(&format!("histogram points of {name}"), timeout, || async {
            let points = self.histogram_points(name);
            accept(&points).then_some(points)
        })
        .await
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Returns the attributes as a map from key to a display string of the value.
pub fn attribute_map(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|pair| (pair.key.clone(), any_value_text(pair.value.as_ref())))
        .collect()
}

/// Formats an OTLP value: strings as they are, numbers and booleans with `to_string`.
pub fn any_value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

async fn serve_connection(mut stream: TcpStream, received: Arc<Mutex<Received>>) {
    let mut buffer = Vec::new();
    loop {
        let Some((path, body, consumed)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        buffer.drain(..consumed);
        let (status, response) = handle(&path, &body, &received);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            response.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&response).await.is_err()
        {
            return;
        }
    }
}

fn handle(path: &str, body: &[u8], received: &Mutex<Received>) -> (&'static str, Vec<u8>) {
    let mut received = received.lock().unwrap();
    match path {
        "/v1/logs" => match ExportLogsServiceRequest::decode(body) {
            Ok(request) => {
                received.logs.push(request);
                (
                    "200 OK",
                    ExportLogsServiceResponse::default().encode_to_vec(),
                )
            }
            Err(error) => {
                received.rejected.push(format!("{path}: {error}"));
                ("400 Bad Request", Vec::new())
            }
        },
        "/v1/metrics" => match ExportMetricsServiceRequest::decode(body) {
            Ok(request) => {
                received.metrics.push(request);
                (
                    "200 OK",
                    ExportMetricsServiceResponse::default().encode_to_vec(),
                )
            }
            Err(error) => {
                received.rejected.push(format!("{path}: {error}"));
                ("400 Bad Request", Vec::new())
            }
        },
        other => {
            received.rejected.push(format!("unknown path {other}"));
            ("404 Not Found", Vec::new())
        }
    }
}

/// Reads one request with a `content-length` body. Returns the path, the body and how many
/// buffered bytes the request used, or `None` when the connection ends or is malformed.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Option<(String, Vec<u8>, usize)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head_length) = request.parse(buffer).ok()? {
            let path = request.path?.to_owned();
            let content_length = request
                .headers
                .iter()
                .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                .and_then(|header| std::str::from_utf8(header.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            if content_length > MAX_REQUEST {
                return None;
            }
            let total = head_length + content_length;
            while buffer.len() < total {
                read_more(stream, buffer).await?;
            }
            return Some((path, buffer[head_length..total].to_vec(), total));
        }
        if buffer.len() > MAX_REQUEST {
            return None;
        }
        read_more(stream, buffer).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    let read = stream.read(&mut chunk).await.ok()?;
    if read == 0 {
        return None;
    }
    buffer.extend_from_slice(&chunk[..read]);
    Some(())
}

/// A listener on 127.0.0.1 that accepts connections, keeps them open and never replies, like
/// a collector behind a firewall that drops packets after the handshake.
pub struct BlackHole {
    port: u16,
    task: JoinHandle<()>,
}

impl BlackHole {
    /// Binds a free port and starts accepting.
    pub async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _peer)) = listener.accept().await {
                held.push(stream);
            }
        });
        BlackHole { port, task }
    }

    /// Returns the base endpoint: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns the port, for receivers that take a host and port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
