//! Checks shared by several keys: URLs, secret sources and text that ends up in logs.

use toml::Spanned;

use super::raw::{RawSecret, Text};
use super::types::SecretSource;
use super::validate::Validator;

/// Message for a secret-source key written as a plain string, which would put the secret in
/// the file.
pub(crate) const INLINE_SECRET: &str = "secrets are never written inline: use { env = \"NAME\" }, \
                                        { file = \"PATH\" } or { credential = \"NAME\" }";

impl Validator<'_> {
    /// Checks an `http://` or `https://` URL with a host and a valid port, and without
    /// credentials, query or fragment. Returns it without a trailing slash.
    pub(super) fn url(&mut self, value: &Text, key: &str) -> String {
        let text = value.get_ref().trim();
        let shown = redact_userinfo(text);
        let problem = match reqwest::Url::parse(text) {
            Err(error) => Some(format!(
                "{error}: write http:// or https://, a host and an optional port of 1 to 65535"
            )),
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                Some("the scheme must be http or https".to_owned())
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                Some("the URL has no host".to_owned())
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => Some(
                "a user name or password in the URL is not allowed, because loftwatch prints \
                 the URL: remove it, and set secrets with { env = \"NAME\" }, \
                 { file = \"PATH\" } or { credential = \"NAME\" }"
                    .to_owned(),
            ),
            Ok(url) if url.query().is_some() => {
                Some("a query (?...) is not allowed: remove it".to_owned())
            }
            Ok(url) if url.fragment().is_some() => {
                Some("a fragment (#...) is not allowed: remove it".to_owned())
            }
            Ok(_) => None,
        };
        match problem {
            Some(problem) => {
                let message = format!("invalid URL {shown:?}: {problem}");
                self.error(value.span(), key, message);
                String::new()
            }
            None => text.trim_end_matches('/').to_owned(),
        }
    }

    pub(super) fn secret(&mut self, value: &Spanned<RawSecret>, key: &str) -> SecretSource {
        let raw = value.get_ref();
        let source = SecretSource {
            credential: raw.credential.clone(),
            file: raw.file.as_ref().map(std::path::PathBuf::from),
            env: raw.env.clone(),
        };
        if source == SecretSource::default() {
            let message = "no secret source: set `credential` (a systemd credential name), \
                           `file` or `env`"
                .to_owned();
            self.error(value.span(), key, message);
        }
        source
    }

    /// Rejects control characters (CR, LF, tab and others) in text that is logged or sent,
    /// where they would forge log lines or headers.
    pub(super) fn plain_text(&mut self, value: &Text, key: &str) -> bool {
        let text = value.get_ref();
        if let Some(bad) = text.chars().find(|c| c.is_control()) {
            let message = format!(
                "invalid text {text:?}: control character {bad:?} is not allowed, because it \
                 would break log lines: write it on one line without tabs"
            );
            self.error(value.span(), key, message);
            return false;
        }
        true
    }
}

/// Replaces the user name and password of a URL with `***`, so errors never show a password.
pub(crate) fn redact_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => text.to_owned(),
    }
}
