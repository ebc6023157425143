//! Rule expressions: one aggregate over a probe's window compared with a threshold, such as
//! `count(status == 401) > 0` or `p99 > 2000ms`. The syntax is parsed by [`parse`](super::parse)
//! and documented in `docs/rules.md`.

use std::fmt;
use std::time::Duration;

use crate::stats::{Filter, Window};

use super::text;

/// A parsed rule expression: `aggregate op threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub aggregate: Aggregate,
    pub op: CompareOp,
    pub threshold: Threshold,
}

/// The left-hand side of a rule expression, computed over the rule's window.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// `count(filter)`: number of matching results.
    Count(Filter),
    /// `rate(filter)`: matching results per minute of window length.
    Rate(Filter),
    /// `ratio(filter)`: share of results that match, from 0 to 1.
    Ratio(Filter),
    /// `p99`, `quantile(0.999)`: nearest-rank latency quantile, `q` in `(0, 1]`.
    Quantile(f64),
    /// `max`: the largest latency sample.
    Max,
    /// `min(ratelimit_remaining)`: the smallest `x-ratelimit-remaining-minute` in the window.
    MinRemaining,
    /// `last(ratelimit_remaining)`: the newest `x-ratelimit-remaining-minute` in the window.
    LastRemaining,
    /// A live value of SalesLoft's health, read when the rule is evaluated.
    Signal(Signal),
}

/// A live value that rules read from the daemon rather than from the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `circuit_open`: 1 while the circuit breaker of the probe's host is open or half-open.
    CircuitOpen,
    /// `token_refresh_failing`: 1 while the last OAuth token refresh failed.
    TokenRefreshFailing,
    /// `token_expires_in`: seconds until the OAuth access token expires.
    TokenExpiresIn,
}

/// The live values of one probe at evaluation time; `None` is no data.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// Whether the breaker of the probe's host is open or half-open.
    pub circuit_open: Option<bool>,
    /// Whether the last OAuth token refresh failed; `None` with an API key.
    pub token_refresh_failing: Option<bool>,
    /// Time until the OAuth access token expires; `None` with an API key or before the first
    /// token.
    pub token_expires_in: Option<Duration>,
}

impl Aggregate {
    /// Returns whether the aggregate is over latency samples rather than results.
    pub fn is_latency(&self) -> bool {
        matches!(self, Aggregate::Quantile(_) | Aggregate::Max)
    }
}

/// The comparison between aggregate and threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// Returns the operator as written: `>`, `>=`, `<` or `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }

    fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            CompareOp::Gt => left > right,
            CompareOp::Ge => left >= right,
            CompareOp::Lt => left < right,
            CompareOp::Le => left <= right,
        }
    }
}

/// The right-hand side of a rule expression. The parser only pairs a threshold with an
/// aggregate of the same kind: numbers with `count` and `rate`, fractions with `ratio`,
/// latencies and `baseline` with quantiles and `max`.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    /// A plain number: results for `count`, results per minute for `rate`.
    Number(f64),
    /// A share from 0 to 1, written `20%` or `0.2`.
    Fraction(f64),
    /// A latency written with a unit: `2000ms`, `2s`, `1m`.
    Latency(Duration),
    /// The probe's latency baseline.
    Baseline,
}

/// The value of an aggregate with its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measurement {
    Count(u64),
    /// Results per minute.
    Rate(f64),
    /// Share from 0 to 1.
    Ratio(f64),
    Latency(Duration),
    /// A plain value: a remaining budget, or 0 and 1 for a flag.
    Number(f64),
    /// Seconds, such as the time until a token expires.
    Seconds(f64),
}

impl Measurement {
    /// Returns the value in the unit it is shown in: results, results per minute, percent or
    /// milliseconds.
    pub fn display_value(self) -> f64 {
        match self {
            Measurement::Count(count) => count as f64,
            Measurement::Rate(rate) => rate,
            Measurement::Ratio(share) => share * 100.0,
            Measurement::Latency(latency) => latency.as_secs_f64() * 1000.0,
            Measurement::Number(value) | Measurement::Seconds(value) => value,
        }
    }
}

/// Formats the value with its unit: `3`, `12.5/min`, `21.5 %`, `2450 ms`.
impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measurement::Count(count) => write!(f, "{count}"),
            Measurement::Rate(rate) => write!(f, "{}/min", text::number(*rate)),
            Measurement::Ratio(share) => write!(f, "{} %", text::number(share * 100.0)),
            Measurement::Latency(latency) => f.write_str(&text::latency(*latency)),
            Measurement::Number(value) => f.write_str(&text::number(*value)),
            Measurement::Seconds(value) => write!(f, "{} s", text::number(*value)),
        }
    }
}

/// The outcome of evaluating an expression that had data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub value: Measurement,
    /// Whether the comparison holds, so the alert condition is true.
    pub holds: bool,
}

impl Expr {
    /// Evaluates the expression over `window`. Returns `None` (no data) when the window has
    /// fewer than `min_samples` results, or latency samples for quantiles and `max`, and when
    /// the aggregate has no value (a quantile or ratio of nothing). `baseline` is the probe's
    /// latency baseline, used by the `baseline` threshold.
    pub fn evaluate(
        &self,
        window: &Window<'_>,
        min_samples: u32,
        baseline: Duration,
    ) -> Option<Evaluation> {
        self.evaluate_with(window, min_samples, baseline, &Signals::default())
    }

    /// Evaluates the expression like [`Expr::evaluate`], reading live values from `signals`.
    /// A signal ignores the window and `min_samples`, and has no data when its value is `None`.
    pub fn evaluate_with(
        &self,
        window: &Window<'_>,
        min_samples: u32,
        baseline: Duration,
        signals: &Signals,
    ) -> Option<Evaluation> {
        if let Aggregate::Signal(signal) = self.aggregate {
            let value = match signal {
                Signal::CircuitOpen => Measurement::Number(flag(signals.circuit_open?)),
                Signal::TokenRefreshFailing => {
                    Measurement::Number(flag(signals.token_refresh_failing?))
                }
                Signal::TokenExpiresIn => {
                    Measurement::Seconds(signals.token_expires_in?.as_secs_f64())
                }
            };
            return self.compare(value, baseline);
        }
        let available = if self.aggregate.is_latency() {
            window.samples()
        } else {
            window.total()
        };
        if available < u64::from(min_samples) {
            return None;
        }
        let value = match &self.aggregate {
            Aggregate::Count(filter) => Measurement::Count(window.count(filter)),
            Aggregate::Rate(filter) => Measurement::Rate(window.rate_per_minute(filter)),
            Aggregate::Ratio(filter) => Measurement::Ratio(window.ratio(filter)?),
            Aggregate::Quantile(q) => Measurement::Latency(window.quantile(*q)?),
            Aggregate::Max => Measurement::Latency(window.max()?),
            Aggregate::MinRemaining => Measurement::Number(f64::from(window.min_remaining()?)),
            Aggregate::LastRemaining => Measurement::Number(f64::from(window.last_remaining()?)),
            // Handled above.
            Aggregate::Signal(_) => return None,
        };
        self.compare(value, baseline)
    }

    fn compare(&self, value: Measurement, baseline: Duration) -> Option<Evaluation> {
        let holds = match (value, &self.threshold) {
            (
                Measurement::Number(number) | Measurement::Seconds(number),
                Threshold::Number(limit),
            ) => self.op.holds(number, *limit),
            (Measurement::Count(count), Threshold::Number(limit)) => {
                self.op.holds(count as f64, *limit)
            }
            (Measurement::Rate(rate), Threshold::Number(limit)) => self.op.holds(rate, *limit),
            (Measurement::Ratio(share), Threshold::Fraction(limit)) => self.op.holds(share, *limit),
            (Measurement::Latency(latency), Threshold::Latency(limit)) => {
                self.op.holds(latency, *limit)
            }
            (Measurement::Latency(latency), Threshold::Baseline) => {
                self.op.holds(latency, baseline)
            }
            // The parser rejects every other pairing.
            _ => return None,
        };
        Some(Evaluation { value, holds })
    }

    /// Formats the comparison and threshold for a person: `> 0`, `> 2000 ms`, `> 20 %`,
    /// `> 300 ms (baseline)`.
    pub fn threshold_text(&self, baseline: Duration) -> String {
        let op = self.op.as_str();
        match (&self.aggregate, &self.threshold) {
            (Aggregate::Rate(_), Threshold::Number(limit)) => {
                format!("{op} {}/min", text::number(*limit))
            }
            (_, Threshold::Number(limit)) => format!("{op} {}", text::number(*limit)),
            (_, Threshold::Fraction(limit)) => format!("{op} {} %", text::number(limit * 100.0)),
            (_, Threshold::Latency(limit)) => format!("{op} {}", text::latency(*limit)),
            (_, Threshold::Baseline) => format!("{op} {} (baseline)", text::latency(baseline)),
        }
    }

    /// Describes what the aggregate measures, for default summaries:
    /// `responses matching status == 401`, `results matching outcome == timeout`, `p99 latency`.
    /// `value` makes a count of exactly one singular: `response matching status == 401`.
    pub fn subject_text(&self, value: Option<Measurement>) -> String {
        let one = value == Some(Measurement::Count(1));
        match &self.aggregate {
            Aggregate::Count(filter) | Aggregate::Rate(filter) => matching_text(filter, one),
            Aggregate::Ratio(filter) => format!("of {}", matching_text(filter, false)),
            Aggregate::Quantile(q) => format!("{} latency", text::quantile_name(*q)),
            Aggregate::Max => "max latency".to_owned(),
            Aggregate::MinRemaining => "minimum rate budget remaining".to_owned(),
            Aggregate::LastRemaining => "rate budget remaining".to_owned(),
            Aggregate::Signal(Signal::CircuitOpen) => "circuit breaker open".to_owned(),
            Aggregate::Signal(Signal::TokenRefreshFailing) => "token refresh failing".to_owned(),
            Aggregate::Signal(Signal::TokenExpiresIn) => "token expires in".to_owned(),
        }
    }
}

/// Returns 1 for true and 0 for false.
fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// Names what a filter selects. A status comparison only matches results with a response, so
/// such filters count "responses". Filters over outcomes also match timeouts and connection
/// errors, so they count "results".
fn matching_text(filter: &Filter, one: bool) -> String {
    let noun = match (only_status(filter), one) {
        (true, true) => "response",
        (true, false) => "responses",
        (false, true) => "result",
        (false, false) => "results",
    };
    match filter {
        Filter::All => noun.to_owned(),
        filter => format!("{noun} matching {filter}"),
    }
}

fn only_status(filter: &Filter) -> bool {
    match filter {
        Filter::Status(..) => true,
        Filter::And(left, right) | Filter::Or(left, right) => {
            only_status(left) && only_status(right)
        }
        Filter::All | Filter::Outcome { .. } | Filter::Not(_) => false,
    }
}
