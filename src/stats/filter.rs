//! Result filters: the predicates over status code and outcome that rule expressions count.

use std::fmt;

use crate::probe::Outcome;

/// A comparison operator between a result's status code and an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl StatusOp {
    /// Returns the operator as written in rule expressions: `==`, `!=`, `<`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            StatusOp::Eq => "==",
            StatusOp::Ne => "!=",
            StatusOp::Lt => "<",
            StatusOp::Le => "<=",
            StatusOp::Gt => ">",
            StatusOp::Ge => ">=",
        }
    }

    fn holds(self, left: u16, right: u16) -> bool {
        match self {
            StatusOp::Eq => left == right,
            StatusOp::Ne => left != right,
            StatusOp::Lt => left < right,
            StatusOp::Le => left <= right,
            StatusOp::Gt => left > right,
            StatusOp::Ge => left >= right,
        }
    }
}

/// A predicate over one probe result, such as `status >= 500 and status <= 599`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every result (`count()` or `count(*)`).
    All,
    /// A comparison of the HTTP status code. A result without a response (timeout, connection
    /// error) has no status, so every status comparison is false for it, `!=` included.
    Status(StatusOp, u16),
    /// `outcome == name` when `equal` is true, `outcome != name` otherwise.
    Outcome {
        outcome: Outcome,
        equal: bool,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

impl Filter {
    /// Returns whether a result with this outcome and status code matches.
    pub fn matches(&self, outcome: Outcome, status: Option<u16>) -> bool {
        match self {
            Filter::All => true,
            Filter::Status(op, value) => status.is_some_and(|status| op.holds(status, *value)),
            Filter::Outcome {
                outcome: expected,
                equal,
            } => (outcome == *expected) == *equal,
            Filter::And(left, right) => {
                left.matches(outcome, status) && right.matches(outcome, status)
            }
            Filter::Or(left, right) => {
                left.matches(outcome, status) || right.matches(outcome, status)
            }
            Filter::Not(inner) => !inner.matches(outcome, status),
        }
    }

    /// Binding strength for printing: `or` binds loosest, `not` and comparisons tightest.
    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    fn fmt_operand(&self, f: &mut fmt::Formatter<'_>, min_precedence: u8) -> fmt::Result {
        if self.precedence() < min_precedence {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

/// Prints the filter in the expression syntax, with parentheses only where precedence needs
/// them: `status >= 500 and status <= 599`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("*"),
            Filter::Status(op, value) => write!(f, "status {} {value}", op.as_str()),
            Filter::Outcome { outcome, equal } => {
                let op = if *equal { "==" } else { "!=" };
                write!(f, "outcome {op} {outcome}")
            }
            Filter::And(left, right) => {
                left.fmt_operand(f, 2)?;
                f.write_str(" and ")?;
                right.fmt_operand(f, 3)
            }
            Filter::Or(left, right) => {
                left.fmt_operand(f, 1)?;
                f.write_str(" or ")?;
                right.fmt_operand(f, 2)
            }
            Filter::Not(inner) => {
                f.write_str("not ")?;
                inner.fmt_operand(f, 3)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(op: StatusOp, value: u16) -> Box<Filter> {
        Box::new(Filter::Status(op, value))
    }

    #[test]
    fn status_range_matches_5xx_only() {
        let filter = Filter::And(status(StatusOp::Ge, 500), status(StatusOp::Le, 599));
        assert!(filter.matches(Outcome::HttpStatus(5), Some(503)));
        assert!(!filter.matches(Outcome::HttpStatus(4), Some(429)));
        assert!(!filter.matches(Outcome::Timeout, None));
    }

    #[test]
    fn missing_status_fails_every_comparison() {
        assert!(!Filter::Status(StatusOp::Ne, 200).matches(Outcome::Timeout, None));
        let negated = Filter::Not(status(StatusOp::Eq, 200));
        assert!(negated.matches(Outcome::Timeout, None));
    }

    #[test]
    fn outcome_inequality_matches_failures() {
        let filter = Filter::Outcome {
            outcome: Outcome::Ok,
            equal: false,
        };
        assert!(filter.matches(Outcome::Timeout, None));
        assert!(!filter.matches(Outcome::Ok, Some(200)));
    }

    #[test]
    fn display_adds_needed_parentheses() {
        let or = Filter::Or(status(StatusOp::Eq, 401), status(StatusOp::Eq, 403));
        let filter = Filter::And(
            Box::new(or),
            Box::new(Filter::Not(status(StatusOp::Eq, 200))),
        );
        assert_eq!(
            filter.to_string(),
            "(status == 401 or status == 403) and not status == 200"
        );
    }
}
