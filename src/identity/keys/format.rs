//! The API key format: `<prefix>_<key id>_<secret>`.
//!
//! - prefix: recognisable (default `cgk`), so secret scanners and people can
//!   tell a cedar-gate key from a provider key;
//! - key id: 16 lower-case hex digits (64 random bits), not secret: the store
//!   is indexed by it, logs and the audit name it;
//! - secret: 43 base64url characters, 256 random bits from the system CSPRNG
//!   (aws-lc-rs, already in the tree through jsonwebtoken).
//!
//! The store keeps `SHA-256("cedar-gate-api-key-v1" 0 id 0 secret)`. The
//! secret has 256 bits of entropy, so a fast hash is enough (nothing to brute
//! force); binding the id into it means a secret cannot be moved to another key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Hex digits of a key id.
pub const ID_LEN: usize = 16;
/// Characters of an encoded secret (32 bytes, base64url without padding).
pub const SECRET_LEN: usize = 43;
/// Random bytes in a secret.
pub const SECRET_BYTES: usize = 32;
/// Default prefix.
pub const DEFAULT_PREFIX: &str = "cgk";

/// Why a presented value is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not `<prefix>_<16 hex>_<43 base64url>`.
    #[error("not a well-formed API key")]
    Malformed,
}

/// A parsed key (borrowed from the request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The key id.
    pub id: &'a str,
    /// The secret part.
    pub secret: &'a str,
}

impl std::fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether `value` starts like a key with this prefix (`<prefix>_`): then it is
/// an API key attempt, refused if malformed, and never treated as a JWT.
pub fn has_prefix(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// Parses `<prefix>_<id>_<secret>`.
pub fn parse<'a>(value: &'a str, prefix: &str) -> Result<ParsedKey<'a>, FormatError> {
    let rest = value
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(FormatError::Malformed)?;
    let (id, secret) = rest
        .split_at_checked(ID_LEN)
        .ok_or(FormatError::Malformed)?;
    let secret = secret.strip_prefix('_').ok_or(FormatError::Malformed)?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        // The last character carries 2 padding bits; only canonical encodings.
        && URL_SAFE_NO_PAD.decode(secret).is_ok_and(|d| d.len() == SECRET_BYTES);
    if !id_ok || !secret_ok {
        return Err(FormatError::Malformed);
    }
    Ok(ParsedKey { id, secret })
}

/// The stored hash of a key's secret.
pub fn hash(id: &str, secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"cedar-gate-api-key-v1\0");
    h.update(id.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// `sha256:<hex>`, as the store writes it.
pub fn hash_text(digest: &[u8; 32]) -> String {
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Reads `sha256:<hex>` back.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why no key could be generated.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A fresh key id.
pub fn new_id() -> Result<String, RandomError> {
    let mut bytes = [0u8; ID_LEN / 2];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A fresh secret (256 bits).
pub fn new_secret() -> Result<String, RandomError> {
    let mut bytes = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key as the caller presents it.
pub fn render(prefix: &str, id: &str, secret: &str) -> String {
    format!("{prefix}_{id}_{secret}")
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let id = new_id().unwrap();
        let secret = new_secret().unwrap();
        assert_eq!((id.len(), secret.len()), (ID_LEN, SECRET_LEN));
        let key = render("cgk", &id, &secret);
        let parsed = parse(&key, "cgk").unwrap();
        assert_eq!((parsed.id, parsed.secret), (id.as_str(), secret.as_str()));
        assert!(!format!("{parsed:?}").contains(&secret));
        // Truncated, extended, other prefix, bad id, bad characters.
        for bad in [
            &key[..key.len() - 1],
            &format!("{key}x"),
            &key.replacen("cgk_", "sk_", 1),
            &key.replacen("cgk_", "cgkx_", 1),
            &render("cgk", &"G".repeat(16), &secret),
            &render("cgk", &id, &format!("{}!", &secret[..42])),
            "cgk_",
            "",
        ] {
            assert_eq!(parse(bad, "cgk"), Err(FormatError::Malformed), "{bad}");
        }
        assert!(has_prefix(&key, "cgk") && !has_prefix("cgkx_1", "cgk"));
        let h = hash(&id, &secret);
        assert_eq!(parse_hash(&hash_text(&h)), Some(h));
        assert_ne!(hash(&id, &secret), hash(&new_id().unwrap(), &secret));
        assert!(digest_eq(&h, &h) && !digest_eq(&h, &[0; 32]));
    }
}
