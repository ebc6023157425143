use chrono::{DateTime, Utc};
use chrono_tz::Europe::Berlin;

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Lists the runs of `line` in Berlin after `from` and up to `until`, both inclusive.
fn runs(line: &str, from: &str, until: &str) -> Vec<DateTime<Utc>> {
    let cron = parse_cron(line).unwrap();
    let until = utc(until);
    let mut at = utc(from) - TimeDelta::seconds(1);
    let mut found = Vec::new();
    while let Some(next) = next_cron_after(&cron, Berlin, at) {
        if next > until {
            break;
        }
        found.push(next);
        at = next;
    }
    found
}

#[test]
fn parse_accepts_five_fields_and_shortcuts() {
    for line in [
        "30 9 * * *",
        "*/15 * * * *",
        "0 0 * * 0",
        "0 0 * * 7",
        "@hourly",
        "@DAILY",
    ] {
        assert!(parse_cron(line).is_ok(), "{line}");
    }
}

#[test]
fn parse_rejects_seconds_and_year_fields() {
    for line in ["0 30 9 * * *", "0 30 9 * * * 2025", "30 9 * *"] {
        let message = parse_cron(line).unwrap_err();
        assert!(message.contains("5 fields"), "{line}: {message}");
    }
}

#[test]
fn parse_rejects_bad_values() {
    let message = parse_cron("61 * * * *").unwrap_err();
    assert!(
        message.starts_with("invalid cron line \"61 * * * *\""),
        "{message}"
    );
    let message = parse_cron("@reboot").unwrap_err();
    assert!(message.contains("@reboot"), "{message}");
}

#[test]
fn sunday_is_zero_and_seven() {
    // 2025-03-30 is a Sunday; noon in Berlin is 10:00Z after the spring change.
    for line in ["0 12 * * 0", "0 12 * * 7"] {
        let next = next_cron_after(
            &parse_cron(line).unwrap(),
            Berlin,
            utc("2025-03-27T00:00:00Z"),
        );
        assert_eq!(next, Some(utc("2025-03-30T10:00:00Z")), "{line}");
    }
}

#[test]
fn fixed_time_keeps_local_time_in_spring() {
    let found = runs("30 9 * * *", "2025-03-29T00:00:00Z", "2025-03-31T23:59:00Z");
    let expected = [
        "2025-03-29T08:30:00Z",
        "2025-03-30T07:30:00Z",
        "2025-03-31T07:30:00Z",
    ]
    .map(utc);
    assert_eq!(found, expected);
}

#[test]
fn fixed_time_keeps_local_time_in_autumn() {
    let found = runs("30 9 * * *", "2025-10-25T00:00:00Z", "2025-10-27T23:59:00Z");
    let expected = [
        "2025-10-25T07:30:00Z",
        "2025-10-26T08:30:00Z",
        "2025-10-27T08:30:00Z",
    ]
    .map(utc);
    assert_eq!(found, expected);
}

#[test]
fn time_in_spring_gap_runs_once_after_gap() {
    let found = runs("30 2 * * *", "2025-03-29T00:00:00Z", "2025-03-31T23:59:00Z");
    let expected = [
        "2025-03-29T01:30:00Z",
        "2025-03-30T01:00:00Z",
        "2025-03-31T00:30:00Z",
    ]
    .map(utc);
    assert_eq!(found, expected);
}

#[test]
fn time_in_autumn_fold_runs_once() {
    let found = runs("30 2 * * *", "2025-10-25T00:00:00Z", "2025-10-27T23:59:00Z");
    let expected = [
        "2025-10-25T00:30:00Z",
        "2025-10-26T00:30:00Z",
        "2025-10-27T01:30:00Z",
    ]
    .map(utc);
    assert_eq!(found, expected);
}

#[test]
fn gap_and_following_hour_share_one_run() {
    // 02:00 does not exist and 03:00 is the first instant after the gap: one run, not two.
    let found = runs(
        "0 2,3 * * *",
        "2025-03-30T00:00:00Z",
        "2025-03-30T03:00:00Z",
    );
    assert_eq!(found, [utc("2025-03-30T01:00:00Z")]);
}

#[test]
fn every_fifteen_minutes_through_both_changes() {
    for day in ["2025-03-30", "2025-10-26"] {
        let found = runs(
            "*/15 * * * *",
            &format!("{day}T00:00:00Z"),
            &format!("{day}T02:00:00Z"),
        );
        assert_eq!(found.len(), 9, "{day}: {found:?}");
        assert_eq!(found[0], utc(&format!("{day}T00:00:00Z")), "{day}");
        for pair in found.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                TimeDelta::minutes(15),
                "{day}: {found:?}"
            );
        }
    }
}

#[test]
fn hourly_runs_every_real_hour_through_both_changes() {
    for day in ["2025-03-30", "2025-10-26"] {
        let found = runs(
            "5 * * * *",
            &format!("{day}T00:00:00Z"),
            &format!("{day}T03:59:00Z"),
        );
        let expected: Vec<_> = (0..4)
            .map(|hour| utc(&format!("{day}T0{hour}:05:00Z")))
            .collect();
        assert_eq!(found, expected, "{day}");
    }
}

#[test]
fn never_matching_line_returns_none() {
    let cron = parse_cron("0 0 30 2 *").unwrap();
    assert_eq!(
        next_cron_after(&cron, Berlin, utc("2025-01-01T00:00:00Z")),
        None
    );
}
