//! `/health`, `/metrics` and the Grafana dashboards end to end: the `loftwatch` binary probes the
//! in-process simulator, and a real Prometheus (the Debian `prometheus` package) scrapes it every
//! second while the simulator responds with 503 and 429. Every PromQL expression of every panel of every
//! file in `dashboards/` must then return data through Prometheus's HTTP API.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loftwatch::config::ServerConfig;
use loftwatch::server::{Server, ServerState};
use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorHandle, SimulatorOptions};
use serde_json::Value;

const TOKEN: &str = "observability-test-token-91c2";

/// A running `loftwatch run` aimed at a simulator, with its HTTP server on `server`.
struct Daemon {
    sim: SimulatorHandle,
    child: Child,
    server: SocketAddr,
    folder: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Daemon {
        let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default())
            .await
            .expect("start the simulator");
        let folder = tempfile::tempdir().expect("temporary folder");
        let server: SocketAddr = format!("127.0.0.1:{}", support::unused_port())
            .parse()
            .unwrap();
        // Nothing listens on this port, so every email delivery fails and is counted.
        let smtp_port = support::unused_port();
        let config = format!(
            r#"
[salesloft]
base_url = "{base_url}"
credential = {{ env = "SALESLOFT_TOKEN" }}
location = "test"
# Every tick probes through 429s, so the 429 panels have a rate to show.
pause_on_429 = false
# The breaker would stop the 5xx that the error panels need; it has tests of its own.
breaker_failures = 1000
# No retries: the status faults cycle 503, 429, and a retry would take every 429.
retry_attempts = 1

[engine]
eval_interval = "200ms"
keep_firing_for = "2s"

[server]
listen = "{server}"
health_freshness = "3s"

[[probe]]
name = "me"
path = "/v2/me.json"
interval = "250ms"
timeout = "1s"

[[probe]]
name = "people"
path = "/v2/people.json?per_page=1"
interval = "250ms"
timeout = "1s"

[[rule]]
name = "API errors"
severity = "P1"
expr = "count(status >= 500) > 1"
window = "5s"
runbook = "Check status.salesloft.com."

[receivers.email]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "loftwatch <loftwatch@example.test>"
to = ["oncall@example.test"]
timeout = "1s"
"#,
            base_url = sim.base_url(),
        );
        let config_path = folder.path().join("loftwatch.toml");
        std::fs::write(&config_path, config).expect("write the configuration");
        let log = std::fs::File::create(folder.path().join("loftwatch.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_loftwatch"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env("SALESLOFT_TOKEN", TOKEN)
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start loftwatch run");
        Daemon {
            sim,
            child,
            server,
            folder,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("loftwatch.log")).unwrap_or_default()
    }

    /// Sends `GET path` to the daemon's server and returns the status code, content type and
    /// body, or `None` while the server is not up.
    async fn get(&self, path: &str) -> Option<(u16, String, String)> {
        let response = reqwest::get(format!("http://{}{path}", self.server))
            .await
            .ok()?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.ok()?;
        Some((status, content_type, body))
    }

    async fn health(&self) -> Option<(u16, Value)> {
        let (status, _, body) = self.get("/health").await?;
        Some((
            status,
            serde_json::from_str(&body).expect("/health returns JSON"),
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus server scraping `targets` every second, with its data in a temporary folder.
struct Prometheus {
    child: Child,
    url: String,
    folder: tempfile::TempDir,
}

impl Prometheus {
    async fn start(targets: &[SocketAddr]) -> Prometheus {
        let folder = tempfile::tempdir().expect("temporary folder");
        let targets: Vec<String> = targets
            .iter()
            .map(|target| format!("\"{target}\""))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: loftwatch\n    static_configs:\n      \
             - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = folder.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = support::unused_port();
        let log = std::fs::File::create(folder.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                folder.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "start prometheus: install the Debian package `prometheus` (scripts/test does)",
            );
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            folder,
        };
        let ready = format!("{}/-/ready", prometheus.url);
        support::wait_until("prometheus ready", Duration::from_secs(30), || async {
            let response = reqwest::get(&ready).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        prometheus
    }

    /// Runs an instant query and returns its result vector.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/query?query={}", self.url, percent_encode(expr));
        let response = reqwest::get(&url).await.expect("query prometheus");
        let body: Value = serde_json::from_str(&response.text().await.expect("body"))
            .expect("prometheus returns JSON");
        assert_eq!(body["status"], "success", "query {expr:?} failed: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// One PromQL expression of a dashboard panel.
struct PanelQuery {
    file: PathBuf,
    panel: String,
    expr: String,
}

/// Reads every target expression of every panel (rows included) of every `dashboards/*.json`.
fn dashboard_queries() -> Vec<PanelQuery> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("read dashboards/")
        .map(|entry| entry.expect("dashboard entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", folder.display());
    let mut queries = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read the dashboard");
        let dashboard: Value = serde_json::from_str(&text).expect("dashboard is JSON");
        let mut panels: Vec<&Value> = Vec::new();
        for panel in dashboard["panels"].as_array().expect("panels array") {
            panels.push(panel);
            panels.extend(panel["panels"].as_array().into_iter().flatten());
        }
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("target has expr");
                queries.push(PanelQuery {
                    file: file.clone(),
                    panel: title.clone(),
                    expr: substitute(expr),
                });
            }
        }
    }
    queries
}

/// Replaces the Grafana variables the dashboards use with what Grafana would send for
/// "All" probes and a 1 s scrape interval.
fn substitute(expr: &str) -> String {
    expr.replace("${probe}", ".*")
        .replace("$probe", ".*")
        .replace("$__rate_interval", "5s")
        .replace("$__interval", "1s")
        .replace("$__range", "1m")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_return_data() {
    let daemon = Daemon::start().await;
    // The daemon exports the circuit state of the host once a probe of it has failed, which
    // the 503s below cause. The token expiry exists only with OAuth, which this configuration
    // does not use, so a second exporter sets it through the API the daemon calls, and
    // Prometheus scrapes it beside the daemon.
    let exporter_state = ServerState::new("test", Duration::from_secs(30));
    let expiry = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(7200);
    exporter_state
        .prometheus()
        .set_token_expiry_seconds(expiry.as_secs_f64());
    let exporter_config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        health_freshness: None,
        token: None,
    };
    let exporter = Server::bind(&exporter_config, None, exporter_state)
        .await
        .expect("bind the second exporter");
    let exporter_address = exporter.local_addr();
    let (_stop_exporter, exporter_shutdown) = tokio::sync::watch::channel(false);
    exporter.spawn(exporter_shutdown);

    support::wait_until("loftwatch /health", Duration::from_secs(30), || async {
        daemon.health().await.filter(|(status, _)| *status == 200)
    })
    .await;
    daemon.sim.set_fault(Fault::new(
        Some("/v2/people.json"),
        FaultEffect::Status(vec![503, 429]),
    ));
    let prometheus = Prometheus::start(&[daemon.server, exporter_address]).await;

    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "only {} queries found", queries.len());
    for query in &queries {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let result = prometheus.query(&query.expr).await;
                if !result.is_empty() {
                    return result;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "panel {:?} of {} returned no data for {:?}\nloftwatch log:\n{}\nprometheus log:\n{}",
            query.panel,
            query.file.display(),
            query.expr,
            daemon.log_text(),
            prometheus.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_probe_results() {
    let daemon = Daemon::start().await;
    let (status, body) =
        support::wait_until("healthy /health", Duration::from_secs(30), || async {
            daemon.health().await.filter(|(status, _)| *status == 200)
        })
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["salesloft"]["connected"], true);
    assert!(body["salesloft"]["latencyMs"].is_u64(), "{body}");

    daemon
        .sim
        .set_fault(Fault::new(None, FaultEffect::Status(vec![503])));
    let (_, body) = support::wait_until("degraded after 503", Duration::from_secs(30), || async {
        daemon.health().await.filter(|(status, _)| *status == 503)
    })
    .await;
    let degraded = serde_json::json!({"status": "degraded", "salesloft": {"connected": false}});
    assert_eq!(body, degraded);

    daemon.sim.clear_faults();
    support::wait_until("healthy after 503", Duration::from_secs(30), || async {
        daemon.health().await.filter(|(status, _)| *status == 200)
    })
    .await;

    daemon.sim.set_fault(Fault::new(None, FaultEffect::Hang));
    let (_, body) = support::wait_until("degraded on hang", Duration::from_secs(30), || async {
        daemon.health().await.filter(|(status, _)| *status == 503)
    })
    .await;
    assert_eq!(body, degraded);
}

/// Splits one exposition line into its metric name and labels; `None` for comments.
fn parse_series(line: &str) -> Option<(String, BTreeMap<String, String>)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, _value) = line.rsplit_once(' ')?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some((series.to_owned(), BTreeMap::new()));
    };
    let labels = labels.strip_suffix('}').expect("label set ends with }");
    let mut map = BTreeMap::new();
    for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once("=\"").expect("label is key=\"value\"");
        map.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
    }
    Some((name.to_owned(), map))
}

fn label_keys(labels: &BTreeMap<String, String>) -> BTreeSet<&str> {
    labels.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_names_and_labels() {
    let daemon = Daemon::start().await;
    daemon.sim.set_fault(Fault::new(
        Some("/v2/people.json"),
        FaultEffect::Status(vec![503]),
    ));
    let (status, content_type, text) =
        support::wait_until("metrics with results", Duration::from_secs(30), || async {
            let (status, content_type, text) = daemon.get("/metrics").await?;
            let ready = text.contains("error_type=\"http_5xx\"")
                && text.contains("error_type=\"ok\"")
                && text.contains("loftwatch_alert_state{");
            ready.then_some((status, content_type, text))
        })
        .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "exposition lacks # EOF");
    assert!(
        !text.contains(TOKEN),
        "the SalesLoft token leaked into /metrics"
    );

    let series: Vec<(String, BTreeMap<String, String>)> =
        text.lines().filter_map(parse_series).collect();
    let named = |name: &str| -> Vec<&BTreeMap<String, String>> {
        series
            .iter()
            .filter(|(series_name, _)| series_name == name)
            .map(|(_, labels)| labels)
            .collect()
    };

    let ok_bucket = named("http_client_request_duration_seconds_bucket")
        .into_iter()
        .find(|labels| labels["loftwatch_probe"] == "me")
        .expect("a latency bucket of the me probe");
    let expected: BTreeSet<&str> = [
        "http_request_method",
        "server_address",
        "url_template",
        "http_response_status_code",
        "loftwatch_probe",
        "loftwatch_location",
        "le",
    ]
    .into();
    assert_eq!(label_keys(ok_bucket), expected);
    assert_eq!(ok_bucket["http_request_method"], "GET");
    assert_eq!(ok_bucket["server_address"], "127.0.0.1");
    assert_eq!(ok_bucket["url_template"], "/v2/me.json");
    assert_eq!(ok_bucket["http_response_status_code"], "200");
    assert_eq!(ok_bucket["loftwatch_location"], "test");

    let failed_bucket = named("http_client_request_duration_seconds_bucket")
        .into_iter()
        .find(|labels| labels["loftwatch_probe"] == "people")
        .expect("a latency bucket of the people probe");
    assert_eq!(failed_bucket["error_type"], "http_5xx");
    assert_eq!(failed_bucket["http_response_status_code"], "503");
    assert_eq!(failed_bucket["url_template"], "/v2/people.json");
    let buckets = named("http_client_request_duration_seconds_bucket")
        .into_iter()
        .filter(|labels| labels["loftwatch_probe"] == "me")
        .count();
    assert_eq!(buckets, loftwatch::telemetry::LATENCY_BUCKETS.len() + 1);

    let results = named("loftwatch_probe_results_total");
    assert!(results.iter().any(|labels| labels["error_type"] == "ok"));
    assert!(
        results
            .iter()
            .any(|labels| labels["error_type"] == "http_5xx")
    );
    let success = named("probe_success");
    assert_eq!(success.len(), 2, "one probe_success per probe");
    assert!(
        success
            .iter()
            .all(|labels| label_keys(labels) == ["loftwatch_location", "loftwatch_probe"].into())
    );
    assert!(!named("loftwatch_ratelimit_remaining_minute").is_empty());
    assert!(!named("loftwatch_ratelimit_endpoint_cost").is_empty());

    let alert = named("loftwatch_alert_state")
        .into_iter()
        .find(|labels| labels["loftwatch_probe"] == "people")
        .expect("alert state of the people probe");
    assert_eq!(alert["alertname"], "API errors");
    assert_eq!(alert["severity"], "P1");
    let receivers = named("loftwatch_notifications_failed_total");
    assert!(receivers.iter().any(|labels| labels["receiver"] == "email"));
    assert!(!named("loftwatch_notifications_sent_total").is_empty());

    assert!(
        !text.contains("loftwatch_circuit_state"),
        "no probe has failed yet, so no breaker has a state"
    );
    assert!(
        !text.contains("loftwatch_token_expiry"),
        "an API key has no expiry"
    );
}
