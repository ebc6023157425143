//! Parser tests: accepted forms and the offsets and messages of rejected ones.

use std::time::Duration;

use super::parse;
use crate::alert::{Aggregate, CompareOp, Threshold};
use crate::probe::Outcome;
use crate::stats::{Filter, StatusOp};

fn status(op: StatusOp, code: u16) -> Box<Filter> {
    Box::new(Filter::Status(op, code))
}

#[test]
fn count_of_single_status() {
    let expr = parse("count(status == 401) > 0").unwrap();
    assert_eq!(
        expr.aggregate,
        Aggregate::Count(Filter::Status(StatusOp::Eq, 401))
    );
    assert_eq!(expr.op, CompareOp::Gt);
    assert_eq!(expr.threshold, Threshold::Number(0.0));
}

#[test]
fn count_of_status_range() {
    let expr = parse("count(status >= 500 and status <= 599) > 5").unwrap();
    let range = Filter::And(status(StatusOp::Ge, 500), status(StatusOp::Le, 599));
    assert_eq!(expr.aggregate, Aggregate::Count(range));
    assert_eq!(expr.threshold, Threshold::Number(5.0));
}

#[test]
fn count_of_everything() {
    for text in ["count() >= 1", "count(*) >= 1", "count( * )>=1"] {
        let expr = parse(text).unwrap();
        assert_eq!(expr.aggregate, Aggregate::Count(Filter::All), "{text}");
        assert_eq!(expr.op, CompareOp::Ge, "{text}");
    }
}

#[test]
fn outcome_filters() {
    let expr = parse("count(outcome == timeout) > 3").unwrap();
    let timeout = Filter::Outcome {
        outcome: Outcome::Timeout,
        equal: true,
    };
    assert_eq!(expr.aggregate, Aggregate::Count(timeout));

    let expr = parse("ratio(outcome != ok) > 20%").unwrap();
    let failed = Filter::Outcome {
        outcome: Outcome::Ok,
        equal: false,
    };
    assert_eq!(expr.aggregate, Aggregate::Ratio(failed));
    assert_eq!(expr.threshold, Threshold::Fraction(0.2));
    assert_eq!(
        parse("ratio(outcome != ok) > 0.2").unwrap().threshold,
        Threshold::Fraction(0.2)
    );
}

#[test]
fn rate_per_minute() {
    let expr = parse("rate(status == 429) > 10").unwrap();
    assert_eq!(
        expr.aggregate,
        Aggregate::Rate(Filter::Status(StatusOp::Eq, 429))
    );
    assert_eq!(expr.threshold, Threshold::Number(10.0));
}

#[test]
fn precedence_of_not_and_or() {
    let expr = parse("count(not status == 200 and (outcome == timeout or status < 300)) > 0");
    let either = Filter::Or(
        Box::new(Filter::Outcome {
            outcome: Outcome::Timeout,
            equal: true,
        }),
        status(StatusOp::Lt, 300),
    );
    let expected = Filter::And(
        Box::new(Filter::Not(status(StatusOp::Eq, 200))),
        Box::new(either),
    );
    assert_eq!(expr.unwrap().aggregate, Aggregate::Count(expected));

    let expr = parse("count(status == 1 or status == 2 and status == 3) > 0");
    assert!(expr.is_err(), "status 1 is not a status code");
    let expr = parse("count(status == 401 or status == 403 and status == 404) > 0").unwrap();
    let and = Filter::And(status(StatusOp::Eq, 403), status(StatusOp::Eq, 404));
    let expected = Filter::Or(status(StatusOp::Eq, 401), Box::new(and));
    assert_eq!(expr.aggregate, Aggregate::Count(expected));
}

#[test]
fn latency_aggregates_and_units() {
    let cases = [
        ("p99 > 2000ms", 0.99, Duration::from_millis(2000)),
        ("p50 > 1s", 0.5, Duration::from_secs(1)),
        ("p95 >= 0.3s", 0.95, Duration::from_millis(300)),
        ("quantile(0.999) > 2s", 0.999, Duration::from_secs(2)),
        ("p999 > 2 s", 0.999, Duration::from_secs(2)),
        ("p90 < 1.5m", 0.9, Duration::from_secs(90)),
    ];
    for (text, q, limit) in cases {
        let expr = parse(text).unwrap();
        assert_eq!(expr.aggregate, Aggregate::Quantile(q), "{text}");
        assert_eq!(expr.threshold, Threshold::Latency(limit), "{text}");
    }
    assert_eq!(parse("max > 5s").unwrap().aggregate, Aggregate::Max);
    assert_eq!(
        parse("p99 > baseline").unwrap().threshold,
        Threshold::Baseline
    );
}

/// Asserts that `text` fails at `offset` with a message containing `part`.
fn assert_rejected(text: &str, offset: usize, part: &str) {
    let error = parse(text).expect_err(text);
    assert_eq!(error.offset, offset, "{text}: {}", error.message);
    assert!(error.message.contains(part), "{text}: {}", error.message);
}

#[test]
fn rejects_latency_without_unit() {
    assert_rejected("p99 > 2000", 6, "add `ms`");
    assert_rejected("max > 5%", 6, "percentage");
}

#[test]
fn rejects_unknown_outcome() {
    assert_rejected(
        "count(outcome == timout) > 0",
        17,
        "unknown outcome `timout`",
    );
    assert_rejected("count(outcome == timout) > 0", 17, "ok, http_1xx");
    assert_rejected("count(outcome == timout) > 0", 17, "assertion_failed");
    assert_rejected("count(outcome > ok) > 0", 14, "expected `==` or `!=`");
}

#[test]
fn rejects_bad_aggregates() {
    assert_rejected("cnt(status == 401) > 0", 0, "unknown aggregate `cnt`");
    assert_rejected("p100 > 1s", 0, "unknown aggregate `p100`");
    assert_rejected("quantile(1.5) > 1s", 9, "outside (0, 1]");
    assert_rejected("ratio(*) > 20%", 6, "ratio needs a filter");
    assert_rejected("", 0, "found end of expression");
}

#[test]
fn rejects_bad_thresholds() {
    assert_rejected("count(status == 401) > 2s", 24, "plain number");
    assert_rejected("ratio(outcome != ok) > 20", 23, "not a share");
    assert_rejected("count(*) > baseline", 11, "`baseline` is a latency");
    assert_rejected(
        "count(*) == 0",
        9,
        "expected `>`, `>=`, `<` or `<=`, found `==`",
    );
    assert_rejected("count(*) >", 10, "found end of expression");
}

#[test]
fn rejects_bad_filters() {
    assert_rejected("count(status = 401) > 0", 13, "write `==`");
    assert_rejected("count(status == 4o1) > 0", 16, "found `4`");
    assert_rejected(
        "count(status == 40.5) > 0",
        16,
        "status code from 100 to 599",
    );
    assert_rejected("count(status == 401 > 0", 20, "expected `)`");
    assert_rejected("count(code == 401) > 0", 6, "expected `status`, `outcome`");
    assert_rejected("count(status == 401) > 0 extra", 25, "unexpected `extra`");
    assert_rejected("count(status ≥ 401) > 0", 13, "unexpected character `≥`");
}
