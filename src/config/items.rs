//! Validation of probes, rules and receivers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::raw::*;
use super::types::*;
use super::validate::{
    DEFAULT_INTERVAL, DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, MAX_TIMEOUT, MAX_WINDOW, MIN_PROBE_PERIOD,
    Validator,
};

const READ_BASELINE: Duration = Duration::from_millis(300);
const WRITE_BASELINE: Duration = Duration::from_millis(500);
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl Validator<'_> {
    pub(super) fn probes(&mut self, raw: Vec<RawProbe>) -> Vec<ProbeSpec> {
        let mut names = HashSet::new();
        let mut probes = Vec::with_capacity(raw.len());
        for (index, probe) in raw.into_iter().enumerate() {
            let key = format!("probe[{index}]");
            let name = probe.name.get_ref().trim().to_owned();
            if !self.plain_text(&probe.name, &format!("{key}.name")) {
                // Reported by `plain_text`.
            } else if name.is_empty() {
                let message = format!("invalid probe name {name:?}: use a short non-empty label");
                self.error(probe.name.span(), &format!("{key}.name"), message);
            } else if !names.insert(name.clone()) {
                let message = format!("duplicate probe name {name:?}: probe names must be unique");
                self.error(probe.name.span(), &format!("{key}.name"), message);
            }
            if let Some(spec) = self.probe(&key, &name, probe) {
                probes.push(spec);
            }
        }
        probes
    }

    fn probe(&mut self, key: &str, name: &str, raw: RawProbe) -> Option<ProbeSpec> {
        let method = raw
            .method
            .as_ref()
            .map_or("GET".to_owned(), |m| m.get_ref().to_uppercase());
        if !METHODS.contains(&method.as_str()) {
            let span = raw.method.as_ref().map(|m| m.span()).unwrap_or_default();
            let message = format!(
                "invalid method {method:?}: expected one of {}",
                METHODS.join(", ")
            );
            self.error(span, &format!("{key}.method"), message);
        }
        let path = raw.path.get_ref().trim().to_owned();
        if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
            let message = format!(
                "invalid path {path:?}: write the path and query after the base URL, \
                 starting with /, such as /v2/me.json"
            );
            self.error(raw.path.span(), &format!("{key}.path"), message);
        }
        let priority = self.priority(raw.priority.as_ref(), &format!("{key}.priority"));
        let schedule = self.schedule(key, name, &raw)?;
        let timeout = self.bounded(
            raw.timeout.as_ref(),
            &format!("{key}.timeout"),
            DEFAULT_TIMEOUT,
            MIN_PROBE_PERIOD,
            MAX_TIMEOUT,
        );
        let max_body = match &raw.max_body {
            Some(value) => self.size(value, &format!("{key}.max_body"))?,
            None => DEFAULT_MAX_BODY,
        };
        let expect_status = match &raw.expect_status {
            Some(value) => self.statuses(value, &format!("{key}.expect_status")),
            None => vec![200],
        };
        let mut assertions = Vec::new();
        for (path, check) in raw.expect_json.iter().flatten() {
            let check_key = format!("{key}.expect_json.{path:?}");
            match parse_check(check.get_ref()) {
                Some(check) => assertions.push(JsonAssertion {
                    path: path.clone(),
                    check,
                }),
                None => {
                    let message = format!(
                        "invalid check {:?}: expected one of present, string, integer, number, \
                         boolean, array, object, non_empty",
                        check.get_ref()
                    );
                    self.error(check.span(), &check_key, message);
                }
            }
        }
        let default_baseline = if matches!(method.as_str(), "GET" | "HEAD") {
            READ_BASELINE
        } else {
            WRITE_BASELINE
        };
        let latency_baseline = self.positive(
            raw.latency_baseline.as_ref(),
            &format!("{key}.latency_baseline"),
            default_baseline,
        );
        Some(ProbeSpec {
            name: Arc::from(name),
            method,
            path,
            schedule,
            timeout,
            max_body,
            expect_status,
            assertions,
            latency_baseline,
            priority,
        })
    }

    fn schedule(&mut self, key: &str, name: &str, raw: &RawProbe) -> Option<Schedule> {
        match (&raw.interval, &raw.cron) {
            (Some(_), Some(cron)) => {
                let message = "set either `interval` or `cron`, not both".to_owned();
                self.error(cron.span(), &format!("{key}.cron"), message);
                None
            }
            (_, Some(line)) => {
                let zone_name = raw
                    .timezone
                    .as_ref()
                    .map_or("UTC", |zone| zone.get_ref().as_str());
                let zone = match zone_name.parse::<chrono_tz::Tz>() {
                    Ok(zone) => Some(zone),
                    Err(_) => {
                        let span = raw
                            .timezone
                            .as_ref()
                            .map(|zone| zone.span())
                            .unwrap_or_default();
                        let message = format!(
                            "unknown time zone {zone_name:?}: use an IANA name such as \
                             Europe/Berlin or UTC"
                        );
                        self.error(span, &format!("{key}.timezone"), message);
                        None
                    }
                };
                let cron = self.cron(line, zone, &format!("{key}.cron"));
                Some(Schedule::Cron {
                    line: line.get_ref().clone(),
                    cron: Box::new(cron?),
                    zone: zone?,
                })
            }
            (interval, None) => {
                if let Some(zone) = &raw.timezone {
                    let message = "`timezone` applies only to `cron` schedules".to_owned();
                    self.error(zone.span(), &format!("{key}.timezone"), message);
                }
                let every = self.bounded(
                    interval.as_ref(),
                    &format!("{key}.interval"),
                    DEFAULT_INTERVAL,
                    MIN_PROBE_PERIOD,
                    MAX_WINDOW,
                );
                let splay = crate::probe::splay_for(name, every);
                Some(Schedule::Interval { every, splay })
            }
        }
    }

    /// Parses a cron line and checks that it runs at least once in the next five years.
    fn cron(
        &mut self,
        line: &Text,
        zone: Option<chrono_tz::Tz>,
        key: &str,
    ) -> Option<croner::Cron> {
        let text = line.get_ref().trim();
        let cron = match crate::probe::parse_cron(text) {
            Ok(cron) => cron,
            Err(reason) => {
                let prefix = format!("invalid cron line {text:?}: ");
                let reason = reason.strip_prefix(&prefix).unwrap_or(&reason);
                let message = match bad_cron_field(text) {
                    Some(field) => format!("invalid cron line {text:?}: {field}: {reason}"),
                    None => format!("invalid cron line {text:?}: {reason}"),
                };
                self.error(line.span(), key, message);
                return None;
            }
        };
        let now = chrono::Utc::now();
        let horizon = now + chrono::Duration::days(5 * 366);
        let next = crate::probe::next_cron_after(&cron, zone.unwrap_or(chrono_tz::UTC), now);
        if next.is_none_or(|next| next > horizon) {
            let message = format!(
                "cron line {text:?} never runs: it has no run in the next 5 years; check that \
                 the day of month exists in the month, such as 30 in February"
            );
            self.error(line.span(), key, message);
            return None;
        }
        Some(cron)
    }

    fn size(&mut self, value: &Spanned<RawSize>, key: &str) -> Option<usize> {
        let (parsed, shown) = match value.get_ref() {
            RawSize::Bytes(bytes) => (u64::try_from(*bytes).ok(), bytes.to_string()),
            RawSize::Text(text) => (parse_size(text), format!("{text:?}")),
        };
        let problem = match parsed {
            None => format!(
                "write a whole number of bytes or a number with one of the units {}, such as \
                 64KiB or 1MiB",
                SIZE_UNITS.map(|(unit, _)| unit).join(", ")
            ),
            Some(0) => {
                "zero is not allowed: the body of every response would be too large".to_owned()
            }
            Some(bytes) if bytes > MAX_BODY => format!(
                "the maximum is 64MiB ({MAX_BODY} bytes), so a larger response is the \
                 body_too_large outcome"
            ),
            Some(bytes) => return usize::try_from(bytes).ok(),
        };
        self.error(
            value.span(),
            key,
            format!("invalid size {shown}: {problem}"),
        );
        None
    }

    fn statuses(&mut self, value: &Spanned<Vec<i64>>, key: &str) -> Vec<u16> {
        let mut statuses = Vec::new();
        for status in value.get_ref() {
            match u16::try_from(*status) {
                Ok(status) if (100..=599).contains(&status) => statuses.push(status),
                _ => {
                    let message = format!("invalid HTTP status {status}: expected 100 to 599");
                    self.error(value.span(), key, message);
                }
            }
        }
        if value.get_ref().is_empty() {
            let message = "expect_status is empty: list at least one status, such as [200]";
            self.error(value.span(), key, message.to_owned());
        }
        statuses
    }
}

fn parse_check(text: &str) -> Option<JsonCheck> {
    Some(match text {
        "present" => JsonCheck::Present,
        "string" => JsonCheck::String,
        "integer" => JsonCheck::Integer,
        "number" => JsonCheck::Number,
        "boolean" => JsonCheck::Boolean,
        "array" => JsonCheck::Array,
        "object" => JsonCheck::Object,
        "non_empty" => JsonCheck::NonEmpty,
        _ => return None,
    })
}

/// Largest `max_body`: loftwatch reads a body in memory to check it.
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Units of `max_body` and their factors.
const SIZE_UNITS: [(&str, u64); 8] = [
    ("B", 1),
    ("kB", 1000),
    ("KB", 1000),
    ("KiB", 1024),
    ("MB", 1000 * 1000),
    ("MiB", 1024 * 1024),
    ("GB", 1000 * 1000 * 1000),
    ("GiB", 1024 * 1024 * 1024),
];

/// Parses `1024`, `64KiB`, `1MiB`, `10kB` or `2MB` into bytes; `None` when the text is not a
/// size or overflows.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim();
    let factor = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, factor)| *factor)?
    };
    number.checked_mul(factor)
}

/// Names the first field of a 5-field cron line that is invalid on its own, by parsing the
/// line with every other field set to `*`.
fn bad_cron_field(line: &str) -> Option<String> {
    const FIELDS: [(&str, &str); 5] = [
        ("minute", "0-59"),
        ("hour", "0-23"),
        ("day-of-month", "1-31"),
        ("month", "1-12 or jan-dec"),
        ("day-of-week", "0-7 or sun-sat"),
    ];
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        return None;
    }
    for (index, field) in fields.iter().enumerate() {
        let mut probe = vec!["*"; FIELDS.len()];
        probe[index] = field;
        if crate::probe::parse_cron(&probe.join(" ")).is_err() {
            let (name, range) = FIELDS[index];
            return Some(format!(
                "the {name} field {field:?} is invalid (allowed: {range})"
            ));
        }
    }
    None
}
