//! A SalesLoft v2 API simulator with scriptable faults, for tests, `loftwatch demo` and
//! `loftwatch simulate`.
//!
//! It serves `/v2/me`, `/v2/people`, `/v2/team`, `/v2/cadences`, `/v2/accounts` (each also with
//! `.json`) and `POST /oauth/token` over a hand-written HTTP/1.1 server. It charges requests
//! against a team budget per calendar minute as SalesLoft does. Faults come from
//! [`SimulatorHandle::set_fault`], the control endpoint under `/_sim/` or a [`Scenario`]
//! timeline. Every API request is logged and counted per path and status.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use loftwatch::simulator::{self, Fault, FaultEffect, SimulatorOptions};
//!
//! let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorOptions::default()).await?;
//! sim.set_fault(Fault::new(Some("/v2/me.json"), FaultEffect::Status(vec![503])));
//! // ... point a client at sim.base_url() ...
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod api;
mod control;
mod fault;
mod http;
mod log;
mod oauth;
mod ratelimit;
mod scenario;
mod server;
mod state;
mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use api::Catalog;
pub use fault::{
    Delay, Fault, FaultEffect, FaultError, MAX_OVERSIZED_BODY_BYTES, RawFault, canonical_path,
};
pub use log::{LoggedRequest, RequestStats};
pub use ratelimit::{DEFAULT_BUDGET_PER_MINUTE, RetryAfter, page_cost};
pub use scenario::{Scenario, ScenarioError, Step};
pub use state::{ActiveFault, FaultId};
pub use tokens::ACCESS_TOKEN_TTL;

use state::State;

/// Refresh token that `/oauth/token` accepts once at startup unless options replace it.
pub const DEFAULT_REFRESH_TOKEN: &str = "sim-refresh-token";

/// Settings of a simulator.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// Team budget in cost units per calendar minute.
    pub budget_per_minute: u32,
    /// Whether 429 responses carry `Retry-After`, and in which form.
    pub retry_after: RetryAfter,
    /// Timeline played from startup.
    pub scenario: Option<Scenario>,
    /// Seed of the random source (fault shares, latency, tokens); `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Records served by the list endpoints.
    pub catalog: Catalog,
    /// Refresh tokens `/oauth/token` accepts at startup; each works once and then rotates.
    pub refresh_tokens: Vec<String>,
    /// Accept only tokens issued by `/oauth/token` or marked valid, when true.
    pub strict_tokens: bool,
    /// Lifetime of the access tokens `/oauth/token` issues; `None` means [`ACCESS_TOKEN_TTL`].
    pub access_token_ttl: Option<std::time::Duration>,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            budget_per_minute: DEFAULT_BUDGET_PER_MINUTE,
            retry_after: RetryAfter::None,
            scenario: None,
            seed: None,
            catalog: Catalog::default(),
            refresh_tokens: vec![DEFAULT_REFRESH_TOKEN.to_owned()],
            strict_tokens: false,
            access_token_ttl: None,
        }
    }
}

impl SimulatorOptions {
    /// Sets the team budget per minute.
    pub fn budget_per_minute(mut self, units: u32) -> Self {
        self.budget_per_minute = units;
        self
    }

    /// Sets the `Retry-After` form of 429 responses.
    pub fn retry_after(mut self, mode: RetryAfter) -> Self {
        self.retry_after = mode;
        self
    }

    /// Sets the timeline played from startup.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = Some(scenario);
        self
    }

    /// Sets the seed of the random source.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// Binds `listen` and serves the simulator until [`SimulatorHandle::shutdown`] or drop.
pub async fn start(
    listen: SocketAddr,
    options: SimulatorOptions,
) -> std::io::Result<SimulatorHandle> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::new(
        options.budget_per_minute,
        options.seed,
        options.catalog,
    ));
    {
        let mut inner = state.lock();
        inner.retry_after = options.retry_after;
        inner.tokens.strict = options.strict_tokens;
        inner.tokens.access_token_ttl = options.access_token_ttl;
        inner.tokens.add_refresh(options.refresh_tokens);
    }
    if let Some(scenario) = options.scenario {
        scenario::play(&state, scenario);
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, Arc::clone(&state), shutdown_rx));
    tracing::info!(%addr, "simulator listening");
    Ok(SimulatorHandle {
        addr,
        state,
        shutdown: shutdown_tx,
        server: Some(server),
    })
}

/// A running simulator. Dropping it stops the server without waiting.
#[derive(Debug)]
pub struct SimulatorHandle {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl SimulatorHandle {
    /// Address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL such as `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets a fault, as `POST /_sim/faults` does.
    pub fn set_fault(&self, fault: Fault) -> FaultId {
        self.state.lock().add_fault(fault)
    }

    /// Removes one fault; returns false when no fault has this identifier.
    pub fn remove_fault(&self, id: FaultId) -> bool {
        self.state.lock().remove_fault(id)
    }

    /// Stops playing scenarios and removes every fault.
    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Returns the faults in force.
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.state.lock().faults.clone()
    }

    /// Starts playing a timeline now.
    pub fn play(&self, scenario: Scenario) {
        scenario::play(&self.state, scenario);
    }

    /// Returns the request log, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.lock().log.clone()
    }

    /// Returns the request counters per path and status.
    pub fn stats(&self) -> RequestStats {
        self.state.lock().stats.clone()
    }

    /// Empties the request log and counters.
    pub fn clear_requests(&self) {
        let mut inner = self.state.lock();
        inner.log.clear();
        inner.stats = RequestStats::default();
    }

    /// Spends `units` of this minute's budget as another client would; returns what is left.
    pub fn consume_budget(&self, units: u32) -> u32 {
        let now = self.state.now_wall();
        self.state.lock().budget.consume(now, units)
    }

    /// Changes the team budget per minute.
    pub fn set_budget_per_minute(&self, units: u32) {
        self.state.lock().budget.set_per_minute(units);
    }

    /// Sets whether and how 429 responses carry `Retry-After`.
    pub fn set_retry_after(&self, mode: RetryAfter) {
        self.state.lock().retry_after = mode;
    }

    /// Makes these access tokens get 401.
    pub fn invalidate_tokens<I: IntoIterator<Item = String>>(&self, tokens: I) {
        self.state.lock().tokens.add_invalid(tokens);
    }

    /// Makes these access tokens valid, also in strict mode.
    pub fn add_valid_tokens<I: IntoIterator<Item = String>>(&self, tokens: I) {
        self.state.lock().tokens.add_valid(tokens);
    }

    /// Adds refresh tokens that `/oauth/token` accepts once each.
    pub fn add_refresh_tokens<I: IntoIterator<Item = String>>(&self, tokens: I) {
        self.state.lock().tokens.add_refresh(tokens);
    }

    /// Accepts only tokens issued by `/oauth/token` or marked valid, when `strict` is true.
    pub fn set_strict_tokens(&self, strict: bool) {
        self.state.lock().tokens.strict = strict;
    }

    /// Sets the lifetime of access tokens issued from now on, in whole seconds as
    /// `expires_in` states it.
    pub fn set_access_token_ttl(&self, ttl: std::time::Duration) {
        self.state.lock().tokens.access_token_ttl = Some(ttl);
    }

    /// Stops the server, closes every connection and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.state.clear_faults();
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        tracing::info!(addr = %self.addr, "simulator stopped");
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.state.clear_faults();
        let _ = self.shutdown.send(true);
    }
}
