//! Validation of `[routing]`, `[[route]]`, `[[inhibit]]` and `[[maintenance]]`.

use std::time::Duration;

use super::raw::{RawGroupSettings, RawInhibit, RawMaintenance, RawRoute, Text};
use super::validate::Validator;
use crate::probe::parse_cron;
use crate::route::{
    GroupSettings, InhibitRule, MaintenanceWindow, Matcher, RouteSpec, RoutingConfig,
};

/// Receiver names a route may list.
const RECEIVER_NAMES: [&str; 3] = ["email", "otlp", "file"];

impl Validator<'_> {
    pub(super) fn routing(
        &mut self,
        defaults: Option<RawGroupSettings>,
        routes: Vec<RawRoute>,
        inhibit: Vec<RawInhibit>,
        maintenance: Vec<RawMaintenance>,
    ) -> RoutingConfig {
        let defaults = defaults.unwrap_or_default();
        let defaults = self.group_settings(
            "routing",
            &GroupSettings::default(),
            defaults.group_by.as_deref(),
            [
                defaults.group_wait.as_ref(),
                defaults.group_interval.as_ref(),
                defaults.repeat_interval.as_ref(),
            ],
        );
        let routes = routes
            .iter()
            .enumerate()
            .map(|(index, raw)| self.route(&format!("route[{index}]"), raw, &defaults))
            .collect();
        let inhibit = inhibit
            .iter()
            .enumerate()
            .map(|(index, raw)| self.inhibit_rule(&format!("inhibit[{index}]"), raw))
            .collect();
        let maintenance = maintenance
            .iter()
            .enumerate()
            .filter_map(|(index, raw)| self.maintenance(&format!("maintenance[{index}]"), raw))
            .collect();
        RoutingConfig {
            defaults,
            routes,
            inhibit,
            maintenance,
        }
    }

    fn route(&mut self, key: &str, raw: &RawRoute, defaults: &GroupSettings) -> RouteSpec {
        let matchers = self.matchers(&format!("{key}.matchers"), &raw.matchers);
        let receivers = raw.receivers.as_ref().map(|names| {
            names
                .iter()
                .filter_map(|name| {
                    let text = name.get_ref().trim();
                    if RECEIVER_NAMES.contains(&text) {
                        return Some(text.to_owned());
                    }
                    let message = format!(
                        "unknown receiver {text:?}: use {}",
                        RECEIVER_NAMES.join(", ")
                    );
                    self.error(name.span(), &format!("{key}.receivers"), message);
                    None
                })
                .collect()
        });
        let settings = self.group_settings(
            key,
            defaults,
            raw.group_by.as_deref(),
            [
                raw.group_wait.as_ref(),
                raw.group_interval.as_ref(),
                raw.repeat_interval.as_ref(),
            ],
        );
        RouteSpec {
            matchers,
            receivers,
            continue_matching: raw.continue_matching,
            settings,
        }
    }

    /// Reads `group_by` and the three durations (`group_wait`, `group_interval`,
    /// `repeat_interval`), each falling back to `defaults`.
    fn group_settings(
        &mut self,
        key: &str,
        defaults: &GroupSettings,
        group_by: Option<&[Text]>,
        [wait, interval, repeat]: [Option<&Text>; 3],
    ) -> GroupSettings {
        let group_by = match group_by {
            Some(labels) => labels
                .iter()
                .map(|label| label.get_ref().trim().to_owned())
                .collect(),
            None => defaults.group_by.clone(),
        };
        let group_wait = match wait {
            Some(value) => self.duration(value, &format!("{key}.group_wait")),
            None => defaults.group_wait,
        };
        let group_interval = self.positive(
            interval,
            &format!("{key}.group_interval"),
            defaults.group_interval,
        );
        let repeat_interval = self.positive(
            repeat,
            &format!("{key}.repeat_interval"),
            defaults.repeat_interval,
        );
        GroupSettings {
            group_by,
            group_wait,
            group_interval,
            repeat_interval,
        }
    }

    fn inhibit_rule(&mut self, key: &str, raw: &RawInhibit) -> InhibitRule {
        let source_key = format!("{key}.source_matchers");
        if raw.source_matchers.is_empty() {
            let message = "missing source_matchers: an empty list would let every firing \
                           alert inhibit the targets"
                .to_owned();
            self.error(0..0, &source_key, message);
        }
        InhibitRule {
            source: self.matchers(&source_key, &raw.source_matchers),
            target: self.matchers(&format!("{key}.target_matchers"), &raw.target_matchers),
            equal: raw
                .equal
                .iter()
                .map(|label| label.get_ref().trim().to_owned())
                .collect(),
        }
    }

    fn maintenance(&mut self, key: &str, raw: &RawMaintenance) -> Option<MaintenanceWindow> {
        let matchers = self.matchers(&format!("{key}.matchers"), &raw.matchers);
        let cron = match parse_cron(raw.cron.get_ref()) {
            Ok(cron) => Some(cron),
            Err(message) => {
                self.error(raw.cron.span(), &format!("{key}.cron"), message);
                None
            }
        };
        let duration = self.positive(
            Some(&raw.duration),
            &format!("{key}.duration"),
            Duration::ZERO,
        );
        let zone = match &raw.timezone {
            None => Some(chrono_tz::UTC),
            Some(name) => match name.get_ref().trim().parse::<chrono_tz::Tz>() {
                Ok(zone) => Some(zone),
                Err(_) => {
                    let message = format!(
                        "unknown time zone {:?}: use an IANA name such as Europe/Berlin or UTC",
                        name.get_ref()
                    );
                    self.error(name.span(), &format!("{key}.timezone"), message);
                    None
                }
            },
        };
        Some(MaintenanceWindow {
            name: raw.name.get_ref().clone(),
            line: raw.cron.get_ref().trim().to_owned(),
            cron: Box::new(cron?),
            zone: zone?,
            duration,
            matchers,
        })
    }

    fn matchers(&mut self, key: &str, texts: &[Text]) -> Vec<Matcher> {
        texts
            .iter()
            .filter_map(|text| match Matcher::parse(text.get_ref()) {
                Ok(matcher) => Some(matcher),
                Err(message) => {
                    self.error(text.span(), key, message);
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::alert::Severity;

    const BASE: &str = "[salesloft]\ncredential = { env = \"T\" }\n\
                        [[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";

    #[test]
    fn routing_tables_parsed() {
        let text = format!(
            "{BASE}[routing]\ngroup_wait = \"2s\"\nrepeat_interval = \"1h\"\n\
             [[route]]\nmatchers = ['severity = \"P1\"']\nreceivers = [\"email\"]\n\
             continue = true\ngroup_interval = \"1m\"\n\
             [[inhibit]]\nsource_matchers = ['alertname = \"Auth down\"']\n\
             target_matchers = ['alertname =~ \"High latency|API errors\"']\nequal = [\"probe\"]\n\
             [[maintenance]]\nname = \"deploy\"\ncron = \"0 2 * * 0\"\nduration = \"30m\"\n\
             timezone = \"Europe/Berlin\"\nmatchers = ['probe = \"me\"']\n"
        );
        let config = crate::config::parse(&text, "alerts.toml").unwrap();
        let routing = config.routing;
        assert_eq!(
            routing.defaults.group_wait_for(Severity::P1),
            Duration::from_secs(2)
        );
        assert_eq!(routing.routes.len(), 1);
        let route = &routing.routes[0];
        assert!(route.continue_matching);
        assert_eq!(route.receivers, Some(vec!["email".to_owned()]));
        assert_eq!(route.settings.group_interval, Duration::from_secs(60));
        assert_eq!(route.settings.repeat_interval, Duration::from_secs(3600));
        assert_eq!(routing.inhibit.len(), 1);
        assert_eq!(routing.maintenance.len(), 1);
        assert_eq!(routing.maintenance[0].zone, chrono_tz::Europe::Berlin);
    }

    #[test]
    fn shipped_inhibit_rule_is_default() {
        let config = crate::config::parse(crate::config::DEFAULT_CONFIG, "alerts.toml").unwrap();
        assert_eq!(
            config.routing.inhibit,
            [crate::route::default_inhibit_rule()]
        );
        assert!(config.routing.routes.is_empty());
    }

    #[test]
    fn invalid_routing_keys_rejected() {
        let cases = [
            ("[[route]]\nreceivers = [\"pager\"]\n", "route[0].receivers"),
            ("[[route]]\nmatchers = ['severity']\n", "route[0].matchers"),
            (
                "[routing]\ngroup_interval = \"0s\"\n",
                "routing.group_interval",
            ),
            (
                "[[maintenance]]\nname = \"m\"\ncron = \"0 2 * *\"\nduration = \"1h\"\n",
                "maintenance[0].cron",
            ),
            (
                "[[maintenance]]\nname = \"m\"\ncron = \"0 2 * * 0\"\nduration = \"1h\"\n\
                 timezone = \"Mars/Olympus\"\n",
                "maintenance[0].timezone",
            ),
            (
                "[[inhibit]]\ntarget_matchers = ['probe = \"me\"']\n",
                "inhibit[0].source_matchers",
            ),
        ];
        for (table, key) in cases {
            let text = format!("{BASE}{table}");
            let error = crate::config::parse(&text, "alerts.toml").unwrap_err();
            assert!(
                error.issues.iter().any(|issue| issue.key == key),
                "{key}: {error}"
            );
        }
    }
}
