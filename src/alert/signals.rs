//! Live values of SalesLoft's health that rules read at evaluation time: the circuit breaker
//! of a probe's host and the OAuth session's refresh state and token expiry.

use super::Signals;
use crate::salesloft::{BreakerState, Client};

/// A source of the live values of each probe, passed to
/// [`Engine::evaluate_with`](super::Engine::evaluate_with).
pub trait EvalContext {
    /// Returns the live values for `probe`; the default has no data for any of them.
    fn signals(&self, probe: &str) -> Signals {
        let _ = probe;
        Signals::default()
    }
}

/// A context with no live values, so signal rules have no data.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSignals;

impl EvalContext for NoSignals {}

/// Every probe of a daemon runs through one client, so every probe reads the same values.
impl EvalContext for Client {
    fn signals(&self, _probe: &str) -> Signals {
        let circuit_open = self.breakers().state(self.host()) != BreakerState::Closed;
        let status = self.oauth().map(|session| session.status());
        Signals {
            circuit_open: Some(circuit_open),
            token_refresh_failing: status.as_ref().map(|status| status.refresh_failing),
            token_expires_in: status.and_then(|status| status.expires_in),
        }
    }
}
