//! The breaker and rate-budget keys of `[salesloft]`, probe priorities, and the cost check of
//! `loftwatch validate`.
//!
//! The cost check is not part of loading, so `loftwatch run` accepts fast test schedules
//! against the simulator. `loftwatch validate` runs it and rejects a configuration whose
//! probes would spend more than `budget_share` of the team's budget, or that requests a page
//! past 100, where SalesLoft charges 3 to 30 per request.

use toml::Spanned;

use super::error::{ConfigError, Positions};
use super::raw::{RawConfig, RawSalesloft, Text};
use super::types::{Config, Priority, ProbeSpec, Schedule};
use super::validate::Validator;
use crate::salesloft::{BreakerSettings, BudgetSettings, MAX_CHEAP_PAGE, page_cost, page_of};

/// The cost per minute of one probe, as `loftwatch validate` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCost {
    /// Name of the probe.
    pub probe: String,
    /// Cost of one request, from the `page` of its path.
    pub request_cost: u32,
    /// Runs per minute: 60 / interval, or at most 1 for a cron schedule.
    pub runs_per_minute: f64,
}

impl ProbeCost {
    /// Returns the probe's cost per minute.
    pub fn per_minute(&self) -> f64 {
        self.runs_per_minute * f64::from(self.request_cost)
    }
}

/// The probes' cost against the configured share of the team's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetReport {
    /// One entry per probe, in file order.
    pub probes: Vec<ProbeCost>,
    /// Sum of the probes' cost per minute.
    pub total: f64,
    /// Cost per minute the probes may spend: `budget_per_minute * budget_share`.
    pub allowed: f64,
}

/// Returns the cost per minute of `spec`, ignoring retries.
pub fn cost_per_minute(spec: &ProbeSpec) -> ProbeCost {
    let runs_per_minute = match &spec.schedule {
        Schedule::Interval { every, .. } => 60.0 / every.as_secs_f64().max(0.001),
        // crontab(5) lines have minute resolution, so a cron probe runs at most once a minute.
        Schedule::Cron { .. } => 1.0,
    };
    ProbeCost {
        probe: spec.name.to_string(),
        request_cost: page_of(&spec.path).map_or(1, page_cost),
        runs_per_minute,
    }
}

/// Checks the probes of `config`, loaded from `text`, against the rate budget. Errors point
/// at each path with a page over 100, and at `budget_share` (or the costliest probe) when the
/// total is too high.
pub fn check_budget(config: &Config, text: &str, file: &str) -> Result<BudgetReport, ConfigError> {
    let probes: Vec<ProbeCost> = config.probes.iter().map(cost_per_minute).collect();
    let total: f64 = probes.iter().map(ProbeCost::per_minute).sum();
    let allowed = config.salesloft.budget.allowed_cost();
    let report = BudgetReport {
        probes,
        total,
        allowed,
    };

    // The text was loaded into `config` already, so it parses; spans come from a second read.
    let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError {
        file: file.to_owned(),
        issues: vec![Positions::new(text).issue(0..0, "", error.message().to_owned())],
    })?;
    let positions = Positions::new(text);
    let mut issues = Vec::new();
    for (index, probe) in raw.probe.iter().enumerate() {
        let Some(page) = page_of(probe.path.get_ref()) else {
            continue;
        };
        if page > MAX_CHEAP_PAGE {
            let message = format!(
                "page {page} costs {} per request, pages up to {MAX_CHEAP_PAGE} cost 1: \
                 probe a page of {MAX_CHEAP_PAGE} or less",
                page_cost(page)
            );
            issues.push(positions.issue(
                probe.path.span(),
                &format!("probe[{index}].path"),
                message,
            ));
        }
    }
    if report.total > report.allowed + 1e-9 {
        let share_span = raw
            .salesloft
            .as_ref()
            .and_then(|salesloft| salesloft.budget_share.as_ref())
            .map(Spanned::span);
        let costliest = report
            .probes
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.per_minute().total_cmp(&b.1.per_minute()))
            .map_or(0, |(index, _)| index);
        let (span, key) = match share_span {
            Some(span) => (span, "salesloft.budget_share".to_owned()),
            None => (
                raw.probe
                    .get(costliest)
                    .map_or(0..0, |probe| probe.name.span()),
                format!("probe[{costliest}]"),
            ),
        };
        let message = format!(
            "probes cost {:.1} per minute, over budget_share {} of budget_per_minute {} ({:.1}): \
             lengthen intervals, remove probes or raise salesloft.budget_share",
            report.total,
            config.salesloft.budget.share,
            config.salesloft.budget.per_minute,
            report.allowed
        );
        issues.push(positions.issue(span, &key, message));
    }
    if issues.is_empty() {
        Ok(report)
    } else {
        Err(ConfigError {
            file: file.to_owned(),
            issues,
        })
    }
}

impl Validator<'_> {
    /// Reads `breaker_failures` and `breaker_open_for`.
    pub(super) fn breaker(&mut self, raw: &RawSalesloft) -> BreakerSettings {
        let mut settings = BreakerSettings::default();
        if let Some(value) = &raw.breaker_failures {
            match u32::try_from(*value.get_ref()) {
                Ok(failures) if failures >= 1 => settings.failures = failures,
                _ => {
                    let message = format!(
                        "invalid breaker_failures {}: use a whole number of 1 or more",
                        value.get_ref()
                    );
                    self.error(value.span(), "salesloft.breaker_failures", message);
                }
            }
        }
        settings.open_for = self.positive(
            raw.breaker_open_for.as_ref(),
            "salesloft.breaker_open_for",
            settings.open_for,
        );
        settings
    }

    /// Reads `budget_per_minute`, `budget_share` and `budget_floor`.
    pub(super) fn budget(&mut self, raw: &RawSalesloft) -> BudgetSettings {
        let mut settings = BudgetSettings::default();
        if let Some(value) = &raw.budget_per_minute {
            match u32::try_from(*value.get_ref()) {
                Ok(limit) if limit >= 1 => settings.per_minute = limit,
                _ => {
                    let message = format!(
                        "invalid budget_per_minute {}: use the team's cost budget per minute, \
                         600 unless SalesLoft changed it",
                        value.get_ref()
                    );
                    self.error(value.span(), "salesloft.budget_per_minute", message);
                }
            }
        }
        if let Some(share) = self.fraction(raw.budget_share.as_ref(), "salesloft.budget_share") {
            settings.share = share;
        }
        if let Some(floor) = self.fraction(raw.budget_floor.as_ref(), "salesloft.budget_floor") {
            settings.floor = floor;
        }
        settings
    }

    fn fraction(&mut self, value: Option<&Spanned<f64>>, key: &str) -> Option<f64> {
        let value = value?;
        let number = *value.get_ref();
        if (0.0..=1.0).contains(&number) {
            return Some(number);
        }
        let message = format!("invalid {key} {number}: use a fraction from 0 to 1, such as 0.1");
        self.error(value.span(), key, message);
        None
    }

    /// Reads a probe's `priority`: `normal` (the default) or `low`.
    pub(super) fn priority(&mut self, value: Option<&Text>, key: &str) -> Priority {
        let Some(value) = value else {
            return Priority::Normal;
        };
        match value.get_ref().trim() {
            "normal" => Priority::Normal,
            "low" => Priority::Low,
            other => {
                let message = format!("invalid priority {other:?}: use \"normal\" or \"low\"");
                self.error(value.span(), key, message);
                Priority::Normal
            }
        }
    }
}
