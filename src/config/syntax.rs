//! Messages for errors that serde reports while reading the TOML, before validation: they
//! gain the key, a hint of what to write, and never show the value of a secret.

use super::checks::INLINE_SECRET;

/// Keys whose value is a secret source; an error there must not show the value.
const SECRET_KEYS: [&str; 5] = [
    "salesloft.credential",
    "salesloft.client_secret",
    "salesloft.refresh_token",
    "receivers.email.password",
    "server.token",
];

/// Keys whose value is a duration.
const DURATION_KEYS: [&str; 13] = [
    "eval_interval",
    "histogram_max",
    "keep_firing_for",
    "interval",
    "timeout",
    "latency_baseline",
    "window",
    "for",
    "retry_backoff",
    "retry_backoff_max",
    "breaker_open_for",
    "export_interval",
    "health_freshness",
];

/// Returns the dotted key and a message for a TOML or serde error.
pub(crate) fn describe(mut error: toml::de::Error) -> (String, String) {
    let message = error.message().trim().replace('\n', " ");
    // Without the input, the error's text ends with "in `key.path`" when the key is known.
    error.set_input(None);
    let rendered = error.to_string();
    let key = rendered
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
        .unwrap_or("")
        .to_owned();
    let last = key.rsplit('.').next().unwrap_or("");
    if SECRET_KEYS.contains(&key.as_str()) {
        let message = if message.starts_with("invalid type: string") {
            INLINE_SECRET.to_owned()
        } else {
            // The value is not shown, because it may be the secret itself.
            format!("invalid secret source: {INLINE_SECRET}")
        };
        return (key, message);
    }
    let message = if let Some(got) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.strip_suffix(", expected a string"))
        && DURATION_KEYS.contains(&last)
    {
        format!("invalid duration {got}: write a duration as a string such as \"5s\"")
    } else if let Some(got) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.strip_suffix(", expected i64"))
    {
        format!("invalid number {got}: expected a whole number such as 5")
    } else if let Some(got) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.strip_suffix(", expected a string"))
    {
        format!("invalid value {got}: write it as a string in double quotes")
    } else if last == "max_body" && message.contains("untagged enum") {
        "invalid size: write a whole number of bytes or a string such as \"64KiB\" or \"1MiB\""
            .to_owned()
    } else {
        message
    };
    (key, message)
}
