//! loftwatch: synthetic monitoring and alerting for integrations that depend on the SalesLoft
//! REST API.
//!
//! The daemon calls SalesLoft on a schedule the way an integration would ([`probe`]), keeps
//! sliding windows of latency histograms and outcome counters ([`stats`]), evaluates alert rules
//! over them ([`alert`]) and sends firing and resolved notifications ([`notify`]), keeping alert state and the outbox in SQLite ([`store`]). The
//! [`simulator`] serves a SalesLoft-like API with scriptable faults for tests and the demo.
#![forbid(unsafe_code)]

pub mod alert;
pub mod config;
pub mod daemon;
pub mod notify;
pub mod probe;
pub mod route;
pub mod salesloft;
pub mod server;
pub mod simulator;
pub mod stats;
pub mod store;
pub mod telemetry;
