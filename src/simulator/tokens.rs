//! Access and refresh tokens: which bearer tokens the API accepts and how refresh tokens rotate.
//!
//! By default any non-empty bearer token is accepted, as an API key would be. Tokens marked
//! invalid are rejected. In strict mode only tokens issued by `/oauth/token` (until they expire)
//! and tokens marked valid are accepted. A refresh token works once: using it issues a new pair
//! and spends the old refresh token, so a reused or unknown one gets `invalid_grant`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use tokio::time::Instant;

/// Lifetime of issued access tokens, as SalesLoft states in `expires_in`.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(7200);

/// A successful refresh: the new token pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// New access token.
    pub access_token: String,
    /// New refresh token; the one used is now spent.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Reason a bearer token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// The token was marked invalid, or strict mode does not know it.
    Invalid,
    /// The token was issued by `/oauth/token` and its lifetime has passed.
    Expired,
}

/// Token registry of the simulated team.
#[derive(Debug, Default)]
pub struct Tokens {
    /// Accept only issued and explicitly valid tokens when true.
    pub strict: bool,
    /// Lifetime of access tokens issued from now on; `None` means [`ACCESS_TOKEN_TTL`].
    pub access_token_ttl: Option<Duration>,
    invalid: HashSet<String>,
    valid: HashSet<String>,
    issued: HashMap<String, Instant>,
    live_refresh: HashSet<String>,
}

impl Tokens {
    /// Marks access tokens as rejected with 401.
    pub fn add_invalid(&mut self, tokens: impl IntoIterator<Item = String>) {
        for token in tokens {
            self.valid.remove(&token);
            self.invalid.insert(token);
        }
    }

    /// Marks access tokens as accepted, also in strict mode.
    pub fn add_valid(&mut self, tokens: impl IntoIterator<Item = String>) {
        for token in tokens {
            self.invalid.remove(&token);
            self.valid.insert(token);
        }
    }

    /// Adds refresh tokens that `/oauth/token` accepts once each.
    pub fn add_refresh(&mut self, tokens: impl IntoIterator<Item = String>) {
        self.live_refresh.extend(tokens);
    }

    /// Checks a non-empty bearer token at `now`.
    pub fn check_access(&self, token: &str, now: Instant) -> Result<(), TokenRejection> {
        if self.invalid.contains(token) {
            return Err(TokenRejection::Invalid);
        }
        if let Some(expires_at) = self.issued.get(token) {
            return if now < *expires_at {
                Ok(())
            } else {
                Err(TokenRejection::Expired)
            };
        }
        if self.strict && !self.valid.contains(token) {
            return Err(TokenRejection::Invalid);
        }
        Ok(())
    }

    /// Spends `refresh_token` and issues a new pair, or returns `None` for a spent or unknown
    /// refresh token.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        now: Instant,
        rng: &mut StdRng,
    ) -> Option<TokenGrant> {
        if !self.live_refresh.remove(refresh_token) {
            return None;
        }
        let access_token = format!("sim-access-{:032x}", rng.random::<u128>());
        let new_refresh = format!("sim-refresh-{:032x}", rng.random::<u128>());
        let ttl = self.access_token_ttl.unwrap_or(ACCESS_TOKEN_TTL);
        self.issued.insert(access_token.clone(), now + ttl);
        self.live_refresh.insert(new_refresh.clone());
        Some(TokenGrant {
            access_token,
            refresh_token: new_refresh,
            expires_in: ttl.as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refresh_rotates_and_spends() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut tokens = Tokens::default();
        tokens.add_refresh(["first".to_owned()]);
        let grant = tokens.refresh("first", Instant::now(), &mut rng).unwrap();
        assert!(tokens.refresh("first", Instant::now(), &mut rng).is_none());
        assert!(
            tokens
                .refresh("unknown", Instant::now(), &mut rng)
                .is_none()
        );
        assert_ne!(grant.refresh_token, "first");
        let next = tokens.refresh(&grant.refresh_token, Instant::now(), &mut rng);
        assert!(next.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn issued_token_expires() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut tokens = Tokens {
            strict: true,
            ..Tokens::default()
        };
        tokens.add_refresh(["first".to_owned()]);
        let grant = tokens.refresh("first", Instant::now(), &mut rng).unwrap();
        assert_eq!(
            tokens.check_access(&grant.access_token, Instant::now()),
            Ok(())
        );
        assert_eq!(
            tokens.check_access("never-issued", Instant::now()),
            Err(TokenRejection::Invalid)
        );
        tokio::time::advance(ACCESS_TOKEN_TTL).await;
        assert_eq!(
            tokens.check_access(&grant.access_token, Instant::now()),
            Err(TokenRejection::Expired)
        );
    }

    #[test]
    fn invalid_token_rejected_in_lenient_mode() {
        let mut tokens = Tokens::default();
        tokens.add_invalid(["revoked".to_owned()]);
        let now = Instant::now();
        assert_eq!(tokens.check_access("any", now), Ok(()));
        assert_eq!(
            tokens.check_access("revoked", now),
            Err(TokenRejection::Invalid)
        );
    }
}
