//! The parser of rule expressions: a recursive-descent parser that reports the byte offset of
//! the first bad token.

use std::time::Duration;

use crate::probe::Outcome;
use crate::stats::{Filter, StatusOp};

use super::expr::{Aggregate, CompareOp, Expr, Signal, Threshold};
use super::lexer::{Spanned, Token, error, tokenize};

/// A rule expression that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Byte offset into the expression text where the problem starts.
    pub offset: usize,
    /// Description of the problem and of what was expected.
    pub message: String,
}

/// Parses a rule expression such as `count(status >= 500 and status <= 599) > 5`,
/// `ratio(outcome != ok) > 20%` or `p99 > baseline`.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let expr = parser.expr()?;
    let next = parser.peek();
    if next.token != Token::End {
        return error(
            next.offset,
            format!("unexpected {} after the threshold", next.describe()),
        );
    }
    Ok(expr)
}

struct Parser<'a> {
    tokens: Vec<Spanned<'a>>,
    position: usize,
}

const AGGREGATES: &str = "count(...), rate(...), ratio(...), p50, p90, p95, p99, p999, \
                          quantile(q), max, min(ratelimit_remaining), \
                          last(ratelimit_remaining), circuit_open, token_refresh_failing or \
                          token_expires_in";

impl<'a> Parser<'a> {
    fn peek(&self) -> Spanned<'a> {
        self.tokens[self.position]
    }

    fn next(&mut self) -> Spanned<'a> {
        let token = self.peek();
        if token.token != Token::End {
            self.position += 1;
        }
        token
    }

    fn expect(&mut self, expected: Token<'_>, what: &str) -> Result<Spanned<'a>, ExprError> {
        let token = self.next();
        if token.token == expected {
            return Ok(token);
        }
        error(
            token.offset,
            format!("expected {what}, found {}", token.describe()),
        )
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let aggregate = self.aggregate()?;
        let token = self.next();
        let op = match token.token {
            Token::Op(">") => CompareOp::Gt,
            Token::Op(">=") => CompareOp::Ge,
            Token::Op("<") => CompareOp::Lt,
            Token::Op("<=") => CompareOp::Le,
            _ => {
                let found = token.describe();
                return error(
                    token.offset,
                    format!("expected `>`, `>=`, `<` or `<=`, found {found}"),
                );
            }
        };
        let threshold = self.threshold(&aggregate)?;
        Ok(Expr {
            aggregate,
            op,
            threshold,
        })
    }

    fn aggregate(&mut self) -> Result<Aggregate, ExprError> {
        let token = self.next();
        let Token::Ident(name) = token.token else {
            let found = token.describe();
            return error(
                token.offset,
                format!("expected {AGGREGATES}, found {found}"),
            );
        };
        match name {
            "count" => Ok(Aggregate::Count(self.call_filter(true)?)),
            "rate" => Ok(Aggregate::Rate(self.call_filter(true)?)),
            "ratio" => Ok(Aggregate::Ratio(self.call_filter(false)?)),
            "max" => Ok(Aggregate::Max),
            "circuit_open" => Ok(Aggregate::Signal(Signal::CircuitOpen)),
            "token_refresh_failing" => Ok(Aggregate::Signal(Signal::TokenRefreshFailing)),
            "token_expires_in" => Ok(Aggregate::Signal(Signal::TokenExpiresIn)),
            "min" | "last" => {
                self.expect(Token::Open, "`(ratelimit_remaining)`")?;
                self.expect(Token::Ident("ratelimit_remaining"), "`ratelimit_remaining`")?;
                self.expect(Token::Close, "`)` after `ratelimit_remaining`")?;
                Ok(if name == "min" {
                    Aggregate::MinRemaining
                } else {
                    Aggregate::LastRemaining
                })
            }
            "quantile" => {
                self.expect(Token::Open, "`(` after `quantile`")?;
                let argument = self.next();
                let Token::Number(q) = argument.token else {
                    let found = argument.describe();
                    return error(
                        argument.offset,
                        format!("expected a quantile such as 0.99, found {found}"),
                    );
                };
                if !(q > 0.0 && q <= 1.0) {
                    return error(
                        argument.offset,
                        format!("quantile {q} is outside (0, 1]: write 0.99 for p99"),
                    );
                }
                self.expect(Token::Close, "`)` after the quantile")?;
                Ok(Aggregate::Quantile(q))
            }
            _ => match short_quantile(name) {
                Some(q) => Ok(Aggregate::Quantile(q)),
                None => error(
                    token.offset,
                    format!("unknown aggregate `{name}`: expected {AGGREGATES}"),
                ),
            },
        }
    }

    /// Parses `(filter)` after `count`, `rate` or `ratio`; `()` and `(*)` mean every result
    /// where `all_allowed` is set.
    fn call_filter(&mut self, all_allowed: bool) -> Result<Filter, ExprError> {
        self.expect(Token::Open, "`(` and a filter such as `status == 429`")?;
        let token = self.peek();
        let filter = match token.token {
            Token::Close | Token::Star if !all_allowed => {
                return error(token.offset, "ratio needs a filter such as `outcome != ok`");
            }
            Token::Close => Filter::All,
            Token::Star => {
                self.next();
                Filter::All
            }
            _ => self.or()?,
        };
        self.expect(Token::Close, "`)`, `and` or `or`")?;
        Ok(filter)
    }

    fn or(&mut self) -> Result<Filter, ExprError> {
        let mut filter = self.and()?;
        while self.peek().token == Token::Ident("or") {
            self.next();
            filter = Filter::Or(Box::new(filter), Box::new(self.and()?));
        }
        Ok(filter)
    }

    fn and(&mut self) -> Result<Filter, ExprError> {
        let mut filter = self.unary()?;
        while self.peek().token == Token::Ident("and") {
            self.next();
            filter = Filter::And(Box::new(filter), Box::new(self.unary()?));
        }
        Ok(filter)
    }

    fn unary(&mut self) -> Result<Filter, ExprError> {
        let token = self.next();
        match token.token {
            Token::Ident("not") => Ok(Filter::Not(Box::new(self.unary()?))),
            Token::Open => {
                let filter = self.or()?;
                self.expect(Token::Close, "`)`, `and` or `or`")?;
                Ok(filter)
            }
            Token::Ident("status") => self.status(),
            Token::Ident("outcome") => self.outcome(),
            _ => {
                let found = token.describe();
                error(
                    token.offset,
                    format!("expected `status`, `outcome`, `not` or `(`, found {found}"),
                )
            }
        }
    }

    fn status(&mut self) -> Result<Filter, ExprError> {
        let token = self.next();
        let op = match token.token {
            Token::Op("==") => StatusOp::Eq,
            Token::Op("!=") => StatusOp::Ne,
            Token::Op("<") => StatusOp::Lt,
            Token::Op("<=") => StatusOp::Le,
            Token::Op(">") => StatusOp::Gt,
            Token::Op(">=") => StatusOp::Ge,
            _ => {
                let found = token.describe();
                return error(
                    token.offset,
                    format!("expected a comparison after `status`, found {found}"),
                );
            }
        };
        let value = self.next();
        match value.token {
            Token::Number(code) if code.fract() == 0.0 && (100.0..=599.0).contains(&code) => {
                Ok(Filter::Status(op, code as u16))
            }
            _ => {
                let found = value.describe();
                error(
                    value.offset,
                    format!("expected a status code from 100 to 599, found {found}"),
                )
            }
        }
    }

    fn outcome(&mut self) -> Result<Filter, ExprError> {
        let token = self.next();
        let equal = match token.token {
            Token::Op("==") => true,
            Token::Op("!=") => false,
            _ => {
                let found = token.describe();
                return error(
                    token.offset,
                    format!("expected `==` or `!=` after `outcome`, found {found}"),
                );
            }
        };
        let value = self.next();
        let parsed = match value.token {
            Token::Ident(name) => Outcome::parse(name),
            _ => None,
        };
        match parsed {
            Some(outcome) => Ok(Filter::Outcome { outcome, equal }),
            None => {
                let valid: Vec<&str> = Outcome::ALL
                    .iter()
                    .map(|outcome| outcome.as_str())
                    .collect();
                let found = value.describe();
                error(
                    value.offset,
                    format!(
                        "unknown outcome {found}: expected one of {}",
                        valid.join(", ")
                    ),
                )
            }
        }
    }

    fn threshold(&mut self, aggregate: &Aggregate) -> Result<Threshold, ExprError> {
        let token = self.next();
        let value = match token.token {
            Token::Ident("baseline") if aggregate.is_latency() => return Ok(Threshold::Baseline),
            Token::Ident("baseline") => {
                return error(
                    token.offset,
                    "`baseline` is a latency: compare it with p99, quantile(q) or max",
                );
            }
            Token::Number(value) => value,
            _ => {
                let found = token.describe();
                return error(
                    token.offset,
                    format!("expected a threshold such as `5`, `20%` or `2000ms`, found {found}"),
                );
            }
        };
        let unit_token = self.peek();
        let unit_name = match unit_token.token {
            Token::Percent => Some("%"),
            Token::Ident(name @ ("ms" | "s" | "m")) => Some(name),
            _ => None,
        };
        if unit_name.is_some() {
            self.next();
        }
        let number = token.text;
        match (aggregate, unit_name) {
            (
                Aggregate::Count(_)
                | Aggregate::Rate(_)
                | Aggregate::MinRemaining
                | Aggregate::LastRemaining
                | Aggregate::Signal(_),
                None,
            ) => Ok(Threshold::Number(value)),
            (
                Aggregate::MinRemaining | Aggregate::LastRemaining | Aggregate::Signal(_),
                Some(unit),
            ) => error(
                unit_token.offset,
                format!(
                    "this aggregate compares with a plain number (seconds for \
                     token_expires_in), found unit `{unit}` after {number}"
                ),
            ),
            (Aggregate::Count(_) | Aggregate::Rate(_), Some(unit)) => error(
                unit_token.offset,
                format!(
                    "count and rate compare with a plain number, found unit `{unit}` after {number}"
                ),
            ),
            (Aggregate::Ratio(_), Some("%")) if value <= 100.0 => {
                Ok(Threshold::Fraction(value / 100.0))
            }
            (Aggregate::Ratio(_), None) if value <= 1.0 => Ok(Threshold::Fraction(value)),
            (Aggregate::Ratio(_), _) => error(
                token.offset,
                format!(
                    "ratio threshold `{}` is not a share: write a percentage up to `100%` or a fraction up to `1`",
                    &number
                ),
            ),
            (_, None) => error(
                token.offset,
                format!(
                    "latency threshold `{number}` has no unit: add `ms`, `s` or `m`, as in `{number}ms`"
                ),
            ),
            (_, Some("%")) => error(
                token.offset,
                format!(
                    "latency threshold `{number}%` is a percentage: write a duration such as `{number}ms`"
                ),
            ),
            (_, Some(unit)) => match latency(value, unit) {
                Some(limit) => Ok(Threshold::Latency(limit)),
                None => error(
                    token.offset,
                    format!("latency threshold `{number}{unit}` is too large"),
                ),
            },
        }
    }
}

/// Reads `p50`, `p99` or `p999` as 0.5, 0.99 or 0.999: two digits are percent, and longer
/// runs of nines add decimals.
fn short_quantile(name: &str) -> Option<f64> {
    let digits = name.strip_prefix('p')?;
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let value: u32 = digits.parse().ok()?;
    match digits.len() {
        2 if value > 0 => Some(f64::from(value) / 100.0),
        3..=5 if digits.starts_with("99") => {
            Some(f64::from(value) / 10f64.powi(digits.len() as i32))
        }
        _ => None,
    }
}

/// Converts a number with a unit to a duration, rounded to the nanosecond so that `0.3s` is
/// exactly 300 ms. Returns `None` above about 584 years.
fn latency(value: f64, unit: &str) -> Option<Duration> {
    let unit_nanos = match unit {
        "ms" => 1e6,
        "m" => 60e9,
        _ => 1e9,
    };
    let nanos = (value * unit_nanos).round();
    (nanos < u64::MAX as f64).then(|| Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
