//! Maintenance windows: a cron line gives each window's start in an IANA time zone, and the
//! window lasts `duration`. Notifications of matching alerts are muted inside a window.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::matcher::{Labels, Matcher, all_match};
use crate::probe::next_cron_after;

/// One `[[maintenance]]` window.
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    /// Name shown in logs, such as `weekly deploy`.
    pub name: String,
    /// The cron line as written, such as `0 2 * * 0`.
    pub line: String,
    /// The parsed cron line; each match starts a window.
    pub cron: Box<Cron>,
    /// Time zone the cron line is read in.
    pub zone: Tz,
    /// Length of each window.
    pub duration: Duration,
    /// Matchers an alert must satisfy to be muted; an empty list mutes every alert.
    pub matchers: Vec<Matcher>,
}

impl PartialEq for MaintenanceWindow {
    fn eq(&self, other: &MaintenanceWindow) -> bool {
        self.name == other.name
            && self.line == other.line
            && self.zone == other.zone
            && self.duration == other.duration
            && self.matchers == other.matchers
    }
}

impl MaintenanceWindow {
    /// Returns whether a window is open at `now`: a cron match `start` exists with
    /// `start <= now < start + duration`.
    pub fn is_open(&self, now: SystemTime) -> bool {
        let now: DateTime<Utc> = now.into();
        let Ok(duration) = chrono::TimeDelta::from_std(self.duration) else {
            return false;
        };
        let Some(earliest) = now.checked_sub_signed(duration) else {
            return false;
        };
        // The first start strictly after `now - duration` opens a window that still covers
        // `now` when it is not later than `now`.
        next_cron_after(&self.cron, self.zone, earliest).is_some_and(|start| start <= now)
    }

    /// Returns whether the window is open at `now` and matches `labels`.
    pub fn mutes(&self, labels: &Labels, now: SystemTime) -> bool {
        all_match(&self.matchers, labels) && self.is_open(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse_cron;

    fn window(line: &str, zone: &str, minutes: u64) -> MaintenanceWindow {
        MaintenanceWindow {
            name: "deploy".to_owned(),
            line: line.to_owned(),
            cron: Box::new(parse_cron(line).unwrap()),
            zone: zone.parse().unwrap(),
            duration: Duration::from_secs(minutes * 60),
            matchers: vec![Matcher::parse("probe = \"me\"").unwrap()],
        }
    }

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc().into()
    }

    #[test]
    fn window_open_from_start_to_end() {
        // Sundays 02:00 in Berlin, which is 01:00 UTC in winter, for 30 minutes.
        let window = window("0 2 * * 0", "Europe/Berlin", 30);
        assert!(!window.is_open(at("2026-12-06T00:59:59Z")));
        assert!(window.is_open(at("2026-12-06T01:00:00Z")));
        assert!(window.is_open(at("2026-12-06T01:29:59Z")));
        assert!(!window.is_open(at("2026-12-06T01:30:00Z")));
        assert!(!window.is_open(at("2026-12-07T01:10:00Z")));
    }

    #[test]
    fn window_mutes_matching_alerts() {
        let window = window("0 2 * * 0", "Europe/Berlin", 30);
        let inside = at("2026-12-06T01:10:00Z");
        let me = Labels::from([("probe", "me".to_owned())]);
        let team = Labels::from([("probe", "team".to_owned())]);
        assert!(window.mutes(&me, inside));
        assert!(!window.mutes(&team, inside));
    }
}
