//! Rule expressions (placeholder until the parser lands).

/// A parsed rule expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr;

/// An expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// Parses a rule expression.
pub fn parse(_text: &str) -> Result<Expr, ExprError> {
    Ok(Expr)
}
