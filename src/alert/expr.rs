//! Rule expressions (placeholder until the parser lands).

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr;
