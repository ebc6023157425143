//! The HTTP server of loftwatch:
//!
//! - `GET /health`: `200 {"status":"healthy","salesloft":{"connected":true,"latencyMs":N}}` or
//!   `503 {"status":"degraded","salesloft":{"connected":false}}`, judged from the latest probe
//!   results (see [`health`] for what counts as connected and fresh);
//! - `GET /metrics`: the Prometheus exposition of [`PrometheusMetrics`] in OpenMetrics text;
//! - `POST /-/reload`: sends a configuration reload request to the daemon, when the daemon
//!   passed a reload channel to [`ServerState::with_reload`];
//! - `GET /`: the built-in dashboard, a page with its script and style embedded in the binary
//!   (see [`dashboard`]);
//! - `GET /api/v1/status`, `history`, `alerts`, `notifications`: the JSON the dashboard reads
//!   (see [`api`]).
//! - `GET /api/v1/silences`, `POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`: the
//!   silences (see [`silences`]).
//!
//! The server binds `127.0.0.1:9898` unless `server.listen` sets another address. Mutating endpoints
//! need `Authorization: Bearer <server.token>` when a token is configured. Without a token they
//! are served only when the server is bound to a loopback address, and answer 403 otherwise.
//! No endpoint shows a secret.

pub mod api;
pub mod dashboard;
pub mod health;
pub mod history;
pub mod silences;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::alert::{AlertStatus, Engine};
use crate::config::{ProbeSpec, RuleSpec, ServerConfig};
use crate::daemon::ReloadRequest;
use crate::notify::Notifier;
use crate::probe::ProbeResult;
use crate::route::SilenceBook;
use crate::store::Store;
use crate::telemetry::{OPENMETRICS_CONTENT_TYPE, PrometheusMetrics};
pub use health::{HealthReport, HealthTracker, default_health_freshness, is_connected};
pub use history::{LatestResult, ProbeHistory};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}; change server.listen or free the port")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Access rule of mutating endpoints such as `POST /-/reload`.
#[derive(Clone)]
enum MutationAccess {
    /// Callers must send this bearer token.
    Token(Arc<str>),
    /// No token is configured and the server is bound to loopback: local callers may mutate.
    Loopback,
    /// No token is configured and the server is reachable from other hosts: mutation is off.
    Disabled,
}

/// Shared state of the server: Prometheus metrics, probe health, probe history and alert
/// states, written by the daemon.
#[derive(Clone)]
pub struct ServerState {
    prometheus: Arc<PrometheusMetrics>,
    health: Arc<HealthTracker>,
    reload: Option<mpsc::Sender<ReloadRequest>>,
    history: Arc<ProbeHistory>,
    /// The database of rollups and notifications, once the daemon opened it.
    store: Arc<OnceLock<Store>>,
    alerts: Arc<Mutex<Vec<AlertStatus>>>,
    /// Runbook of each rule, by rule name.
    runbooks: Arc<Mutex<HashMap<String, String>>>,
    /// The silences, set by the daemon once the store is open.
    silences: Arc<OnceLock<SilenceBook>>,
}

impl ServerState {
    /// Creates the state of one loftwatch instance; `location` labels every metric series.
    pub fn new(location: &str, health_freshness: std::time::Duration) -> ServerState {
        ServerState {
            prometheus: Arc::new(PrometheusMetrics::new(location)),
            health: Arc::new(HealthTracker::new(health_freshness)),
            reload: None,
            history: Arc::new(ProbeHistory::new()),
            store: Arc::new(OnceLock::new()),
            alerts: Arc::new(Mutex::new(Vec::new())),
            runbooks: Arc::new(Mutex::new(HashMap::new())),
            silences: Arc::default(),
        }
    }

    /// Serves the silence endpoints from `book`. Only the first book set is used.
    pub fn set_silences(&self, book: SilenceBook) {
        if self.silences.set(book).is_err() {
            warn!("the http server already has silences, keeping the first ones");
        }
    }

    /// Returns the probe history that the daemon writes to the store once a minute.
    pub fn history(&self) -> &Arc<ProbeHistory> {
        &self.history
    }

    /// Lets the history and notification endpoints read `store`. Only the first store
    /// attached is used.
    pub fn attach_store(&self, store: Store) {
        let _ = self.store.set(store);
    }

    /// Sets the runbook shown with each alert from the rules; called at start and reload.
    pub fn set_rules(&self, rules: &[RuleSpec]) {
        let runbooks = rules
            .iter()
            .map(|rule| (rule.name.to_string(), rule.runbook.to_string()))
            .collect();
        *lock(&self.runbooks) = runbooks;
    }

    fn alert_snapshot(&self) -> Vec<AlertStatus> {
        lock(&self.alerts).clone()
    }

    fn runbooks(&self) -> HashMap<String, String> {
        lock(&self.runbooks).clone()
    }

    /// Serves `POST /-/reload`, which sends a request on `reload` and returns the daemon's
    /// reply: 200 and what changed, or 400 and why the new configuration was rejected.
    pub fn with_reload(mut self, reload: mpsc::Sender<ReloadRequest>) -> ServerState {
        self.reload = Some(reload);
        self
    }

    /// Returns the Prometheus metrics, for the circuit breaker and the OAuth refresher to set
    /// their state on.
    pub fn prometheus(&self) -> &Arc<PrometheusMetrics> {
        &self.prometheus
    }

    /// Returns the health tracker.
    pub fn health(&self) -> &Arc<HealthTracker> {
        &self.health
    }

    /// Records a probe result for `/metrics` and `/health`.
    pub fn record_result(&self, spec: &ProbeSpec, result: &ProbeResult, server_address: &str) {
        self.prometheus.record_result(spec, result, server_address);
        self.health.record(result);
        self.history.record(result);
    }

    /// Counts skipped runs of a probe.
    pub fn record_skip(&self, probe: &str, reason: &str, count: u64) {
        self.prometheus.record_skip(probe, reason, count);
    }

    /// Copies the alert states of the engine and the receiver counters of the notifier into
    /// the metrics; the daemon calls it after each evaluation.
    pub fn set_engine_and_receivers(&self, engine: &Engine, notifier: &Notifier) {
        let snapshot = engine.snapshot();
        self.prometheus.set_alert_states(&snapshot);
        *lock(&self.alerts) = snapshot;
        for kind in notifier.receiver_kinds() {
            if let Some(counts) = notifier.counts(kind) {
                self.prometheus.set_receiver_counts(kind, counts);
            }
        }
    }
}

/// Locks a mutex whose holders never leave a value half written, so a poisoned lock is safe.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
struct AppState {
    state: ServerState,
    access: MutationAccess,
}

/// A bound server, ready to serve.
pub struct Server {
    listener: TcpListener,
    router: Router,
}

impl Server {
    /// Binds `config.listen`. `token` is the loaded `server.token`, when configured.
    pub async fn bind(
        config: &ServerConfig,
        token: Option<String>,
        state: ServerState,
    ) -> Result<Server, ServerError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    address: config.listen,
                    source,
                })?;
        let access = mutation_access(config.listen, token);
        Ok(Server {
            listener,
            router: router(AppState { state, access }),
        })
    }

    /// Returns the address the server listens on, with the port chosen when it was 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has a local address")
    }

    /// Serves on a new task until `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let address = self.local_addr();
        info!(%address, "http server listening");
        tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            let served = axum::serve(self.listener, self.router)
                .with_graceful_shutdown(stop)
                .await;
            if let Err(error) = served {
                warn!(%address, %error, "http server stopped with an error");
            }
        })
    }
}

fn mutation_access(listen: SocketAddr, token: Option<String>) -> MutationAccess {
    match token {
        Some(token) => MutationAccess::Token(Arc::from(token)),
        None if listen.ip().is_loopback() => MutationAccess::Loopback,
        None => MutationAccess::Disabled,
    }
}

fn router(app: AppState) -> Router {
    Router::new()
        .route("/health", get(health_handler))
        .route("/metrics", get(metrics_handler))
        .route("/-/reload", post(reload_handler))
        .route("/", get(dashboard::index))
        .route("/assets/dashboard.js", get(dashboard::script))
        .route("/assets/dashboard.css", get(dashboard::style))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/history", get(api::history))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/notifications", get(api::notifications))
        .route(
            "/api/v1/silences",
            get(silences::list_handler).post(silences::create_handler),
        )
        .route("/api/v1/silences/{id}", delete(silences::expire_handler))
        .with_state(app)
}

async fn health_handler(State(app): State<AppState>) -> Response {
    let report = app.state.health.report(Instant::now());
    let (status, body) = health_body(report);
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Returns the status code and JSON body of `/health` for a report.
pub fn health_body(report: HealthReport) -> (StatusCode, serde_json::Value) {
    match report.latency {
        Some(latency) if report.connected => {
            let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
            let body = json!({
                "status": "healthy",
                "salesloft": { "connected": true, "latencyMs": latency_ms },
            });
            (StatusCode::OK, body)
        }
        _ => {
            let body = json!({
                "status": "degraded",
                "salesloft": { "connected": false },
            });
            (StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

async fn metrics_handler(State(app): State<AppState>) -> Response {
    let text = app.state.prometheus.encode();
    let content_type = HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE);
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

async fn reload_handler(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(rejection) = authorize(&app.access, &headers) {
        return rejection.into_response();
    }
    let Some(reload) = &app.state.reload else {
        return (
            StatusCode::NOT_FOUND,
            "configuration reload is not available in this process\n",
        )
            .into_response();
    };
    let (reply, outcome) = oneshot::channel();
    if reload.send(ReloadRequest { reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response();
    }
    match outcome.await {
        Ok(Ok(summary)) => {
            let body = serde_json::json!({
                "status": "reloaded",
                "probes_added": summary.probes_added,
                "probes_removed": summary.probes_removed,
                "probes_changed": summary.probes_changed,
                "rules": summary.rules,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Err(message)) => {
            let body = serde_json::json!({ "status": "rejected", "error": message });
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping\n").into_response(),
    }
}

/// Reason a mutating request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// No token is configured and the server is not bound to loopback.
    Disabled,
    /// The bearer token is missing or wrong.
    BadToken,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Disabled => (
                StatusCode::FORBIDDEN,
                "mutating endpoints are disabled on a non-loopback address without a token: \
                 set server.token\n",
            )
                .into_response(),
            Rejection::BadToken => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or invalid bearer token\n",
            )
                .into_response(),
        }
    }
}

/// Checks the caller of a mutating endpoint.
fn authorize(access: &MutationAccess, headers: &HeaderMap) -> Result<(), Rejection> {
    match access {
        MutationAccess::Loopback => Ok(()),
        MutationAccess::Disabled => Err(Rejection::Disabled),
        MutationAccess::Token(token) => {
            let sent = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "));
            match sent {
                Some(sent) if constant_time_eq(sent.as_bytes(), token.as_bytes()) => Ok(()),
                _ => Err(Rejection::BadToken),
            }
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a caller cannot
/// find the token byte by byte from response times.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests;
