//! Scheduling (placeholder until the scheduler lands).

use std::time::Duration;

/// Parses a 5-field crontab(5) line.
pub fn parse_cron(line: &str) -> Result<croner::Cron, String> {
    line.parse::<croner::Cron>()
        .map_err(|error| error.to_string())
}

/// Returns a deterministic start offset in `[0, every)` for a probe name.
pub fn splay_for(_name: &str, _every: Duration) -> Duration {
    Duration::ZERO
}
