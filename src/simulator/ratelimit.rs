//! The team's request cost budget, refilled at each calendar minute.
//!
//! SalesLoft charges every request against a budget per team and minute (600 by default) and
//! charges deep pages more. The simulator serves one team, so it keeps one budget.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Default budget of cost units per minute.
pub const DEFAULT_BUDGET_PER_MINUTE: u32 = 600;

/// Returns the cost SalesLoft charges for a request of a list endpoint at this `page`.
pub fn page_cost(page: u64) -> u32 {
    match page {
        0..=100 => 1,
        101..=150 => 3,
        151..=250 => 8,
        251..=500 => 10,
        _ => 30,
    }
}

/// Form of the `Retry-After` header that gives the time the budget refills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryAfter {
    /// No `Retry-After` header, which is what SalesLoft is known to send.
    #[default]
    None,
    /// `Retry-After` as delta-seconds until the next minute, rounded up.
    Seconds,
    /// `Retry-After` as the HTTP-date of the next minute.
    HttpDate,
}

/// Outcome of charging a request against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// True when the budget covered the cost and the request goes ahead.
    pub allowed: bool,
    /// Cost of the request, sent as `x-ratelimit-endpoint-cost`.
    pub cost: u32,
    /// Budget left in the minute after this request, sent as `x-ratelimit-remaining-minute`.
    pub remaining: u32,
}

/// Cost units spent in the current calendar minute.
#[derive(Debug, Clone)]
pub struct Budget {
    per_minute: u32,
    minute: u64,
    spent: u32,
}

impl Budget {
    /// Creates a full budget of `per_minute` units.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            minute: 0,
            spent: 0,
        }
    }

    /// Budget per minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Changes the budget per minute; units spent this minute stay spent.
    pub fn set_per_minute(&mut self, per_minute: u32) {
        self.per_minute = per_minute;
    }

    fn roll(&mut self, now: SystemTime) {
        let minute = minute_of(now);
        if minute != self.minute {
            self.minute = minute;
            self.spent = 0;
        }
    }

    /// Returns the units left in the minute that contains `now`.
    pub fn remaining(&mut self, now: SystemTime) -> u32 {
        self.roll(now);
        self.per_minute.saturating_sub(self.spent)
    }

    /// Charges `cost` when the budget covers it, and rejects the request otherwise.
    pub fn charge(&mut self, now: SystemTime, cost: u32) -> Charge {
        let remaining = self.remaining(now);
        if cost > remaining {
            return Charge {
                allowed: false,
                cost,
                remaining,
            };
        }
        self.spent += cost;
        Charge {
            allowed: true,
            cost,
            remaining: remaining - cost,
        }
    }

    /// Spends `units` now as another client of the same team would, down to zero.
    pub fn consume(&mut self, now: SystemTime, units: u32) -> u32 {
        self.roll(now);
        self.spent = self.spent.saturating_add(units).min(self.per_minute);
        self.per_minute - self.spent
    }
}

fn minute_of(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

/// Returns the start of the calendar minute after `now`, when the budget refills.
pub fn next_minute(now: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((minute_of(now) + 1) * 60)
}

/// Returns the `Retry-After` header value for a 429 sent at `now`, if any.
pub fn retry_after_value(mode: RetryAfter, now: SystemTime) -> Option<String> {
    let reset = next_minute(now);
    match mode {
        RetryAfter::None => None,
        RetryAfter::Seconds => {
            let wait = reset.duration_since(now).unwrap_or_default();
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Some(seconds.to_string())
        }
        RetryAfter::HttpDate => Some(httpdate::fmt_http_date(reset)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn page_cost_tiers() {
        let cases = [(1, 1), (100, 1), (101, 3), (150, 3), (151, 8), (250, 8)];
        for (page, cost) in cases {
            assert_eq!(page_cost(page), cost, "page {page}");
        }
        let cases = [(251, 10), (500, 10), (501, 30), (10_000, 30)];
        for (page, cost) in cases {
            assert_eq!(page_cost(page), cost, "page {page}");
        }
    }

    #[test]
    fn budget_refills_at_minute_boundary() {
        let mut budget = Budget::new(10);
        assert_eq!(budget.charge(at(120), 8).remaining, 2);
        let rejected = budget.charge(at(150), 3);
        assert!(!rejected.allowed);
        assert_eq!(rejected.remaining, 2);
        let next = budget.charge(at(180), 3);
        assert!(next.allowed);
        assert_eq!(next.remaining, 7);
    }

    #[test]
    fn consume_stops_at_zero() {
        let mut budget = Budget::new(10);
        assert_eq!(budget.consume(at(60), 25), 0);
        assert!(!budget.charge(at(61), 1).allowed);
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_millis(125_500);
        assert_eq!(retry_after_value(RetryAfter::None, now), None);
        assert_eq!(
            retry_after_value(RetryAfter::Seconds, now).as_deref(),
            Some("55")
        );
        assert_eq!(
            retry_after_value(RetryAfter::HttpDate, now).as_deref(),
            Some("Thu, 01 Jan 1970 00:03:00 GMT")
        );
    }
}
