//! Cron schedules: parsing crontab(5) lines and finding the next run across DST changes.
//!
//! The next run follows Vixie cron (`find_jobs` in its cron.c). A job whose minute or hour field starts with `*` (such as
//! `*/15 * * * *` or `5 * * * *`) runs on real elapsed time. Its times that fall in a spring gap
//! do not exist and are skipped, and its times repeated in an autumn fold run at both
//! occurrences. Any other job runs at fixed local times. A time in a spring gap runs once at the
//! first instant after the gap, and a time in an autumn fold runs only at its first occurrence.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Shortcuts of crontab(5) that stand for a 5-field line.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// How far before the local time of `after` the search starts. Local times repeat in a fold,
/// so a local time earlier than that of `after` can still be a later instant. DST folds are one
/// hour or less, and the margin also covers rarer offset changes of up to three hours.
const FOLD_MARGIN: TimeDelta = TimeDelta::hours(3);

/// Most local matches examined for one call; ends the search for lines that match rarely.
const MAX_CANDIDATES: usize = 10_000;

/// Parses a 5-field crontab(5) line: minute, hour, day of month, month, day of week (0 and 7
/// are Sunday). `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` are accepted; lines
/// with a seconds or year field are rejected because they mean other times in other tools.
pub fn parse_cron(line: &str) -> Result<Cron, String> {
    let trimmed = line.trim();
    if trimmed.starts_with('@') {
        if !NICKNAMES
            .iter()
            .any(|name| name.eq_ignore_ascii_case(trimmed))
        {
            return Err(format!(
                "unsupported cron shortcut {trimmed:?}; use one of {} or a 5-field line",
                NICKNAMES.join(", ")
            ));
        }
    } else {
        let fields = trimmed.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "cron line {trimmed:?} has {fields} fields; write the 5 fields of crontab(5): \
                 minute hour day-of-month month day-of-week, with no seconds or year field"
            ));
        }
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| format!("invalid cron line {trimmed:?}: {error}"))
}

/// Returns the first run of `cron` in `zone` strictly after `after`, following the DST rules
/// of the module documentation, or `None` when no run is found within the search limit.
pub fn next_cron_after(cron: &Cron, zone: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let real_time = runs_on_real_time(cron);
    let mut cursor = after.with_timezone(&zone).naive_local() - FOLD_MARGIN;
    let mut best: Option<DateTime<Utc>> = None;

    for _ in 0..MAX_CANDIDATES {
        let local = cron.find_next_occurrence(&cursor, false).ok()?;
        if let Some(best) = best {
            // Past this local time no candidate can be an earlier instant than `best`.
            if local > best.with_timezone(&zone).naive_local() + FOLD_MARGIN {
                return Some(best);
            }
        }
        for instant in instants_of(zone, local, real_time) {
            if instant > after && best.is_none_or(|best| instant < best) {
                best = Some(instant);
            }
        }
        cursor = local;
    }
    best
}

/// Returns the instants at which a run planned for local time `local` happens.
fn instants_of(zone: Tz, local: NaiveDateTime, real_time: bool) -> Vec<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(time) => vec![time.to_utc()],
        LocalResult::Ambiguous(first, second) if real_time => {
            vec![first.to_utc(), second.to_utc()]
        }
        LocalResult::Ambiguous(first, _) => vec![first.to_utc()],
        LocalResult::None if real_time => Vec::new(),
        LocalResult::None => end_of_gap(zone, local).into_iter().collect(),
    }
}

/// Returns the first instant after the DST gap that contains the local time `local`.
fn end_of_gap(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let minute = local.and_utc().timestamp().div_euclid(60) * 60;
    let mut probe = DateTime::from_timestamp(minute, 0)?.naive_utc();
    // Gaps are at most a day long (Samoa skipped 2011-12-30).
    for _ in 0..=(26 * 60) {
        probe += TimeDelta::minutes(1);
        if let Some(time) = zone.from_local_datetime(&probe).earliest() {
            return Some(time.to_utc());
        }
    }
    None
}

/// Returns whether the minute or hour field starts with `*`, which Vixie cron treats as a
/// job that runs on real elapsed time rather than at fixed local times.
fn runs_on_real_time(cron: &Cron) -> bool {
    let mut fields = cron.pattern.as_str().split_whitespace();
    let minute = fields.next().unwrap_or("");
    let hour = fields.next().unwrap_or("");
    minute.starts_with('*') || hour.starts_with('*')
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
