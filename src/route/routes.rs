//! Routes: which receivers get an alert, and how its notifications are grouped and repeated.

use std::time::Duration;

use super::inhibit::InhibitRule;
use super::maintenance::MaintenanceWindow;
use super::matcher::{Labels, Matcher, all_match};
use crate::alert::Severity;

/// `group_wait` of alerts of severity P2 and P3 when no route sets it. It is shorter than the
/// 30 s of Alertmanager because a burst of results is evaluated in one pass here, so alerts that
/// belong together fire within a few evaluations of each other.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(5);
/// `group_wait` of P1 alerts when no route sets it: none, so that a page leaves within a second
/// of the first bad response.
pub const DEFAULT_GROUP_WAIT_P1: Duration = Duration::ZERO;
/// Default `group_interval`, as in Alertmanager.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default `repeat_interval`, as in Alertmanager.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// Returns the default `group_by`: `alertname` and `probe`.
pub fn default_group_by() -> Vec<String> {
    vec!["alertname".to_owned(), "probe".to_owned()]
}

/// Grouping and repeat settings of a route, or of every route in `[routing]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// Labels whose values form the group key.
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group. `None` means
    /// [`DEFAULT_GROUP_WAIT_P1`] for P1 alerts and [`DEFAULT_GROUP_WAIT`] for the others.
    pub group_wait: Option<Duration>,
    /// Wait between two notifications of one group.
    pub group_interval: Duration,
    /// Wait before a still-firing alert is notified again.
    pub repeat_interval: Duration,
}

impl Default for GroupSettings {
    fn default() -> GroupSettings {
        GroupSettings {
            group_by: default_group_by(),
            group_wait: None,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
        }
    }
}

impl GroupSettings {
    /// Returns the `group_wait` that applies to an alert of `severity`.
    pub fn group_wait_for(&self, severity: Severity) -> Duration {
        match (self.group_wait, severity) {
            (Some(wait), _) => wait,
            (None, Severity::P1) => DEFAULT_GROUP_WAIT_P1,
            (None, _) => DEFAULT_GROUP_WAIT,
        }
    }

    /// Returns the group key of `labels`: the `group_by` values joined in order.
    pub fn group_key(&self, labels: &Labels) -> String {
        let values: Vec<&str> = self
            .group_by
            .iter()
            .map(|name| labels.get(name.as_str()).map_or("", String::as_str))
            .collect();
        values.join("\u{1f}")
    }
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Matchers an alert must satisfy to take this route; an empty list matches every alert.
    pub matchers: Vec<Matcher>,
    /// Receiver names such as `email` and `otlp`; `None` means every running receiver.
    pub receivers: Option<Vec<String>>,
    /// `continue`: whether later routes are tried after this one matched.
    pub continue_matching: bool,
    pub settings: GroupSettings,
}

/// The validated `[routing]`, `[[route]]`, `[[inhibit]]` and `[[maintenance]]` tables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoutingConfig {
    /// Settings of the default route, which sends to every running receiver an alert that no
    /// route matched, and the defaults of every route.
    pub defaults: GroupSettings,
    pub routes: Vec<RouteSpec>,
    pub inhibit: Vec<InhibitRule>,
    pub maintenance: Vec<MaintenanceWindow>,
}

/// A route that an alert took: its index in [`RoutingConfig::routes`], or `None` for the
/// default route, and the receivers it claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: Option<usize>,
    pub receivers: Vec<&'static str>,
}

impl RoutingConfig {
    /// Returns the routes that `labels` take in order, each with the running receivers it
    /// sends to. A receiver claimed by an earlier route is left out of later ones, so an alert
    /// reaches each receiver once. When no route matches, the default route sends to every
    /// running receiver.
    pub fn routes_for(&self, labels: &Labels, running: &[&'static str]) -> Vec<RouteMatch> {
        let mut claimed: Vec<&'static str> = Vec::new();
        let mut matches = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if !all_match(&route.matchers, labels) {
                continue;
            }
            let receivers: Vec<&'static str> = running
                .iter()
                .copied()
                .filter(|name| !claimed.contains(name))
                .filter(|name| match &route.receivers {
                    Some(wanted) => wanted.iter().any(|wanted| wanted == name),
                    None => true,
                })
                .collect();
            claimed.extend(&receivers);
            matches.push(RouteMatch {
                route: Some(index),
                receivers,
            });
            if !route.continue_matching {
                break;
            }
        }
        if matches.is_empty() {
            matches.push(RouteMatch {
                route: None,
                receivers: running.to_vec(),
            });
        }
        matches
    }

    /// Returns the settings of route `route`, or the defaults for the default route.
    pub fn settings(&self, route: Option<usize>) -> &GroupSettings {
        route
            .and_then(|index| self.routes.get(index))
            .map_or(&self.defaults, |route| &route.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(matcher: &str, receivers: &[&str], continue_matching: bool) -> RouteSpec {
        RouteSpec {
            matchers: vec![Matcher::parse(matcher).unwrap()],
            receivers: Some(receivers.iter().map(|name| name.to_string()).collect()),
            continue_matching,
            settings: GroupSettings::default(),
        }
    }

    fn labels(severity: &str) -> Labels {
        Labels::from([("severity", severity.to_owned())])
    }

    #[test]
    fn first_match_wins_without_continue() {
        let config = RoutingConfig {
            routes: vec![
                route("severity = \"P1\"", &["email", "otlp"], false),
                route("severity =~ \"P.\"", &["otlp"], false),
            ],
            ..RoutingConfig::default()
        };
        let running = ["email", "otlp"];
        let p1 = config.routes_for(&labels("P1"), &running);
        assert_eq!(p1.len(), 1);
        assert_eq!(p1[0].receivers, ["email", "otlp"]);
        let p3 = config.routes_for(&labels("P3"), &running);
        assert_eq!(p3[0].route, Some(1));
        assert_eq!(p3[0].receivers, ["otlp"]);
    }

    #[test]
    fn continue_claims_each_receiver_once() {
        let config = RoutingConfig {
            routes: vec![
                route("severity = \"P1\"", &["email"], true),
                route("severity =~ \"P.\"", &["email", "otlp"], false),
            ],
            ..RoutingConfig::default()
        };
        let matches = config.routes_for(&labels("P1"), &["email", "otlp"]);
        assert_eq!(matches.len(), 2);
        assert_eq!(matches[0].receivers, ["email"]);
        assert_eq!(matches[1].receivers, ["otlp"]);
    }

    #[test]
    fn unmatched_takes_default_route() {
        let config = RoutingConfig {
            routes: vec![route("severity = \"P1\"", &["email"], false)],
            ..RoutingConfig::default()
        };
        let matches = config.routes_for(&labels("P2"), &["email", "otlp"]);
        assert_eq!(matches.len(), 1);
        assert_eq!(matches[0].route, None);
        assert_eq!(matches[0].receivers, ["email", "otlp"]);
    }

    #[test]
    fn p1_group_wait_defaults_to_zero() {
        let settings = GroupSettings::default();
        assert_eq!(settings.group_wait_for(Severity::P1), Duration::ZERO);
        assert_eq!(settings.group_wait_for(Severity::P3), DEFAULT_GROUP_WAIT);
    }
}
