//! Every code a refused credential can be counted under
//! (`cedar_gate_identity_rejections_total{reason}`), so the family can be registered at
//! zero at start: `increase()` then sees the first rejection of each kind, and an alert
//! on one reason has a series to watch before it ever happens.
//!
//! The lists mirror the `reason()` matches of [`super::IdentityError`],
//! [`super::cert::CertError`], [`super::jwt::TokenError`] and
//! [`super::keys::ApiKeyError`]; a test reads those matches from the source, so a new
//! code cannot be left out, and another finds any new `reason()` in `src/identity`.

/// Codes [`super::IdentityError::reason`] returns itself.
const IDENTITY: &[&str] = &[
    "invalid_peer_principal",
    "certificate_mismatch",
    "invalid_xfcc",
    "xfcc_spiffe_count",
    "xfcc_invalid_spiffe_id",
    "xfcc_certificate_mismatch",
    "trust_domain_id",
    "untrusted_trust_domain",
];

/// Codes of [`super::cert::CertError::reason`] (peer and XFCC certificates).
const CERTIFICATE: &[&str] = &[
    "too_large",
    "invalid_percent_encoding",
    "not_utf8",
    "no_pem_block",
    "malformed_pem",
    "wrong_pem_label",
    "malformed_certificate",
    "malformed_subject_alt_name",
    "no_spiffe_id",
    "multiple_spiffe_ids",
    "invalid_spiffe_id",
    "validity_out_of_range",
    "not_yet_valid",
    "expired",
    "malformed_certificate_extension",
    "ca_certificate",
    "no_key_usage",
    "key_usage_lacks_digital_signature",
    "signing_key_usage",
    "certificate_lifetime_exceeded",
];

/// Codes of [`super::jwt::TokenError::reason`].
const TOKEN: &[&str] = &[
    "token_too_large",
    "malformed_token",
    "malformed_token_header",
    "unsupported_token_header",
    "malformed_token_type",
    "token_type_not_accepted",
    "access_token_type_required",
    "malformed_token_claims",
    "algorithm_none",
    "unknown_issuer",
    "algorithm_not_allowed",
    "keys_unavailable",
    "unknown_key_id",
    "key_algorithm_mismatch",
    "invalid_signature",
    "missing_exp",
    "token_expired",
    "token_not_yet_valid",
    "token_issued_in_future",
    "missing_iat",
    "token_lifetime_exceeded",
    "invalid_audience",
    "missing_required_claim",
    "missing_subject",
    "invalid_claim",
    "resource_mismatch",
];

/// Codes of [`super::keys::ApiKeyError::reason`] (gateway-issued API keys).
const API_KEY: &[&str] = &super::keys::ApiKeyError::REASONS;

/// Every identity rejection code, each once.
pub fn all() -> impl Iterator<Item = &'static str> {
    IDENTITY
        .iter()
        .chain(CERTIFICATE)
        .chain(TOKEN)
        .chain(API_KEY)
        .copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The string literals returned in the `reason()` match of `source`.
    fn reason_codes(source: &str) -> BTreeSet<&str> {
        let start = source
            .find(concat!("pub fn reason(&self) -> &'static ", "str {"))
            .unwrap_or_default();
        let body = &source[start..];
        let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
        body.split("=> \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect()
    }

    #[test]
    fn lists_match_the_reason_functions() {
        for (list, source) in [
            (IDENTITY, include_str!("mod.rs")),
            (CERTIFICATE, include_str!("cert/mod.rs")),
            (TOKEN, include_str!("jwt/mod.rs")),
            (API_KEY, include_str!("keys/mod.rs")),
        ] {
            let listed: BTreeSet<&str> = list.iter().copied().collect();
            assert_eq!(listed.len(), list.len(), "a code listed twice");
            assert_eq!(listed, reason_codes(source));
        }
        let all: BTreeSet<&str> = all().collect();
        assert_eq!(
            all.len(),
            IDENTITY.len() + CERTIFICATE.len() + TOKEN.len() + API_KEY.len()
        );
    }

    /// Every `reason()` in `src/identity` is one of the lists above, or one whose codes
    /// are never counted (SPIFFE id and XFCC parse errors are counted as
    /// `xfcc_invalid_spiffe_id`, `invalid_xfcc`, ...): a new rejection source must be
    /// added here.
    #[test]
    fn no_other_reason_function() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/identity");
        let mut found = BTreeSet::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if std::fs::read_to_string(&path)
                    .unwrap()
                    .contains(concat!("pub fn reason(&self) -> &'static ", "str {"))
                {
                    let rel = path.strip_prefix(&root).unwrap().to_string_lossy();
                    found.insert(rel.into_owned());
                }
            }
        }
        let known: BTreeSet<String> = [
            "mod.rs",
            "cert/mod.rs",
            "jwt/mod.rs",
            "keys/mod.rs",
            "spiffe.rs",
            "xfcc/mod.rs",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(found, known);
    }
}
