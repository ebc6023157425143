//! Formatting of values, thresholds, windows and alert ids for people and receivers.

use std::time::Duration;

/// Formats a number with at most two decimals and no trailing zeros: `3`, `21.5`, `0.33`.
pub(crate) fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let trimmed = text.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Formats a latency in milliseconds: whole milliseconds from 100 ms up (`2450 ms`), two
/// decimals below (`12.35 ms`, `0.4 ms`).
pub(crate) fn latency(latency: Duration) -> String {
    let millis = latency.as_secs_f64() * 1000.0;
    if millis >= 100.0 {
        format!("{millis:.0} ms")
    } else {
        format!("{} ms", number(millis))
    }
}

/// Names a quantile the way rules write it: `p50`, `p99`, `p999`, or `quantile(0.75)` when no
/// short name exists.
pub(crate) fn quantile_name(q: f64) -> String {
    for (name, value) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
        if q == value {
            return name.to_owned();
        }
    }
    if q == 0.999 {
        return "p999".to_owned();
    }
    format!("quantile({q})")
}

/// Formats a window length in the largest unit that divides it: `1m`, `90s`, `1h`, `250ms`.
pub(crate) fn window(length: Duration) -> String {
    let millis = length.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if millis % size == 0 {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// Returns a stable 16-hex-digit id for an alert instance: the FNV-1a 64-bit hash of the rule
/// and probe names. It is the same across restarts and builds, unlike `std`'s hasher.
pub(crate) fn alert_id(rule: &str, probe: &str) -> String {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    // The 0 byte separates the names, so ("ab", "c") and ("a", "bc") differ.
    for byte in rule.bytes().chain([0]).chain(probe.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_trims_trailing_zeros() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(21.5), "21.5");
        assert_eq!(number(1.0 / 3.0), "0.33");
    }

    #[test]
    fn latency_uses_milliseconds() {
        assert_eq!(latency(Duration::from_micros(2_450_300)), "2450 ms");
        assert_eq!(latency(Duration::from_micros(12_345)), "12.35 ms");
        assert_eq!(latency(Duration::from_secs(2)), "2000 ms");
    }

    #[test]
    fn window_picks_largest_unit() {
        assert_eq!(window(Duration::from_secs(60)), "1m");
        assert_eq!(window(Duration::from_secs(90)), "90s");
        assert_eq!(window(Duration::from_secs(7200)), "2h");
        assert_eq!(window(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn alert_id_is_stable_and_distinct() {
        assert_eq!(alert_id("Auth down", "me"), alert_id("Auth down", "me"));
        assert_ne!(alert_id("Auth down", "me"), alert_id("Auth down", "people"));
        assert_ne!(alert_id("ab", "c"), alert_id("a", "bc"));
        assert_eq!(alert_id("Auth down", "me").len(), 16);
    }
}
