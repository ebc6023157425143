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
        };
        let holds = match (value, &self.threshold) {
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
        }
    }
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
