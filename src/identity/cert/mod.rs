//! The peer certificate Envoy forwards in `attributes.source.certificate`.
//!
//! Envoy sends the URL-encoded PEM of the client's leaf certificate. Envoy terminated the
//! TLS connection and already verified the chain and the signature against its trust
//! bundle, so this module does not: it reads the X.509-SVID's SPIFFE id, checks that the
//! certificate is usable as a leaf SVID (X509-SVID §4.1, §4.3, §5.2: `cA` not set, key usage
//! present with `digitalSignature` and without `keyCertSign` / `cRLSign`), and re-checks the
//! validity window (and, when configured, its length) against our own clock.
//!
//! Envoy's chain validation does not make these checks redundant: a CA certificate or a
//! certificate minted for another purpose chains to the same trust bundle, and a CA key
//! that can act as a client could also issue itself any workload identity.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::percent_decode_str;
use x509_parser::certificate::X509Certificate;
use x509_parser::error::PEMError;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE};
use x509_parser::pem::parse_x509_pem;
use x509_parser::time::ASN1Time;

use crate::identity::spiffe::{SpiffeId, SpiffeIdError};

/// Largest input accepted, in bytes, before or after URL-decoding. A leaf SVID is ~1 KiB.
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// A URI SAN with this scheme (any case) is taken as the SPIFFE id.
const SPIFFE_SCHEME: &str = "spiffe:";
/// How much of a PEM label an error message repeats.
const MAX_LABEL_ECHO: usize = 64;

/// What the authorizer needs from the client's leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The single SPIFFE id in the URI SAN.
    pub spiffe_id: SpiffeId,
    /// Start of the validity window.
    pub not_before: SystemTime,
    /// End of the validity window (inclusive).
    pub not_after: SystemTime,
}

/// Why the forwarded peer certificate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The input is larger than 64 KiB.
    #[error("peer certificate is {len} bytes, more than the 65536 allowed")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
    },
    /// A `%` is not followed by two hex digits.
    #[error("peer certificate has a malformed percent escape at byte {offset}")]
    InvalidPercentEncoding {
        /// Where the `%` is.
        offset: usize,
    },
    /// The URL-decoded bytes are not UTF-8.
    #[error("URL-decoded peer certificate is not UTF-8")]
    NotUtf8,
    /// There is no `-----BEGIN ...-----` line.
    #[error("peer certificate has no PEM block")]
    NoPemBlock,
    /// The PEM block is truncated or its base64 is invalid.
    #[error("peer certificate PEM is malformed")]
    MalformedPem,
    /// The PEM block is not a `CERTIFICATE`.
    #[error("peer certificate PEM label is `{label}`, not `CERTIFICATE`")]
    WrongPemLabel {
        /// The label found, cut to 64 characters.
        label: String,
    },
    /// The DER inside the PEM is not an X.509 certificate.
    #[error("peer certificate is not a valid X.509 certificate")]
    MalformedCertificate,
    /// The subject alternative name extension is malformed or repeated.
    #[error("peer certificate has a malformed subject alternative name extension")]
    MalformedSubjectAltName,
    /// No URI SAN has the `spiffe` scheme.
    #[error("peer certificate has no SPIFFE id in its URI SANs")]
    NoSpiffeId,
    /// More than one URI SAN has the `spiffe` scheme; an X.509-SVID has exactly one.
    #[error("peer certificate has {count} SPIFFE ids in its URI SANs; an X.509-SVID has one")]
    MultipleSpiffeIds {
        /// How many were found.
        count: usize,
    },
    /// The `spiffe` URI SAN is not a valid SPIFFE id.
    #[error("peer certificate URI SAN is not a valid SPIFFE id: {0}")]
    InvalidSpiffeId(#[from] SpiffeIdError),
    /// A validity time cannot be represented as a `SystemTime`.
    #[error("peer certificate validity is out of range")]
    ValidityOutOfRange,
    /// The certificate's validity window has not started.
    #[error("peer certificate is not valid before unix time {not_before}")]
    NotYetValid {
        /// `notBefore`, in seconds since the Unix epoch.
        not_before: i64,
    },
    /// The certificate's validity window has ended.
    #[error("peer certificate expired at unix time {not_after}")]
    Expired {
        /// `notAfter`, in seconds since the Unix epoch.
        not_after: i64,
    },
    /// The basic constraints or key usage extension is repeated or cannot be decoded.
    #[error("peer certificate has a malformed or repeated `{0}` extension")]
    MalformedExtension(&'static str),
    /// Basic constraints say `cA=TRUE`: a signing certificate, never a client SVID.
    #[error("peer certificate is a CA certificate (basic constraints `cA=TRUE`), not a leaf SVID")]
    CaCertificate,
    /// No key usage extension; an X.509-SVID must have one.
    #[error("peer certificate has no key usage extension; a leaf SVID needs `digitalSignature`")]
    NoKeyUsage,
    /// Key usage without `digitalSignature`, which a leaf SVID must set.
    #[error("peer certificate key usage lacks `digitalSignature`, which a leaf SVID must set")]
    NoDigitalSignature,
    /// Key usage with `keyCertSign` or `cRLSign`, which a leaf SVID must not set.
    #[error(
        "peer certificate key usage has `keyCertSign` or `cRLSign`, which a leaf SVID must not set"
    )]
    SigningKeyUsage,
    /// `notAfter - notBefore` is above `identity.max_certificate_lifetime_seconds`.
    #[error("peer certificate lifetime is {lifetime} s, more than the {max} s allowed")]
    LifetimeExceeded {
        /// `notAfter - notBefore`, in seconds.
        lifetime: u64,
        /// The configured maximum, in seconds.
        max: u64,
    },
}

/// Parses Envoy's `attributes.source.certificate`: a URL-encoded PEM leaf certificate.
pub fn parse_url_encoded_pem(s: &str, now: SystemTime) -> Result<PeerCertificate, CertError> {
    let cert = decode_url_encoded_pem(s)?;
    cert.check_validity(now)?;
    Ok(cert)
}

/// Like [`parse_url_encoded_pem`] without the validity-window check, so the
/// result depends on `s` alone and can be cached.
pub fn decode_url_encoded_pem(s: &str) -> Result<PeerCertificate, CertError> {
    if s.len() > MAX_INPUT_BYTES {
        return Err(CertError::TooLarge { len: s.len() });
    }
    // `percent_decode_str` passes malformed escapes through; we want them rejected.
    let bytes = s.as_bytes();
    let is_hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
    if let Some(offset) =
        (0..bytes.len()).find(|&i| bytes[i] == b'%' && !(is_hex(i + 1) && is_hex(i + 2)))
    {
        return Err(CertError::InvalidPercentEncoding { offset });
    }
    let pem = percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| CertError::NotUtf8)?;
    decode_pem(pem.as_bytes())
}

/// Parses a PEM leaf certificate, reads its SPIFFE id and checks it is valid at `now`.
///
/// Only the first PEM block is read. The chain and signature are not verified here:
/// Envoy terminated the TLS connection and verified them before forwarding.
pub fn parse_pem(pem: &[u8], now: SystemTime) -> Result<PeerCertificate, CertError> {
    let cert = decode_pem(pem)?;
    cert.check_validity(now)?;
    Ok(cert)
}

/// Like [`parse_pem`] without the validity-window check.
pub fn decode_pem(pem: &[u8]) -> Result<PeerCertificate, CertError> {
    if pem.len() > MAX_INPUT_BYTES {
        return Err(CertError::TooLarge { len: pem.len() });
    }
    let (_, block) = parse_x509_pem(pem).map_err(|e| match e {
        x509_parser::nom::Err::Error(PEMError::MissingHeader) => CertError::NoPemBlock,
        _ => CertError::MalformedPem,
    })?;
    if block.label != "CERTIFICATE" {
        return Err(CertError::WrongPemLabel {
            label: block.label.chars().take(MAX_LABEL_ECHO).collect(),
        });
    }
    let cert = block
        .parse_x509()
        .map_err(|_| CertError::MalformedCertificate)?;

    let spiffe_id = spiffe_id(&cert)?;
    check_leaf(&cert)?;

    let validity = cert.validity();
    let not_before = to_system_time(validity.not_before)?;
    let not_after = to_system_time(validity.not_after)?;
    Ok(PeerCertificate {
        spiffe_id,
        not_before,
        not_after,
    })
}

// === impl PeerCertificate ===

impl PeerCertificate {
    /// Checks that `now` is inside the validity window (bounds inclusive).
    pub fn check_validity(&self, now: SystemTime) -> Result<(), CertError> {
        if now < self.not_before {
            return Err(CertError::NotYetValid {
                not_before: unix_seconds(self.not_before),
            });
        }
        if now > self.not_after {
            return Err(CertError::Expired {
                not_after: unix_seconds(self.not_after),
            });
        }
        Ok(())
    }

    /// `notAfter - notBefore` (zero if inverted).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// Checks the validity window's length against `max`, when one is configured.
    pub fn check_lifetime(&self, max: Option<Duration>) -> Result<(), CertError> {
        match max {
            Some(max) if self.lifetime() > max => Err(CertError::LifetimeExceeded {
                lifetime: self.lifetime().as_secs(),
                max: max.as_secs(),
            }),
            _ => Ok(()),
        }
    }
}

/// The X509-SVID leaf rules (§4.1, §4.3, §5.2). Criticality of the key usage
/// extension is not checked: the usage bits are what matter here, and Envoy
/// already refused a certificate with a critical extension it does not know.
fn check_leaf(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    // Matched by hand rather than with `basic_constraints()`, which reads an
    // undecodable extension as absent; here that fails closed.
    let basic = cert
        .get_extension_unique(&OID_X509_EXT_BASIC_CONSTRAINTS)
        .map_err(|_| CertError::MalformedExtension("basicConstraints"))?;
    if let Some(ext) = basic {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) if bc.ca => {
                return Err(CertError::CaCertificate);
            }
            ParsedExtension::BasicConstraints(_) => {}
            _ => return Err(CertError::MalformedExtension("basicConstraints")),
        }
    }
    let ext = cert
        .get_extension_unique(&OID_X509_EXT_KEY_USAGE)
        .map_err(|_| CertError::MalformedExtension("keyUsage"))?
        .ok_or(CertError::NoKeyUsage)?;
    let ParsedExtension::KeyUsage(ku) = ext.parsed_extension() else {
        return Err(CertError::MalformedExtension("keyUsage"));
    };
    if ku.key_cert_sign() || ku.crl_sign() {
        return Err(CertError::SigningKeyUsage);
    }
    if !ku.digital_signature() {
        return Err(CertError::NoDigitalSignature);
    }
    Ok(())
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The one SPIFFE id among the URI SANs, per the X.509-SVID spec. URI SANs of other
/// schemes are ignored.
fn spiffe_id(cert: &X509Certificate<'_>) -> Result<SpiffeId, CertError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertError::MalformedSubjectAltName)?
        .ok_or(CertError::NoSpiffeId)?;
    let mut ids = Vec::new();
    for name in &san.value.general_names {
        match name {
            // A name x509-parser could not decode might be a SPIFFE id; fail closed.
            GeneralName::Invalid(..) => return Err(CertError::MalformedSubjectAltName),
            // The scheme is matched case-insensitively so `SPIFFE://` is rejected as an
            // invalid id rather than silently skipped.
            GeneralName::URI(uri)
                if uri
                    .get(..SPIFFE_SCHEME.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(SPIFFE_SCHEME)) =>
            {
                ids.push(*uri);
            }
            _ => {}
        }
    }
    match ids.as_slice() {
        [] => Err(CertError::NoSpiffeId),
        [id] => Ok(SpiffeId::parse(id)?),
        _ => Err(CertError::MultipleSpiffeIds { count: ids.len() }),
    }
}

fn to_system_time(t: ASN1Time) -> Result<SystemTime, CertError> {
    let secs = t.timestamp();
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    }
    .ok_or(CertError::ValidityOutOfRange)
}

// === impl CertError ===

impl CertError {
    /// A short, stable snake_case code for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::InvalidPercentEncoding { .. } => "invalid_percent_encoding",
            Self::NotUtf8 => "not_utf8",
            Self::NoPemBlock => "no_pem_block",
            Self::MalformedPem => "malformed_pem",
            Self::WrongPemLabel { .. } => "wrong_pem_label",
            Self::MalformedCertificate => "malformed_certificate",
            Self::MalformedSubjectAltName => "malformed_subject_alt_name",
            Self::NoSpiffeId => "no_spiffe_id",
            Self::MultipleSpiffeIds { .. } => "multiple_spiffe_ids",
            Self::InvalidSpiffeId(_) => "invalid_spiffe_id",
            Self::ValidityOutOfRange => "validity_out_of_range",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::MalformedExtension(_) => "malformed_certificate_extension",
            Self::CaCertificate => "ca_certificate",
            Self::NoKeyUsage => "no_key_usage",
            Self::NoDigitalSignature => "key_usage_lacks_digital_signature",
            Self::SigningKeyUsage => "signing_key_usage",
            Self::LifetimeExceeded { .. } => "certificate_lifetime_exceeded",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
