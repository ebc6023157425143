//! Alert rules: expressions over a probe's sliding window, their evaluation, and the state
//! machine that turns conditions into firing and resolved transitions.

mod engine;
mod expr;
mod lexer;
mod parse;
mod signals;
mod state;
mod text;
mod transition;

pub use engine::{AlertChanges, Engine};
pub use expr::{Aggregate, CompareOp, Evaluation, Expr, Measurement, Signal, Signals, Threshold};
pub use parse::{ExprError, parse};
pub use signals::{EvalContext, NoSignals};
pub use state::{AlertState, AlertStatus, SavedAlert};
pub use transition::{Severity, Transition, TransitionKind};
