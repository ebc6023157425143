//! Label matchers in the syntax of Alertmanager: `name = "value"`, `name != "value"`,
//! `name =~ "regex"` and `name !~ "regex"`. Regular expressions are anchored at both ends.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use crate::alert::Transition;

/// Labels of one alert: `alertname`, `probe`, `severity` and `location`.
pub type Labels = BTreeMap<&'static str, String>;

/// Returns the labels of the alert that `transition` belongs to.
pub fn labels_of(transition: &Transition) -> Labels {
    Labels::from([
        ("alertname", transition.rule.to_string()),
        ("probe", transition.probe.to_string()),
        ("severity", transition.severity.as_str().to_owned()),
        ("location", transition.location.to_string()),
    ])
}

/// Comparison a matcher applies to a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher. A missing label has the empty value, as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name, such as `severity`.
    pub name: String,
    pub op: MatchOp,
    /// Value or regular expression as written.
    pub value: String,
    /// The anchored regular expression of `=~` and `!~`.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Parses `name op "value"`; the quotes around the value are optional.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let trimmed = text.trim();
        let position = trimmed
            .find(['=', '!'])
            .ok_or_else(|| invalid(text, "it has no operator"))?;
        let name = trimmed[..position].trim();
        let rest = &trimmed[position..];
        let (op, value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchOp::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchOp::Equal, value)
        } else {
            return Err(invalid(text, "it has no operator"));
        };
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(invalid(text, "the label name must be letters, digits or _"));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(inner) => inner
                .strip_suffix('"')
                .ok_or_else(|| invalid(text, "the value has no closing quote"))?,
            None => value,
        };
        Matcher::new(name, op, value)
    }

    /// Builds a matcher, compiling the regular expression of `=~` and `!~`.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|error| format!("invalid regular expression {value:?}: {error}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Returns whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(self.name.as_str()).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(actual),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(actual),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} \"{}\"", self.name, self.op.as_str(), self.value)
    }
}

/// Returns whether every matcher accepts `labels`; an empty list accepts every alert.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

fn invalid(text: &str, reason: &str) -> String {
    format!("invalid matcher {text:?}: {reason}; write name = \"value\", !=, =~ or !~")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Labels {
        Labels::from([
            ("alertname", "High latency".to_owned()),
            ("probe", "me".to_owned()),
            ("severity", "P3".to_owned()),
        ])
    }

    #[test]
    fn operators_match() {
        let cases = [
            ("severity = \"P3\"", true),
            ("severity=P1", false),
            ("severity != \"P1\"", true),
            ("alertname =~ \"High.*\"", true),
            ("alertname =~ \"High\"", false),
            ("alertname !~ \"Auth.*\"", true),
            ("location = \"\"", true),
        ];
        for (text, expected) in cases {
            let matcher = Matcher::parse(text).unwrap();
            assert_eq!(matcher.matches(&labels()), expected, "{text}");
        }
    }

    #[test]
    fn invalid_matchers_rejected() {
        for text in [
            "severity",
            "= \"P1\"",
            "a b = c",
            "x =~ \"(\"",
            "x = \"open",
        ] {
            assert!(Matcher::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn display_parses_back() {
        let matcher = Matcher::parse(r#"alertname =~ "Auth \w+ \"x\"""#).unwrap();
        assert_eq!(Matcher::parse(&matcher.to_string()).unwrap(), matcher);
    }
}
