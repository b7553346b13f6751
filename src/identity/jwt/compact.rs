//! The compact JWS form: a token split and decoded, signature not yet checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value as Json};

use super::{MAX_TOKEN_BYTES, TokenError};

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
pub(super) fn token_type(typ: Option<&Json>) -> Result<TokenType, TokenError> {
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
