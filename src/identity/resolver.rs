//! One step of the decision: who is calling. mTLS (the peer principal, the
//! forwarded certificate, a trusted XFCC element), then a bearer token.

use std::sync::Arc;
use std::time::SystemTime;

use crate::identity::issuers::DEFAULT_TOKEN_HEADER;
use crate::identity::jwt::TokenSource;
use crate::identity::keys::ApiKeys;
use crate::identity::token::TokenVerifier;
use crate::identity::{self, Identity, IdentityConfig, IdentityError};
use crate::request::HttpRequest;

/// Resolves the caller of a request into an [`Identity`], or refuses its
/// credentials.
#[derive(Debug, Clone)]
pub struct Resolver {
    config: Arc<IdentityConfig>,
    /// Token verification (issuers, keys, cache); `None` without issuers.
    tokens: Option<Arc<TokenVerifier>>,
    /// Gateway-issued API keys; `None` without `api_keys`.
    keys: Option<Arc<ApiKeys>>,
}

/// Refused credentials (always a 401): a fixed code, a safe message, and what
/// was accepted before the refusal.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The code and the message.
    pub error: IdentityRejection,
    /// The workload, when a token was refused after it was accepted, so the
    /// audit names which workload presented the refused token; else empty.
    pub accepted: Identity,
}

/// A refused credential: a fixed code and a safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRejection {
    /// Fixed snake_case code (metrics label).
    pub code: &'static str,
    /// Human-readable message; never contains a credential.
    pub message: String,
}

// === impl Resolver ===

impl Resolver {
    /// A resolver for the `identity` configuration.
    pub fn new(config: Arc<IdentityConfig>) -> Self {
        let tokens = TokenVerifier::new(&config).map(Arc::new);
        Self {
            config,
            tokens,
            keys: None,
        }
    }

    /// The same, also accepting gateway-issued API keys.
    pub fn with_keys(mut self, keys: Option<Arc<ApiKeys>>) -> Self {
        self.keys = keys;
        self
    }

    /// The API keys, when configured (their watcher is started by the server).
    pub fn keys(&self) -> Option<&Arc<ApiKeys>> {
        self.keys.as_ref()
    }

    /// The request header that carried the caller's accepted token or API
    /// key, if one did: the caller's identity, which a provider credential
    /// rule must not take for a provider key.
    pub fn identity_header(&self, identity: &Identity) -> Option<&str> {
        if identity.api_key.is_some() {
            return self.keys.as_ref().map(|k| k.header());
        }
        identity
            .token
            .as_ref()
            .filter(|t| t.source == TokenSource::Header)
            .map(|_| {
                self.config
                    .token_header
                    .as_ref()
                    .map_or(DEFAULT_TOKEN_HEADER, |h| h.as_str())
            })
    }

    /// The token verifier, when issuers are configured (its key refresh tasks
    /// are started by the server; readiness waits for required issuers).
    pub fn tokens(&self) -> Option<&Arc<TokenVerifier>> {
        self.tokens.as_ref()
    }

    /// The caller of `req`. A presented token that fails is refused even when
    /// a workload identity would have sufficed: never fall back past a bad
    /// credential.
    pub fn resolve(&self, req: &HttpRequest, now: SystemTime) -> Result<Identity, Rejection> {
        let mut identity =
            identity::resolve(req, &self.config, now).map_err(|e| Rejection::new(&e, None))?;
        if let Some(keys) = &self.keys {
            // A presented key that fails is refused like a bad token; an
            // accepted one is the principal (no token is looked for).
            match keys.resolve(req, now) {
                Ok(Some(key)) => {
                    identity.api_key = Some(key);
                    return Ok(identity);
                }
                Ok(None) => {}
                Err(e) => return Err(Rejection::new(&IdentityError::ApiKey(e), Some(identity))),
            }
        }
        if let Some(tokens) = &self.tokens {
            match tokens.resolve(req, now) {
                Ok(token) => identity.token = token,
                Err(e) => return Err(Rejection::new(&IdentityError::Token(e), Some(identity))),
            }
        }
        Ok(identity)
    }
}

// === impl Rejection ===

impl Rejection {
    fn new(e: &IdentityError, accepted: Option<Identity>) -> Self {
        Self {
            error: IdentityRejection {
                code: e.reason(),
                message: e.to_string(),
            },
            accepted: accepted.unwrap_or_default(),
        }
    }
}
