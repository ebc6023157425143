//! Validation of alert rules and receivers.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::raw::*;
use super::types::*;
use super::validate::{DEFAULT_WINDOW, MAX_WINDOW, Validator};
use crate::alert::Severity;

/// Placeholders of a rule's summary template.
const PLACEHOLDERS: [&str; 4] = ["value", "threshold", "probe", "window"];

impl Validator<'_> {
    pub(super) fn rules(
        &mut self,
        raw: Vec<RawRule>,
        probes: &[ProbeSpec],
        keep_firing_default: Duration,
    ) -> Vec<RuleSpec> {
        let probe_names: HashSet<&str> = probes.iter().map(|probe| &*probe.name).collect();
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(raw.len());
        for (index, rule) in raw.into_iter().enumerate() {
            let key = format!("rule[{index}]");
            let name = rule.name.get_ref().trim().to_owned();
            let name_key = format!("{key}.name");
            if !self.plain_text(&rule.name, &name_key) {
                // Reported by `plain_text`.
            } else if name.is_empty() {
                self.error(
                    rule.name.span(),
                    &format!("{key}.name"),
                    "rule name is empty".into(),
                );
            } else if !names.insert(name.clone()) {
                let message = format!("duplicate rule name {name:?}: rule names must be unique");
                self.error(rule.name.span(), &format!("{key}.name"), message);
            }
            let severity = match rule.severity.get_ref().parse::<Severity>() {
                Ok(severity) => Some(severity),
                Err(message) => {
                    self.error(rule.severity.span(), &format!("{key}.severity"), message);
                    None
                }
            };
            let expr = match crate::alert::parse(rule.expr.get_ref()) {
                Ok(expr) => Some(expr),
                Err(error) => {
                    let value = rule.expr.get_ref();
                    let message = match self.source_offset(rule.expr.span(), value, error.offset) {
                        Some(at) => {
                            let message =
                                format!("invalid expression {value:?}: {}", error.message);
                            self.error(at..at, &format!("{key}.expr"), message);
                            None
                        }
                        None => Some(format!(
                            "invalid expression {value:?}: in the expression: {}",
                            error.message
                        )),
                    };
                    if let Some(message) = message {
                        self.error(rule.expr.span(), &format!("{key}.expr"), message);
                    }
                    None
                }
            };
            let window = self.bounded(
                rule.window.as_ref(),
                &format!("{key}.window"),
                DEFAULT_WINDOW,
                Duration::from_nanos(1),
                MAX_WINDOW,
            );
            let for_ = self.duration_or(rule.for_.as_ref(), &format!("{key}.for"), Duration::ZERO);
            let keep_firing_for = self.duration_or(
                rule.keep_firing_for.as_ref(),
                &format!("{key}.keep_firing_for"),
                keep_firing_default,
            );
            let min_samples = match &rule.min_samples {
                Some(value) => match u32::try_from(*value.get_ref()) {
                    Ok(count) => count,
                    Err(_) => {
                        let message = format!(
                            "invalid min_samples {}: expected a whole number from 0",
                            value.get_ref()
                        );
                        self.error(value.span(), &format!("{key}.min_samples"), message);
                        1
                    }
                },
                None => 1,
            };
            let mut selected: Vec<Arc<str>> = Vec::new();
            if let Some(list) = &rule.probes
                && list.get_ref().is_empty()
            {
                let message = "probes is empty: omit the key to select every probe, or name \
                               at least one probe"
                    .to_owned();
                self.error(list.span(), &format!("{key}.probes"), message);
            }
            for probe in rule.probes.iter().flat_map(|list| list.get_ref()) {
                if selected.iter().any(|name| **name == **probe.get_ref()) {
                    let message = format!(
                        "duplicate probe {:?}: name each probe once",
                        probe.get_ref()
                    );
                    self.error(probe.span(), &format!("{key}.probes"), message);
                } else if probe_names.contains(probe.get_ref().as_str()) {
                    selected.push(Arc::from(probe.get_ref().as_str()));
                } else {
                    let message = format!(
                        "unknown probe {:?}: name a probe defined in a [[probe]] table",
                        probe.get_ref()
                    );
                    self.error(probe.span(), &format!("{key}.probes"), message);
                }
            }
            if let Some(summary) = &rule.summary {
                self.summary(summary, &format!("{key}.summary"));
            }
            let runbook = rule.runbook.get_ref().trim();
            if !self.plain_text(&rule.runbook, &format!("{key}.runbook")) {
                // Reported by `plain_text`.
            } else if runbook.is_empty() {
                let message = "runbook is empty: say what the person paged should do".to_owned();
                self.error(rule.runbook.span(), &format!("{key}.runbook"), message);
            }
            let (Some(severity), Some(expr)) = (severity, expr) else {
                continue;
            };
            rules.push(RuleSpec {
                name: Arc::from(name.as_str()),
                severity,
                expr_text: Arc::from(rule.expr.get_ref().as_str()),
                expr,
                window,
                for_,
                keep_firing_for,
                min_samples,
                runbook: Arc::from(runbook),
                summary: rule.summary.map(|summary| summary.into_inner()),
                probes: selected,
            });
        }
        rules
    }

    /// Checks a summary template: one line, and only the placeholders the engine fills.
    fn summary(&mut self, value: &Text, key: &str) {
        if !self.plain_text(value, key) {
            return;
        }
        let mut rest = value.get_ref().as_str();
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name = after.find('}').map_or(after, |close| &after[..close]);
            if !PLACEHOLDERS.contains(&name) {
                let message = format!(
                    "unknown placeholder {{{name}}} in the summary: use {}",
                    PLACEHOLDERS.map(|name| format!("{{{name}}}")).join(", ")
                );
                self.error(value.span(), key, message);
                return;
            }
            rest = &after[name.len()..];
        }
    }

    pub(super) fn receivers(&mut self, raw: Option<RawReceivers>) -> Receivers {
        let Some(mut raw) = raw else {
            return Receivers::default();
        };
        let mut receivers = Receivers {
            email: raw.email.as_ref().map(|email| self.email(email)),
            otlp: raw.otlp.take().map(|otlp| self.otlp(otlp)),
            ..Receivers::default()
        };
        self.http_receivers(&mut raw, &mut receivers);
        receivers
    }

    fn email(&mut self, raw: &RawEmail) -> EmailConfig {
        let tls = match raw.tls.as_ref().map(|tls| tls.get_ref().as_str()) {
            None | Some("starttls") => SmtpTls::Starttls,
            Some("implicit") => SmtpTls::Implicit,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let span = raw.tls.as_ref().map(|tls| tls.span()).unwrap_or_default();
                let message = format!("invalid tls {other:?}: expected starttls, implicit or none");
                self.error(span, "receivers.email.tls", message);
                SmtpTls::Starttls
            }
        };
        let host = raw.host.get_ref().trim().to_owned();
        if host.is_empty() {
            self.error(
                raw.host.span(),
                "receivers.email.host",
                "host is empty".to_owned(),
            );
        }
        if tls == SmtpTls::None && !is_loopback(&host) {
            let message = format!(
                "tls = \"none\" sends mail and passwords in clear text, so it is allowed only \
                 for a loopback host, not {host:?}: use starttls or implicit"
            );
            let span = raw.tls.as_ref().map(|tls| tls.span()).unwrap_or_default();
            self.error(span, "receivers.email.tls", message);
        }
        let port = match &raw.port {
            Some(port) => match u16::try_from(*port.get_ref()) {
                Ok(port) if port > 0 => port,
                _ => {
                    let message = format!("invalid port {}: expected 1 to 65535", port.get_ref());
                    self.error(port.span(), "receivers.email.port", message);
                    0
                }
            },
            None => match tls {
                SmtpTls::Starttls => 587,
                SmtpTls::Implicit => 465,
                SmtpTls::None => 25,
            },
        };
        let ca_file = raw.ca_file.as_ref().map(|value| self.ca_file(value, tls));
        let username = raw.username.as_ref().map(|name| name.get_ref().clone());
        let password = raw
            .password
            .as_ref()
            .map(|secret| self.secret(secret, "receivers.email.password"));
        if username.is_some() != password.is_some() {
            let message = "set both `username` and `password` for SMTP AUTH, or neither".to_owned();
            self.error(raw.host.span(), "receivers.email", message);
        }
        self.mailbox(&raw.from, "receivers.email.from");
        if raw.to.get_ref().is_empty() {
            let message = "`to` is empty: list at least one recipient".to_owned();
            self.error(raw.to.span(), "receivers.email.to", message);
        }
        for recipient in raw.to.get_ref() {
            self.mailbox(recipient, "receivers.email.to");
        }
        let timeout = self.positive(
            raw.timeout.as_ref(),
            "receivers.email.timeout",
            Duration::from_secs(10),
        );
        EmailConfig {
            host,
            port,
            tls,
            ca_file,
            username,
            password,
            from: raw.from.get_ref().clone(),
            to: raw
                .to
                .get_ref()
                .iter()
                .map(|to| to.get_ref().clone())
                .collect(),
            timeout,
            fallback: None,
        }
    }

    /// Checks that `ca_file` is used by a TLS mode and contains at least one valid certificate.
    fn ca_file(&mut self, value: &Text, tls: SmtpTls) -> PathBuf {
        let path = PathBuf::from(value.get_ref());
        if tls == SmtpTls::None {
            let message = "ca_file is set but tls = \"none\" never uses it: remove ca_file, or \
                           set tls to starttls or implicit"
                .to_owned();
            self.error(value.span(), "receivers.email.ca_file", message);
        } else if let Err(error) = crate::notify::read_ca_file(&path) {
            let message = format!("invalid ca_file {:?}: {error}", value.get_ref());
            self.error(value.span(), "receivers.email.ca_file", message);
        }
        path
    }

    fn mailbox(&mut self, value: &Text, key: &str) {
        if value.get_ref().parse::<lettre::message::Mailbox>().is_err() {
            let message = format!(
                "invalid address {:?}: expected name@example.com or \"Name <name@example.com>\"",
                value.get_ref()
            );
            self.error(value.span(), key, message);
        }
    }

    fn otlp(&mut self, raw: RawOtlp) -> OtlpConfig {
        let endpoint = self.url(&raw.endpoint, "receivers.otlp.endpoint");
        let export_interval = self.positive(
            raw.export_interval.as_ref(),
            "receivers.otlp.export_interval",
            Duration::from_secs(15),
        );
        let timeout = self.positive(
            raw.timeout.as_ref(),
            "receivers.otlp.timeout",
            Duration::from_secs(5),
        );
        OtlpConfig {
            endpoint,
            export_interval,
            timeout,
        }
    }
}

/// Returns whether a host name or address stays on this machine.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}
