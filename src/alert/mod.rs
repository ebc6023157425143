//! Alert rules: expressions over a probe's sliding window, their evaluation, and the state
//! machine that turns conditions into firing and resolved transitions.

mod expr;
mod transition;

pub use expr::{Expr, ExprError, parse};
pub use transition::{Severity, Transition, TransitionKind};
