//! The team's rate budget: what probes cost, and the budget left as the last response said.
//!
//! SalesLoft gives each team a cost budget per minute (600 by default), shared by every
//! integration and key of the team. Each request costs 1, except deep pages, which cost more
//! by the `page` query parameter. Every response carries `x-ratelimit-remaining-minute`,
//! which [`RateBudget`] keeps per host so low-priority probes can pause before the team's
//! own integrations run out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::time::Instant;

use super::until_next_minute;

/// Default team budget per minute.
pub const DEFAULT_BUDGET_PER_MINUTE: u32 = 600;
/// Default share of the budget that loftwatch's own probes may spend.
pub const DEFAULT_BUDGET_SHARE: f64 = 0.02;
/// Default share of the budget under which low-priority probes pause.
pub const DEFAULT_BUDGET_FLOOR: f64 = 0.10;
/// Largest `page` accepted in a probe path: deeper pages cost 3 to 30.
pub const MAX_CHEAP_PAGE: u64 = 100;

/// The `[salesloft]` keys of the rate budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// `budget_per_minute`: the team's budget per minute.
    pub per_minute: u32,
    /// `budget_share`: fraction of `per_minute` the configured probes may cost, 0 to 1.
    pub share: f64,
    /// `budget_floor`: fraction of `per_minute` under which low-priority probes pause.
    pub floor: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        BudgetSettings {
            per_minute: DEFAULT_BUDGET_PER_MINUTE,
            share: DEFAULT_BUDGET_SHARE,
            floor: DEFAULT_BUDGET_FLOOR,
        }
    }
}

impl BudgetSettings {
    /// Returns the cost per minute the configured probes may spend.
    pub fn allowed_cost(&self) -> f64 {
        f64::from(self.per_minute) * self.share
    }

    /// Returns the remaining budget under which low-priority probes pause.
    pub fn floor_remaining(&self) -> u32 {
        (f64::from(self.per_minute) * self.floor).ceil() as u32
    }
}

/// Returns the cost of one request for `page`, by SalesLoft's deep-page table.
pub fn page_cost(page: u64) -> u32 {
    match page {
        0..=100 => 1,
        101..=150 => 3,
        151..=250 => 8,
        251..=500 => 10,
        _ => 30,
    }
}

/// Returns the `page` query parameter of `path`, if it has one that is a number.
pub fn page_of(path: &str) -> Option<u64> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "page")
        .and_then(|(_, value)| value.parse().ok())
}

/// Returns the cost of one request to `path`.
pub fn path_cost(path: &str) -> u32 {
    page_of(path).map_or(1, page_cost)
}

/// The latest `x-ratelimit-remaining-minute` seen per host, valid until the end of the
/// calendar minute it was seen in, when SalesLoft's budget starts again.
#[derive(Debug, Default)]
pub struct RateBudget {
    remaining: Mutex<HashMap<String, (u32, Instant)>>,
}

impl RateBudget {
    /// Creates an empty record.
    pub fn new() -> RateBudget {
        RateBudget::default()
    }

    /// Records the remaining budget of the latest response from `host`.
    pub fn record(&self, host: &str, remaining: u32) {
        let valid_until = Instant::now() + until_next_minute(SystemTime::now());
        self.lock()
            .insert(host.to_owned(), (remaining, valid_until));
    }

    /// Returns the latest remaining budget seen from `host` in the current minute.
    pub fn remaining(&self, host: &str) -> Option<u32> {
        let (remaining, valid_until) = self.lock().get(host).copied()?;
        (Instant::now() < valid_until).then_some(remaining)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.remaining
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_cost_follows_table() {
        let cases = [
            (1, 1),
            (100, 1),
            (101, 3),
            (150, 3),
            (151, 8),
            (250, 8),
            (251, 10),
            (500, 10),
            (501, 30),
        ];
        for (page, cost) in cases {
            assert_eq!(page_cost(page), cost, "page {page}");
        }
    }

    #[test]
    fn path_cost_reads_page() {
        assert_eq!(path_cost("/v2/me.json"), 1);
        assert_eq!(path_cost("/v2/people.json?per_page=1&page=120"), 3);
        assert_eq!(path_cost("/v2/people.json?page=600"), 30);
        assert_eq!(path_cost("/v2/people.json?per_page=600"), 1);
    }

    #[test]
    fn floor_is_a_share_of_the_limit() {
        assert_eq!(BudgetSettings::default().floor_remaining(), 60);
        assert!((BudgetSettings::default().allowed_cost() - 12.0).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_budget_expires_at_minute_end() {
        let budget = RateBudget::new();
        budget.record("a:443", 20);
        tokio::time::advance(std::time::Duration::from_secs(61)).await;
        assert_eq!(budget.remaining("a:443"), None);
    }

    #[tokio::test]
    async fn rate_budget_keeps_latest() {
        let budget = RateBudget::new();
        budget.record("a:443", 500);
        budget.record("a:443", 20);
        assert_eq!(budget.remaining("a:443"), Some(20));
        assert_eq!(budget.remaining("b:443"), None);
    }
}
