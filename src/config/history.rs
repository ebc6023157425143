//! Validation of the `[history]` table: how long the dashboard's per-minute probe history is
//! kept in the database.

use std::time::Duration;

use super::raw::RawHistory;
use super::types::HistoryConfig;
use super::validate::Validator;

/// Retention of per-minute rollups when `history.retention` is not set: 7 days.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Shortest accepted retention: one rollup minute. The dashboard's 24-hour chart shows only
/// what is retained, so a retention under 24 hours leaves the start of that chart empty.
pub const MIN_HISTORY_RETENTION: Duration = Duration::from_secs(60);

impl Validator<'_> {
    pub(super) fn history(&mut self, raw: Option<RawHistory>) -> HistoryConfig {
        let default = HistoryConfig {
            retention: DEFAULT_HISTORY_RETENTION,
        };
        let Some(value) = raw.and_then(|raw| raw.retention) else {
            return default;
        };
        let Some(retention) = self.duration(&value, "history.retention") else {
            return default;
        };
        if retention < MIN_HISTORY_RETENTION {
            let message = format!(
                "invalid retention {:?}: it must be at least 1m, because history is kept per \
                 minute; write a duration such as 24h or 7d",
                value.get_ref()
            );
            self.error(value.span(), "history.retention", message);
            return default;
        }
        HistoryConfig { retention }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{DEFAULT_HISTORY_RETENTION, parse};

    const PROBE: &str = "[[probe]]\nname = \"me\"\npath = \"/v2/me.json\"\n";

    #[test]
    fn retention_defaults_to_seven_days() {
        let config = parse(PROBE, "test.toml").expect("valid configuration");
        assert_eq!(config.history.retention, DEFAULT_HISTORY_RETENTION);
        assert_eq!(config.history.retention, Duration::from_secs(604_800));
    }

    #[test]
    fn retention_is_read() {
        let text = format!("{PROBE}[history]\nretention = \"36h\"\n");
        let config = parse(&text, "test.toml").expect("valid configuration");
        assert_eq!(config.history.retention, Duration::from_secs(36 * 3600));
    }

    #[test]
    fn retention_rejects_bad_values() {
        for value in ["30s", "0s", "a week"] {
            let text = format!("{PROBE}[history]\nretention = \"{value}\"\n");
            let error = parse(&text, "test.toml").expect_err("invalid configuration");
            assert_eq!(error.issues.len(), 1, "{value}: {:?}", error.issues);
            assert_eq!(error.issues[0].key, "history.retention", "{value}");
        }
    }

    #[test]
    fn history_rejects_unknown_keys() {
        let text = format!("{PROBE}[history]\nkeep = \"1d\"\n");
        assert!(parse(&text, "test.toml").is_err());
    }
}
