//! Configuration: the TOML schema, its defaults and its validation.
//!
//! Loading happens in two stages: serde reads raw structs that reject unknown keys, then
//! validation turns them into [`Config`]. Every error names the file, line and column, the key
//! and the bad value.

mod budget;
mod checks;
mod dns;
mod duration;
mod error;
mod history;
mod items;
mod raw;
mod receivers;
mod routing;
mod rules;
mod server;
mod syntax;
mod types;
mod validate;

use std::path::Path;

pub use budget::{BudgetReport, ProbeCost, check_budget, cost_per_minute};
pub use error::{ConfigError, ConfigIssue};
pub use history::{DEFAULT_HISTORY_RETENTION, MIN_HISTORY_RETENTION};
pub use receivers::DEFAULT_RESEND_INTERVAL;
pub use rules::is_loopback;
pub use server::DEFAULT_LISTEN;
pub use types::*;
pub use validate::{
    DEFAULT_BASE_URL, DEFAULT_EVAL_INTERVAL, DEFAULT_INTERVAL, DEFAULT_KEEP_FIRING_FOR,
    DEFAULT_TIMEOUT, DEFAULT_WINDOW,
};

/// The default configuration shipped as `alerts.toml`, embedded for `loftwatch demo`.
pub const DEFAULT_CONFIG: &str = include_str!("../../alerts.toml");

/// Parses and validates configuration text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            let positions = error::Positions::new(text);
            let span = error.span().unwrap_or(0..0);
            let (key, message) = syntax::describe(error);
            let issue = positions.issue(span, &key, message);
            return Err(ConfigError {
                file: file.to_owned(),
                issues: vec![issue],
            });
        }
    };
    let mut validator = validate::Validator::new(text);
    match validator.config(raw) {
        Some(config) => Ok(config),
        None => Err(ConfigError {
            file: file.to_owned(),
            issues: validator.issues,
        }),
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(error) => {
            // The standard text without the "(os error 2)" suffix.
            let reason = error.to_string();
            let reason = reason
                .split_once(" (os error")
                .map_or(reason.as_str(), |(reason, _)| reason);
            Err(ConfigError {
                file: file.clone(),
                issues: vec![ConfigIssue {
                    line: 0,
                    column: 0,
                    key: String::new(),
                    message: format!("cannot read {file}: {reason}"),
                }],
            })
        }
    }
}

#[cfg(test)]
mod docs_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod validation_tests;
