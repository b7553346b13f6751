//! Who is calling: workload identity from mTLS (SPIFFE).
//!
//! Sources, in order of trust:
//! 1. `source.principal`: the URI SAN Envoy read from the verified peer certificate
//!    (or Istio's peer identity).
//! 2. `source.certificate`: the peer certificate itself, when Envoy forwards it
//!    (`include_peer_certificate`); checked against its validity window.
//! 3. `x-forwarded-client-cert`: only when config says the hop in front sanitizes
//!    it, and only from the configured peers; otherwise ignored entirely,
//!    because a client can send any header it likes.

pub mod cert;
pub mod issuers;
pub mod jwks;
pub mod jwt;
pub mod spiffe;
pub mod token;
pub mod xfcc;

use std::time::SystemTime;

use crate::config::IdentityConfig;
use crate::request::HttpRequest;
use cert::CertError;
use jwt::{TokenError, VerifiedToken};
use spiffe::{SpiffeId, SpiffeIdError};
use xfcc::XfccError;

/// Where a workload identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadSource {
    /// Envoy's `source.principal`.
    PeerPrincipal,
    /// The forwarded peer certificate.
    PeerCertificate,
    /// A trusted `x-forwarded-client-cert` element.
    Xfcc,
}

/// A workload authenticated by mTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Its SPIFFE id.
    pub id: SpiffeId,
    /// Where the id came from.
    pub source: WorkloadSource,
    /// The certificate's not-after, when the certificate was seen; nothing
    /// derived from this identity may outlive it.
    pub not_after: Option<SystemTime>,
}

/// Everything known about the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The mTLS workload, if any.
    pub workload: Option<Workload>,
    /// The verified bearer token, if any.
    pub token: Option<std::sync::Arc<VerifiedToken>>,
}

// === impl Identity ===

impl Identity {
    /// How the caller authenticated: `mtls`, `jwt`, `mtls+jwt` or `none`.
    pub fn method(&self) -> &'static str {
        match (self.workload.is_some(), self.token.is_some()) {
            (true, true) => "mtls+jwt",
            (true, false) => "mtls",
            (false, true) => "jwt",
            (false, false) => "none",
        }
    }
}

/// Why presented credentials were refused (always a 401).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `source.principal` looks like a SPIFFE id but is not a valid one.
    #[error("peer principal is not a valid SPIFFE id: {0}")]
    PeerPrincipal(#[source] SpiffeIdError),
    /// The forwarded peer certificate is unusable.
    #[error("peer certificate rejected: {0}")]
    Certificate(#[source] CertError),
    /// The peer certificate names a different SPIFFE id than `source.principal`.
    #[error("peer certificate SPIFFE id does not match the peer principal")]
    CertificateMismatch,
    /// A trusted XFCC header could not be parsed.
    #[error("x-forwarded-client-cert rejected: {0}")]
    Xfcc(#[source] XfccError),
    /// The chosen XFCC element has no (or more than one) SPIFFE URI.
    #[error("x-forwarded-client-cert element has {0} SPIFFE URIs, expected exactly one")]
    XfccSpiffeCount(usize),
    /// The chosen XFCC element's URI is not a valid SPIFFE id.
    #[error("x-forwarded-client-cert URI is not a valid SPIFFE id: {0}")]
    XfccSpiffeId(#[source] SpiffeIdError),
    /// The SPIFFE id's trust domain is not in `identity.trust_domains`.
    #[error("trust domain `{0}` is not trusted")]
    UntrustedDomain(String),
    /// A bearer token was presented and refused.
    #[error("bearer token rejected: {0}")]
    Token(#[source] TokenError),
}

// === impl IdentityError ===

impl IdentityError {
    /// A fixed, snake_case code for metrics and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::PeerPrincipal(_) => "invalid_peer_principal",
            IdentityError::Certificate(e) => e.reason(),
            IdentityError::CertificateMismatch => "certificate_mismatch",
            IdentityError::Xfcc(_) => "invalid_xfcc",
            IdentityError::XfccSpiffeCount(_) => "xfcc_spiffe_count",
            IdentityError::XfccSpiffeId(_) => "xfcc_invalid_spiffe_id",
            IdentityError::UntrustedDomain(_) => "untrusted_trust_domain",
            IdentityError::Token(e) => e.reason(),
        }
    }
}

/// The XFCC request header.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";

/// Resolves the caller's identity from what Envoy sent.
pub fn resolve(
    req: &HttpRequest,
    cfg: &IdentityConfig,
    now: SystemTime,
) -> Result<Identity, IdentityError> {
    let mut workload = peer_workload(req, now)?;
    if cfg.xfcc.trusted
        && let Some(header) = req.header(XFCC_HEADER)
    {
        let peer_ok = cfg.xfcc.trusted_peers.is_empty()
            || workload
                .as_ref()
                .is_some_and(|w| cfg.xfcc.trusted_peers.iter().any(|p| p == w.id.as_str()));
        if peer_ok {
            workload = Some(xfcc_workload(header, cfg)?);
        }
    }
    if let Some(w) = &workload
        && !cfg.trust_domains.iter().any(|td| td == w.id.trust_domain())
    {
        return Err(IdentityError::UntrustedDomain(
            w.id.trust_domain().to_owned(),
        ));
    }
    Ok(Identity {
        workload,
        token: None,
    })
}

/// Distinct peer certificates whose decoding is remembered.
const CERT_CACHE_CAPACITY: u64 = 4096;

/// Decodes a forwarded certificate once per distinct certificate: Envoy sends
/// the same leaf with every request of a connection, and X.509 parsing costs
/// more than a Cedar decision. Decoding depends on the text alone (the
/// validity window is checked per request), so caching cannot change a result.
fn decode_certificate(text: &str) -> Result<cert::PeerCertificate, CertError> {
    static CACHE: std::sync::LazyLock<
        moka::sync::Cache<String, Result<cert::PeerCertificate, CertError>>,
    > = std::sync::LazyLock::new(|| moka::sync::Cache::new(CERT_CACHE_CAPACITY));
    if let Some(hit) = CACHE.get(text) {
        return hit;
    }
    let decoded = cert::decode_url_encoded_pem(text);
    CACHE.insert(text.to_owned(), decoded.clone());
    decoded
}

fn peer_workload(req: &HttpRequest, now: SystemTime) -> Result<Option<Workload>, IdentityError> {
    let principal = req.source.principal.as_str();
    let cert = if req.source.certificate.is_empty() {
        None
    } else {
        let c = decode_certificate(&req.source.certificate).map_err(IdentityError::Certificate)?;
        c.check_validity(now).map_err(IdentityError::Certificate)?;
        Some(c)
    };
    if principal.starts_with("spiffe://") {
        let id = SpiffeId::parse(principal).map_err(IdentityError::PeerPrincipal)?;
        if let Some(c) = &cert
            && c.spiffe_id != id
        {
            return Err(IdentityError::CertificateMismatch);
        }
        let not_after = cert.map(|c| c.not_after);
        return Ok(Some(Workload {
            id,
            source: WorkloadSource::PeerPrincipal,
            not_after,
        }));
    }
    // A non-SPIFFE principal (a DNS SAN or subject) is not a workload identity.
    Ok(cert.map(|c| Workload {
        id: c.spiffe_id,
        source: WorkloadSource::PeerCertificate,
        not_after: Some(c.not_after),
    }))
}

fn xfcc_workload(header: &str, cfg: &IdentityConfig) -> Result<Workload, IdentityError> {
    let elements = xfcc::parse(header).map_err(IdentityError::Xfcc)?;
    let element = cfg
        .xfcc
        .element
        .pick(&elements)
        .ok_or(IdentityError::XfccSpiffeCount(0))?;
    let mut uris = element.uri.iter().filter(|u| u.starts_with("spiffe://"));
    let (Some(uri), None) = (uris.next(), uris.next()) else {
        let n = element
            .uri
            .iter()
            .filter(|u| u.starts_with("spiffe://"))
            .count();
        return Err(IdentityError::XfccSpiffeCount(n));
    };
    let id = SpiffeId::parse(uri).map_err(IdentityError::XfccSpiffeId)?;
    Ok(Workload {
        id,
        source: WorkloadSource::Xfcc,
        not_after: None,
    })
}
