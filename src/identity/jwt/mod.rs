//! JWT verification rules: one function per step, one [`TokenError`] variant per
//! way a token can fail, each with a fixed reason code.
//!
//! Signatures are checked by `jsonwebtoken` (aws-lc-rs backend) with a key
//! chosen here; the claim rules are cedar-gate's own so that every failure has
//! its own reason in the 401, the audit event and the metrics.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cedar_policy::{EntityId, EntityTypeName, EntityUid};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value as Json};

use crate::identity::issuers::IssuerConfig;

/// Largest token accepted, in bytes (header + payload + signature, base64url).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most groups taken from a token.
const MAX_GROUPS: usize = 256;
/// Deepest RFC 8693 `act` nesting followed.
const MAX_ACTOR_DEPTH: usize = 8;

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

/// An issuer's claim rules, compiled from its config.
#[derive(Debug, Clone)]
pub struct IssuerRules {
    /// `iss`.
    pub issuer: String,
    entity_type: EntityTypeName,
    audiences: Vec<String>,
    /// The allow-list.
    pub algorithms: Vec<Algorithm>,
    leeway: i64,
    max_lifetime: Option<i64>,
    required_claims: Vec<String>,
    subject_claim: String,
    groups_claim: Option<String>,
    groups_prefix: String,
    context_claims: Vec<String>,
    require_access_token_type: bool,
}

// === impl IssuerRules ===

impl IssuerRules {
    /// An issuer's rules, from its config (parsed when the config was read).
    pub fn new(cfg: &IssuerConfig) -> Self {
        Self {
            issuer: cfg.issuer.clone(),
            entity_type: cfg.entity_type.name().clone(),
            audiences: cfg.audiences.clone(),
            algorithms: cfg.algorithms.iter().map(|a| a.get()).collect(),
            leeway: secs(cfg.leeway_seconds),
            max_lifetime: cfg.max_lifetime_seconds.map(secs),
            required_claims: cfg.required_claims.clone(),
            subject_claim: cfg.subject_claim.clone(),
            groups_claim: cfg.groups_claim.clone(),
            groups_prefix: cfg.groups_prefix.clone(),
            context_claims: cfg.context_claims.clone(),
            require_access_token_type: cfg.require_access_token_type,
        }
    }

    /// Applies the issuer's `require_access_token_type` to the header's `typ`.
    pub fn check_type(&self, typ: TokenType) -> Result<(), TokenError> {
        if self.require_access_token_type && typ != TokenType::AccessToken {
            return Err(TokenError::AccessTokenTypeRequired);
        }
        Ok(())
    }

    /// Checks `alg` against the allow-list.
    pub fn algorithm(&self, alg: &str) -> Result<Algorithm, TokenError> {
        Algorithm::from_str(alg)
            .ok()
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg.chars().take(16).collect()))
    }

    /// Applies every claim rule to (signature-checked or Envoy-verified) claims.
    pub fn check_claims(
        &self,
        claims: &Map<String, Json>,
        now: i64,
        source: TokenSource,
    ) -> Result<VerifiedToken, TokenError> {
        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| now.saturating_add(self.leeway) < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(self.leeway)) {
            return Err(TokenError::IssuedInFuture);
        }
        if let Some(max) = self.max_lifetime {
            let iat = iat.ok_or(TokenError::MissingIssuedAt)?;
            if exp.saturating_sub(iat) > max {
                return Err(TokenError::LifetimeExceeded);
            }
        }
        let audience = self.audience(claims.get("aud"))?;
        for c in &self.required_claims {
            if claims.get(c).is_none_or(Json::is_null) {
                return Err(TokenError::MissingClaim(c.chars().take(64).collect()));
            }
        }
        let subject = match claims.get(&self.subject_claim) {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::MissingSubject),
        };
        let principal =
            EntityUid::from_type_name_and_id(self.entity_type.clone(), EntityId::new(&subject));
        Ok(VerifiedToken {
            issuer: self.issuer.clone(),
            principal,
            subject,
            audience,
            scopes: scopes(claims)?,
            groups: self.groups(claims)?,
            issued_at: iat,
            not_before: nbf,
            expires_at: exp,
            leeway: self.leeway,
            jti: match claims.get("jti") {
                None => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(_) => return Err(TokenError::InvalidClaim("jti")),
            },
            actors: actors(claims.get("act"))?,
            claims: self.context_claims(claims),
            source,
        })
    }

    fn audience(&self, aud: Option<&Json>) -> Result<String, TokenError> {
        let named: Vec<&str> = match aud {
            Some(Json::String(s)) => vec![s.as_str()],
            Some(Json::Array(items)) => items.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        self.audiences
            .iter()
            .find(|a| named.contains(&a.as_str()))
            .cloned()
            .ok_or(TokenError::InvalidAudience)
    }

    fn groups(&self, claims: &Map<String, Json>) -> Result<Vec<String>, TokenError> {
        let Some(path) = &self.groups_claim else {
            return Ok(Vec::new());
        };
        // A dotted path reaches nested claims such as Keycloak's `realm_access.roles`.
        let mut value = None;
        let mut map = Some(claims);
        for part in path.split('.') {
            value = map.and_then(|m| m.get(part));
            map = value.and_then(Json::as_object);
        }
        let groups: Vec<String> = match value {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(s)) => vec![s.clone()],
            Some(Json::Array(items)) => items
                .iter()
                .map(|g| g.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(TokenError::InvalidClaim("groups"))?,
            Some(_) => return Err(TokenError::InvalidClaim("groups")),
        };
        if groups.len() > MAX_GROUPS || groups.iter().any(String::is_empty) {
            return Err(TokenError::InvalidClaim("groups"));
        }
        Ok(groups
            .into_iter()
            .map(|g| format!("{}{g}", self.groups_prefix))
            .collect())
    }

    fn context_claims(&self, claims: &Map<String, Json>) -> Vec<(String, String)> {
        self.context_claims
            .iter()
            .filter_map(|name| {
                let v = match claims.get(name)? {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((name.clone(), v))
            })
            .collect()
    }
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A NumericDate claim (seconds; fractions truncated).
fn numeric_date(claims: &Map<String, Json>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Json::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn scopes(claims: &Map<String, Json>) -> Result<Vec<String>, TokenError> {
    let mut out: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
            Some(Json::Array(items)) => {
                for i in items {
                    out.push(
                        i.as_str()
                            .ok_or(TokenError::InvalidClaim("scope"))?
                            .to_owned(),
                    );
                }
            }
            Some(_) => return Err(TokenError::InvalidClaim("scope")),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The RFC 8693 delegation chain: `act.sub`, then `act.act.sub`, ...
fn actors(act: Option<&Json>) -> Result<Vec<String>, TokenError> {
    let mut out = Vec::new();
    let mut next = act;
    while let Some(v) = next {
        if out.len() == MAX_ACTOR_DEPTH {
            return Err(TokenError::InvalidClaim("act"));
        }
        let obj = v.as_object().ok_or(TokenError::InvalidClaim("act"))?;
        let sub = obj
            .get("sub")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::InvalidClaim("act"))?;
        out.push(sub.to_owned());
        next = obj.get("act");
    }
    Ok(out)
}

/// What a token's `typ` header says it is, among the kinds accepted at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// No `typ`: most issuers omit it on access tokens.
    Unspecified,
    /// `JWT` / `application/jwt`: a generic JWT.
    Jwt,
    /// `at+jwt` / `application/at+jwt`: an RFC 9068 access token.
    AccessToken,
}

/// Longest `typ` an error message repeats.
const MAX_TYPE_ECHO: usize = 40;

/// Reads `typ` (RFC 7515 §4.1.9). The value is a media type: compared without
/// regard to ASCII case, with `application/` implied when it has no `/`. Only
/// `jwt` and `at+jwt` are accepted; every other value names another kind of
/// token (`secevent+jwt`, `id_token+jwt`, `dpop+jwt`, `logout+jwt`, ...) that
/// is signed by the same keys but is not a credential for calling an API
/// (RFC 8725 §3.11). Parameters and whitespace are not stripped: no issuer
/// writes them, so they are refused rather than interpreted.
fn token_type(typ: Option<&Json>) -> Result<TokenType, TokenError> {
    let typ = match typ {
        None => return Ok(TokenType::Unspecified),
        Some(Json::String(t)) => t,
        Some(_) => return Err(TokenError::MalformedType),
    };
    let lower = typ.to_ascii_lowercase();
    let subtype = match lower.split_once('/') {
        None => lower.as_str(),
        Some(("application", sub)) if !sub.contains('/') => sub,
        Some(_) => "",
    };
    match subtype {
        "jwt" => Ok(TokenType::Jwt),
        "at+jwt" => Ok(TokenType::AccessToken),
        _ => Err(TokenError::UnacceptedType(
            typ.chars().take(MAX_TYPE_ECHO).collect(),
        )),
    }
}

/// A compact JWS split and decoded, signature not yet checked.
pub struct Parsed<'a> {
    /// `alg` as written.
    pub alg: String,
    /// `kid`, if any.
    pub kid: Option<String>,
    /// What `typ` says the token is.
    pub typ: TokenType,
    /// The payload object.
    pub claims: Map<String, Json>,
    /// `header.payload`, what the signature covers.
    pub signing_input: &'a str,
    /// The base64url signature segment.
    pub signature: &'a str,
}

impl std::fmt::Debug for Parsed<'_> {
    // The signing input and signature are the token itself: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .finish_non_exhaustive()
    }
}

/// Splits and decodes a compact JWS. Checks size and structure only.
pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let b64url = |seg: &str| {
        seg.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // The signature may be empty here so that `alg: none` gets its own reason.
    if h.is_empty() || p.is_empty() || !b64url(h) || !b64url(p) || !b64url(s) {
        return Err(TokenError::Malformed);
    }
    let header: Map<String, Json> = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::MalformedHeader)?;
    let alg = header
        .get("alg")
        .and_then(Json::as_str)
        .ok_or(TokenError::MalformedHeader)?
        .to_owned();
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgorithmNone);
    }
    if s.is_empty() {
        return Err(TokenError::Malformed);
    }
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedHeader);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Json::String(k)) => Some(k.clone()),
        Some(_) => return Err(TokenError::MalformedHeader),
    };
    let typ = token_type(header.get("typ"))?;
    let claims: Map<String, Json> = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::MalformedClaims)?;
    let signing_input = token.get(..h.len() + 1 + p.len()).unwrap_or_default();
    Ok(Parsed {
        alg,
        kid,
        typ,
        claims,
        signing_input,
        signature: s,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
