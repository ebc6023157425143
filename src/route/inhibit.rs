//! Inhibition: a firing source alert mutes the notifications of target alerts that have the
//! same values for the `equal` labels, as in Alertmanager.

use super::matcher::{Labels, Matcher, all_match};

/// One `[[inhibit]]` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    /// `source_matchers`: what a firing alert must match to inhibit others.
    pub source: Vec<Matcher>,
    /// `target_matchers`: what a muted alert must match.
    pub target: Vec<Matcher>,
    /// `equal`: labels whose values the source and the target must share, such as `probe`.
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Returns whether one of `firing` inhibits the alert with labels `target`. An alert never
    /// inhibits itself, so a rule whose source and target matchers both match one alert does not
    /// mute it.
    pub fn inhibits(&self, target: &Labels, firing: &[Labels]) -> bool {
        if !all_match(&self.target, target) {
            return false;
        }
        firing.iter().any(|source| {
            source != target
                && all_match(&self.source, source)
                && self
                    .equal
                    .iter()
                    .all(|name| source.get(name.as_str()) == target.get(name.as_str()))
        })
    }
}

/// Returns the default rule: a firing `Auth down` mutes `High latency` and `API errors` of
/// the same probe, because every request fails with 401 then and the other two only repeat it.
pub fn default_inhibit_rule() -> InhibitRule {
    InhibitRule {
        source: vec![Matcher::parse("alertname = \"Auth down\"").expect("valid matcher")],
        target: vec![
            Matcher::parse("alertname =~ \"High latency|API errors\"").expect("valid matcher"),
        ],
        equal: vec!["probe".to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, probe: &str) -> Labels {
        Labels::from([("alertname", name.to_owned()), ("probe", probe.to_owned())])
    }

    #[test]
    fn auth_down_mutes_same_probe_only() {
        let rule = default_inhibit_rule();
        let firing = [alert("Auth down", "me")];
        assert!(rule.inhibits(&alert("High latency", "me"), &firing));
        assert!(rule.inhibits(&alert("API errors", "me"), &firing));
        assert!(!rule.inhibits(&alert("High latency", "team"), &firing));
        assert!(!rule.inhibits(&alert("Rate limited", "me"), &firing));
        assert!(!rule.inhibits(&alert("High latency", "me"), &[]));
    }

    #[test]
    fn alert_never_inhibits_itself() {
        let rule = InhibitRule {
            source: vec![Matcher::parse("probe = \"me\"").unwrap()],
            target: vec![Matcher::parse("probe = \"me\"").unwrap()],
            equal: Vec::new(),
        };
        let only = alert("API errors", "me");
        assert!(!rule.inhibits(&only, std::slice::from_ref(&only)));
        assert!(rule.inhibits(&only, &[only.clone(), alert("Auth down", "me")]));
    }
}
