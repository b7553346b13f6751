//! Every code a refused credential can be counted under
//! (`cedar_gate_identity_rejections_total{reason}`), so the family can be registered at
//! zero at start: `increase()` then sees the first rejection of each kind, and an alert
//! on one reason has a series to watch before it ever happens.
//!
//! The lists mirror the `reason()` matches of [`super::IdentityError`],
//! [`super::cert::CertError`] and [`super::jwt::TokenError`]; a test reads those matches
//! from the source, so a new code cannot be left out.

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
];

/// Every identity rejection code, each once.
pub fn all() -> impl Iterator<Item = &'static str> {
    IDENTITY.iter().chain(CERTIFICATE).chain(TOKEN).copied()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The string literals returned in the `reason()` match of `source`.
    fn reason_codes(source: &str) -> BTreeSet<&str> {
        let start = source
            .find("pub fn reason(&self) -> &'static str {")
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
        ] {
            let listed: BTreeSet<&str> = list.iter().copied().collect();
            assert_eq!(listed.len(), list.len(), "a code listed twice");
            assert_eq!(listed, reason_codes(source));
        }
        let all: BTreeSet<&str> = all().collect();
        assert_eq!(all.len(), IDENTITY.len() + CERTIFICATE.len() + TOKEN.len());
    }
}
