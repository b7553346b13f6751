//! JWT verification rules: one function per step, one [`TokenError`] variant per
//! way a token can fail, each with a fixed reason code.
//!
//! Signatures are checked by `jsonwebtoken` (aws-lc-rs backend) with a key
//! chosen here; the claim rules are cedar-gate's own so that every failure has
//! its own reason in the 401, the audit event and the metrics.

use cedar_policy::EntityUid;

mod claims;
mod compact;

pub use claims::IssuerRules;
#[cfg(test)]
use compact::token_type;
pub use compact::{Parsed, TokenType, parse};

/// Largest token accepted, in bytes (header + payload + signature, base64url).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused (always a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is {0} bytes, more than the 8192 allowed")]
    TooLarge(usize),
    /// Not three base64url segments.
    #[error("token is not a compact JWS (three base64url segments)")]
    Malformed,
    /// The header is not base64url JSON with a string `alg`.
    #[error("token header is not valid")]
    MalformedHeader,
    /// The header has a `crit` parameter (no extension is understood).
    #[error("token header has critical extensions")]
    UnsupportedHeader,
    /// The header's `typ` is present but not a string.
    #[error("token header `typ` is not a string")]
    MalformedType,
    /// The header's `typ` names a kind of token other than a JWT or an access token
    /// (a SET, an ID token, a DPoP proof, a logout token, ...).
    #[error("token type `{}` is not an access token", .0.escape_debug())]
    UnacceptedType(String),
    /// The issuer requires `typ: at+jwt` (RFC 9068) and the token has another or none.
    #[error("issuer requires access tokens of type `at+jwt` (RFC 9068)")]
    AccessTokenTypeRequired,
    /// The payload is not a base64url JSON object.
    #[error("token payload is not a JSON object")]
    MalformedClaims,
    /// `alg: none`.
    #[error("unsigned tokens (`alg: none`) are never accepted")]
    AlgorithmNone,
    /// `iss` is missing or names no configured issuer.
    #[error("token issuer is not configured")]
    UnknownIssuer,
    /// `alg` is not in the issuer's allow-list (HMAC never is).
    #[error("algorithm `{0}` is not allowed for this issuer")]
    AlgorithmNotAllowed(String),
    /// The issuer has no key set yet (refresh scheduled).
    #[error("no keys are available for this issuer yet")]
    KeysUnavailable,
    /// `kid` is not in the issuer's key set (refresh scheduled).
    #[error("key id is not in the issuer's key set")]
    UnknownKeyId,
    /// No key of the issuer fits the token's algorithm.
    #[error("no key of the issuer matches the token's algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// No `exp`.
    #[error("token has no `exp`")]
    MissingExpiry,
    /// `exp` has passed (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// A maximum lifetime is configured and the token has no `iat`.
    #[error("token has no `iat`, needed to check its lifetime")]
    MissingIssuedAt,
    /// `exp - iat` is above the issuer's maximum lifetime.
    #[error("token lifetime exceeds the maximum allowed")]
    LifetimeExceeded,
    /// `aud` names none of the accepted audiences.
    #[error("token audience is not accepted")]
    InvalidAudience,
    /// The route serves one resource (RFC 8707) and `aud` does not name it:
    /// a token minted for another server is never passed through.
    #[error("token audience does not name this route's resource")]
    ResourceMismatch,
    /// A required claim is missing.
    #[error("token lacks required claim `{0}`")]
    MissingClaim(String),
    /// The subject claim is missing or not a non-empty string.
    #[error("token lacks a subject")]
    MissingSubject,
    /// A claim cedar-gate reads has the wrong shape.
    #[error("token claim `{0}` is malformed")]
    InvalidClaim(&'static str),
}

// === impl TokenError ===

impl TokenError {
    /// A fixed, snake_case code for the 401, metrics and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge(_) => "token_too_large",
            TokenError::Malformed => "malformed_token",
            TokenError::MalformedHeader => "malformed_token_header",
            TokenError::UnsupportedHeader => "unsupported_token_header",
            TokenError::MalformedType => "malformed_token_type",
            TokenError::UnacceptedType(_) => "token_type_not_accepted",
            TokenError::AccessTokenTypeRequired => "access_token_type_required",
            TokenError::MalformedClaims => "malformed_token_claims",
            TokenError::AlgorithmNone => "algorithm_none",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::UnknownKeyId => "unknown_key_id",
            TokenError::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            TokenError::InvalidSignature => "invalid_signature",
            TokenError::MissingExpiry => "missing_exp",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::IssuedInFuture => "token_issued_in_future",
            TokenError::MissingIssuedAt => "missing_iat",
            TokenError::LifetimeExceeded => "token_lifetime_exceeded",
            TokenError::InvalidAudience => "invalid_audience",
            TokenError::ResourceMismatch => "resource_mismatch",
            TokenError::MissingClaim(_) => "missing_required_claim",
            TokenError::MissingSubject => "missing_subject",
            TokenError::InvalidClaim(_) => "invalid_claim",
        }
    }
}

/// Where a verified token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// The bearer header, verified here.
    Header,
    /// Envoy's `jwt_authn` metadata, verified by Envoy.
    JwtAuthn,
}

/// A token that passed every rule. Holds claims, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerifiedToken {
    /// The configured issuer (`iss`).
    pub issuer: String,
    /// `<entity_type>::"<subject>"`.
    pub principal: EntityUid,
    /// The subject claim's value.
    pub subject: String,
    /// The first configured audience the token names.
    pub audience: String,
    /// Every configured audience the token names, in configuration order
    /// (a route with a `resource` requires its URI among them).
    pub audiences: Vec<String>,
    /// From `scope` (space-separated) or `scp`.
    pub scopes: Vec<String>,
    /// Groups from `groups_claim`, prefixed, as `Group` uids.
    pub groups: Vec<String>,
    /// `iat`, if present.
    pub issued_at: Option<i64>,
    /// `nbf`, if present.
    pub not_before: Option<i64>,
    /// `exp`.
    pub expires_at: i64,
    /// The leeway applied to `exp` / `nbf`.
    pub leeway: i64,
    /// `jti`, if present.
    pub jti: Option<String>,
    /// RFC 8693 `act` chain: the acting party first, then whoever it acts for.
    pub actors: Vec<String>,
    /// `context_claims` present in the token, as strings.
    pub claims: Vec<(String, String)>,
    /// Header or `jwt_authn` metadata.
    pub source: TokenSource,
}

// === impl VerifiedToken ===

impl VerifiedToken {
    /// Whether the time claims still hold at `now` (unix seconds).
    pub fn is_current(&self, now: i64) -> bool {
        now < self.expires_at.saturating_add(self.leeway)
            && self
                .not_before
                .is_none_or(|nbf| now.saturating_add(self.leeway) >= nbf)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
