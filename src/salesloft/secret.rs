//! A string that must never be printed: API keys and access tokens.

use std::fmt;

/// A secret value whose `Debug` output is redacted, so it stays out of logs and error
/// messages that format the structures holding it. It has no `Display` implementation; the
/// value is read only through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Returns the secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value() {
        let secret = Secret::new("ak_0123456789abcdef");
        let printed = format!("{secret:?}");
        assert!(
            !printed.contains("ak_0123"),
            "debug output leaked the secret: {printed}"
        );
        assert_eq!(printed, "Secret([redacted])");
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let secret = Secret::new("tok");
        assert_eq!(secret.redact("a tok b tok"), "a [redacted] b [redacted]");
    }

    #[test]
    fn redact_with_empty_secret_keeps_text() {
        assert_eq!(Secret::new("").redact("text"), "text");
    }
}
