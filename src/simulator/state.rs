//! State shared by connections, the control endpoint and the handle.
//!
//! One mutex guards it. No lock is held across an await, so the critical sections stay short.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::api::Catalog;
use super::fault::{Delay, Fault, FaultEffect};
use super::log::{LoggedRequest, RequestStats};
use super::ratelimit::{Budget, RetryAfter};
use super::tokens::Tokens;

/// Identifier of an active fault, for removing that fault alone.
pub type FaultId = u64;

/// A fault in force, with the position in its status cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveFault {
    /// Identifier returned when the fault was set.
    pub id: FaultId,
    /// The fault itself.
    #[serde(flatten)]
    pub fault: Fault,
    #[serde(skip)]
    next_status: usize,
}

/// Effects of the faults in force on one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Sum of the latency faults that hit the request.
    pub delay: Duration,
    /// The first non-latency fault that hit, with a status fault's code picked.
    pub action: Option<FaultAction>,
    /// Kind names of the faults that hit, for the request log.
    pub kinds: Vec<&'static str>,
}

/// A non-latency fault effect, resolved for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Respond with this status.
    Status(u16),
    /// Trickle the body over this duration.
    SlowBody(Duration),
    /// Never answer.
    Hang,
    /// Reset the connection.
    Reset,
    /// Close the connection without a response.
    Close,
    /// Truncate the JSON body.
    MalformedJson,
    /// Pad the JSON body to this many bytes.
    OversizedBody(usize),
}

/// Mutable simulator state.
#[derive(Debug)]
pub struct Inner {
    /// Faults in force, in the order they were set.
    pub faults: Vec<ActiveFault>,
    next_fault_id: FaultId,
    /// Team budget.
    pub budget: Budget,
    /// Whether 429 responses carry `Retry-After`.
    pub retry_after: RetryAfter,
    /// Token registry.
    pub tokens: Tokens,
    /// Request log, oldest first.
    pub log: Vec<LoggedRequest>,
    /// Counters of the request log.
    pub stats: RequestStats,
    /// Seeded random source for fault shares, latency and tokens.
    pub rng: StdRng,
}

/// State and clock of one simulator.
#[derive(Debug)]
pub struct State {
    /// Records served by the list endpoints.
    pub catalog: Catalog,
    /// Timelines being played, aborted when faults are cleared.
    pub scenario_tasks: Mutex<Vec<AbortHandle>>,
    started: Instant,
    started_wall: SystemTime,
    inner: Mutex<Inner>,
}

impl State {
    /// Creates the state at the start of a simulator.
    pub fn new(budget_per_minute: u32, seed: Option<u64>, catalog: Catalog) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            catalog,
            scenario_tasks: Mutex::new(Vec::new()),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            inner: Mutex::new(Inner {
                faults: Vec::new(),
                next_fault_id: 1,
                budget: Budget::new(budget_per_minute),
                retry_after: RetryAfter::None,
                tokens: Tokens::default(),
                log: Vec::new(),
                stats: RequestStats::default(),
                rng,
            }),
        }
    }

    /// Locks the state; a panic in another holder does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops every playing scenario and removes every fault.
    pub fn clear_faults(&self) {
        let mut tasks = self
            .scenario_tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
        drop(tasks);
        self.lock().faults.clear();
    }

    /// Time since the simulator started, on the tokio clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(self.started)
    }

    /// Wall-clock time derived from the tokio clock, so a paused clock also moves the budget
    /// windows.
    pub fn now_wall(&self) -> SystemTime {
        self.started_wall + self.elapsed()
    }
}

impl Inner {
    /// Adds a fault and returns its identifier.
    pub fn add_fault(&mut self, fault: Fault) -> FaultId {
        let id = self.next_fault_id;
        self.next_fault_id += 1;
        self.faults.push(ActiveFault {
            id,
            fault,
            next_status: 0,
        });
        id
    }

    /// Removes one fault; returns false when no fault has this identifier.
    pub fn remove_fault(&mut self, id: FaultId) -> bool {
        let before = self.faults.len();
        self.faults.retain(|active| active.id != id);
        self.faults.len() != before
    }

    /// Decides what the faults in force do to a request for `path`.
    pub fn plan_faults(&mut self, path: &str) -> FaultPlan {
        let mut plan = FaultPlan::default();
        for active in &mut self.faults {
            if !active.fault.matches(path) {
                continue;
            }
            if active.fault.share < 1.0 && self.rng.random::<f64>() >= active.fault.share {
                continue;
            }
            let action = match &active.fault.effect {
                FaultEffect::Latency(delay) => {
                    plan.delay += sample_delay(*delay, &mut self.rng);
                    plan.kinds.push("latency");
                    continue;
                }
                _ if plan.action.is_some() => continue,
                FaultEffect::Status(codes) => {
                    let code = codes[active.next_status % codes.len()];
                    active.next_status = (active.next_status + 1) % codes.len();
                    FaultAction::Status(code)
                }
                FaultEffect::SlowBody(duration) => FaultAction::SlowBody(*duration),
                FaultEffect::Hang => FaultAction::Hang,
                FaultEffect::Reset => FaultAction::Reset,
                FaultEffect::Close => FaultAction::Close,
                FaultEffect::MalformedJson => FaultAction::MalformedJson,
                FaultEffect::OversizedBody(bytes) => FaultAction::OversizedBody(*bytes),
            };
            plan.kinds.push(effect_name(&active.fault.effect));
            plan.action = Some(action);
        }
        plan
    }
}

/// Returns the `kind` name of an effect.
pub fn effect_name(effect: &FaultEffect) -> &'static str {
    match effect {
        FaultEffect::Status(_) => "status",
        FaultEffect::Latency(_) => "latency",
        FaultEffect::SlowBody(_) => "slow_body",
        FaultEffect::Hang => "hang",
        FaultEffect::Reset => "reset",
        FaultEffect::Close => "close",
        FaultEffect::MalformedJson => "malformed_json",
        FaultEffect::OversizedBody(_) => "oversized_body",
    }
}

fn sample_delay(delay: Delay, rng: &mut StdRng) -> Duration {
    match delay {
        Delay::Fixed(delay) => delay,
        Delay::Uniform { min, max } => {
            let fraction: f64 = rng.random();
            min + (max - min).mul_f64(fraction)
        }
        Delay::Normal { mean, std_dev } => {
            // Box-Muller transform: two uniform samples give one standard normal sample.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let seconds = mean.as_secs_f64() + z * std_dev.as_secs_f64();
            Duration::from_secs_f64(seconds.max(0.0))
        }
    }
}
