//! Durations as the configuration writes them: `500ms`, `30s`, `5m`, `2h`, `1d`.

use std::time::Duration;

use super::validate::MAX_DURATION;

/// Parses a duration such as `500ms`, `30s`, `5m`, `2h` or `1d`. Months and years are
/// rejected because their length varies and `M` is easily read as minutes.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let units: Vec<&str> = text
        .split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
        .filter(|unit| !unit.is_empty())
        .collect();
    let calendar = ["M", "month", "months", "y", "year", "years"];
    if let Some(unit) = units.iter().find(|unit| calendar.contains(unit)) {
        return Err(format!(
            "the unit {unit:?} is a month or a year, which loftwatch does not accept: \
             use d, h, m, s or ms, such as 30d"
        ));
    }
    match humantime::parse_duration(text) {
        Ok(duration) if duration <= MAX_DURATION => Ok(duration),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(format!(
            "too large: the maximum of any duration is {}",
            format_duration(MAX_DURATION)
        )),
        Err(_) => Err(
            "write a number with a unit (ms, s, m, h or d), such as 30s, 5m or 500ms".to_owned(),
        ),
    }
}

/// Formats a duration in the form the configuration accepts, such as `100ms` or `10m`.
pub(crate) fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}
