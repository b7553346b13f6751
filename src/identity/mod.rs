//! Who is calling: workload identity from mTLS (SPIFFE).
//!
//! Sources, in order of trust:
//! 1. `source.principal`: the URI SAN Envoy read from the verified peer certificate
//!    (or Istio's peer identity).
//! 2. `source.certificate`: the peer certificate itself, when Envoy forwards it
//!    (`include_peer_certificate`); it must be a leaf X.509-SVID (see [`cert`]),
//!    inside its validity window, and no longer-lived than
//!    `identity.max_certificate_lifetime_seconds` when that is set.
//! 3. `x-forwarded-client-cert`: only when config says the hop in front sanitizes
//!    it, and only from the configured peers; otherwise ignored entirely,
//!    because a client can send any header it likes. When the element carries
//!    the client certificate (`Cert=`), the same certificate rules apply to it.
//!
//! Whatever the source, a SPIFFE id without a path (`spiffe://example.org`)
//! names a trust domain, not a workload (X509-SVID §5.2), and is refused.

pub mod cert;
pub mod config;
pub mod issuers;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod reasons;
pub(crate) mod resolver;
pub mod spiffe;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod token;
pub mod xfcc;

pub use config::{IdentityConfig, PositiveSeconds, XfccConfig};
pub use resolver::{IdentityRejection, Rejection, Resolver};

use std::time::{Duration, SystemTime};

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

impl WorkloadSource {
    /// The name serde writes for it (the audit line's `workload_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadSource::PeerPrincipal => "peer_principal",
            WorkloadSource::PeerCertificate => "peer_certificate",
            WorkloadSource::Xfcc => "xfcc",
        }
    }
}

impl std::fmt::Display for WorkloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadSource::PeerPrincipal => "peer principal",
            WorkloadSource::PeerCertificate => "peer certificate",
            WorkloadSource::Xfcc => "x-forwarded-client-cert",
        })
    }
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
    /// The gateway-issued API key, if one was presented and accepted
    /// ([`keys`]); it is then the principal.
    pub api_key: Option<std::sync::Arc<crate::identity::keys::ApiKeyIdentity>>,
}

// === impl Identity ===

impl Identity {
    /// How the caller authenticated: `api_key`, `mtls`, `jwt`, `mtls+jwt` or `none`.
    pub fn method(&self) -> &'static str {
        if self.api_key.is_some() {
            // The key is the principal; a workload behind it stays in
            // `context.auth.workload` / `spiffe_id`.
            return "api_key";
        }
        match (self.workload.is_some(), self.token.is_some()) {
            (true, true) => "mtls+jwt",
            (true, false) => "mtls",
            (false, true) => "jwt",
            (false, false) => "none",
        }
    }

    /// When the caller's credentials stop being valid: nothing decided for
    /// them (a cached decision) may outlive this. The earliest of the
    /// certificate's not-after, the token's `exp` (without leeway) and the API
    /// key's expiry.
    pub fn valid_until(&self) -> Option<SystemTime> {
        let token = self.token.as_ref().map(|t| {
            let exp = u64::try_from(t.expires_at).unwrap_or(0);
            SystemTime::UNIX_EPOCH + Duration::from_secs(exp)
        });
        let key = self.api_key.as_ref().map(|k| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(k.expires).unwrap_or(0))
        });
        [self.workload.as_ref().and_then(|w| w.not_after), token, key]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the caller presented no credentials at all.
    pub fn is_anonymous(&self) -> bool {
        self.workload.is_none() && self.token.is_none() && self.api_key.is_none()
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
    /// The chosen XFCC element's `Cert` is unusable (same rules as the peer certificate).
    #[error("x-forwarded-client-cert certificate rejected: {0}")]
    XfccCertificate(#[source] CertError),
    /// The chosen XFCC element's `Cert` names another SPIFFE id than its `URI`.
    #[error("x-forwarded-client-cert certificate SPIFFE id does not match its URI")]
    XfccCertificateMismatch,
    /// The SPIFFE id has no path: it names a trust domain, not a workload.
    #[error("SPIFFE id `{id}` from the {from} names a trust domain, not a workload")]
    TrustDomainId {
        /// The id.
        id: String,
        /// Where it came from.
        from: WorkloadSource,
    },
    /// The SPIFFE id's trust domain is not in `identity.trust_domains`.
    #[error("trust domain `{0}` is not trusted")]
    UntrustedDomain(String),
    /// A bearer token was presented and refused.
    #[error("bearer token rejected: {0}")]
    Token(#[source] TokenError),
    /// A gateway-issued API key was presented and refused.
    #[error(transparent)]
    ApiKey(#[from] keys::ApiKeyError),
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
            IdentityError::XfccCertificate(e) => e.reason(),
            IdentityError::XfccCertificateMismatch => "xfcc_certificate_mismatch",
            IdentityError::TrustDomainId { .. } => "trust_domain_id",
            IdentityError::UntrustedDomain(_) => "untrusted_trust_domain",
            IdentityError::Token(e) => e.reason(),
            IdentityError::ApiKey(e) => e.reason(),
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
    let max_lifetime = cfg.max_certificate_lifetime_seconds.map(|m| m.duration());
    let mut workload = peer_workload(req, now, max_lifetime)?;
    if cfg.xfcc.trusted
        && let Some(header) = req.header(XFCC_HEADER)
    {
        let peer_ok = cfg.xfcc.trusted_peers.is_empty()
            || workload
                .as_ref()
                .is_some_and(|w| cfg.xfcc.trusted_peers.iter().any(|p| *p.id() == w.id));
        if peer_ok {
            workload = Some(xfcc_workload(header, cfg, now, max_lifetime)?);
        }
    }
    if let Some(w) = &workload
        && !cfg
            .trust_domains
            .iter()
            .any(|td| td.as_str() == w.id.trust_domain())
    {
        return Err(IdentityError::UntrustedDomain(
            w.id.trust_domain().to_owned(),
        ));
    }
    Ok(Identity {
        workload,
        token: None,
        api_key: None,
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

/// A workload identity: a SPIFFE id with a path. A bare trust-domain id is
/// what signing certificates carry (X509-SVID §3.2, §5.2); accepting it as a
/// caller would let one principal stand for a whole trust domain.
fn workload(
    id: SpiffeId,
    source: WorkloadSource,
    not_after: Option<SystemTime>,
) -> Result<Workload, IdentityError> {
    if id.path().is_empty() {
        return Err(IdentityError::TrustDomainId {
            id: id.as_str().to_owned(),
            from: source,
        });
    }
    Ok(Workload {
        id,
        source,
        not_after,
    })
}

/// Decodes a forwarded client certificate and applies the per-request rules
/// (validity window, maximum lifetime); the leaf SVID rules ran while decoding.
fn client_certificate(
    text: &str,
    now: SystemTime,
    max_lifetime: Option<Duration>,
) -> Result<cert::PeerCertificate, CertError> {
    let c = decode_certificate(text)?;
    c.check_validity(now)?;
    c.check_lifetime(max_lifetime)?;
    Ok(c)
}

fn peer_workload(
    req: &HttpRequest,
    now: SystemTime,
    max_lifetime: Option<Duration>,
) -> Result<Option<Workload>, IdentityError> {
    let principal = req.source.principal.as_str();
    let cert = if req.source.certificate.is_empty() {
        None
    } else {
        Some(
            client_certificate(&req.source.certificate, now, max_lifetime)
                .map_err(IdentityError::Certificate)?,
        )
    };
    if principal.starts_with("spiffe://") {
        let id = SpiffeId::parse(principal).map_err(IdentityError::PeerPrincipal)?;
        if let Some(c) = &cert
            && c.spiffe_id != id
        {
            return Err(IdentityError::CertificateMismatch);
        }
        let not_after = cert.map(|c| c.not_after);
        return workload(id, WorkloadSource::PeerPrincipal, not_after).map(Some);
    }
    // A non-SPIFFE principal (a DNS SAN or subject) is not a workload identity.
    cert.map(|c| {
        workload(
            c.spiffe_id,
            WorkloadSource::PeerCertificate,
            Some(c.not_after),
        )
    })
    .transpose()
}

fn xfcc_workload(
    header: &str,
    cfg: &IdentityConfig,
    now: SystemTime,
    max_lifetime: Option<Duration>,
) -> Result<Workload, IdentityError> {
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
    let not_after = match &element.cert {
        None => None,
        Some(text) => {
            let c = client_certificate(text, now, max_lifetime)
                .map_err(IdentityError::XfccCertificate)?;
            if c.spiffe_id != id {
                return Err(IdentityError::XfccCertificateMismatch);
            }
            Some(c.not_after)
        }
    };
    workload(id, WorkloadSource::Xfcc, not_after)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType};

    const AGENT: &str = "spiffe://example.org/ns/agents/sa/bot";
    const OTHER: &str = "spiffe://example.org/ns/agents/sa/other";
    const DOMAIN: &str = "spiffe://example.org";

    /// A URL-encoded self-signed leaf for `id`, started a minute ago, living `hours`;
    /// `ca` makes it a CA certificate instead.
    fn cert(id: &str, hours: u64, ca: bool) -> String {
        let now = SystemTime::now();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after =
            (now - Duration::from_secs(60) + Duration::from_secs(hours * 3600)).into();
        let pem = params
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn req(principal: &str, certificate: &str, xfcc: Option<String>) -> HttpRequest {
        HttpRequest {
            headers: xfcc
                .map(|x| (XFCC_HEADER.into(), x.into()))
                .into_iter()
                .collect(),
            source: crate::request::Peer {
                principal: principal.to_owned(),
                certificate: certificate.to_owned(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn workload_rules_apply_to_every_source() {
        let cfg = crate::config::Config::from_yaml(
            "identity:\n  trust_domains: [example.org]\n  max_certificate_lifetime_seconds: 7200\n  xfcc:\n    trusted: true\n",
        )
        .unwrap()
        .identity;
        let xfcc = |uri: &str, c: Option<String>| {
            Some(format!(
                "By={OTHER};URI={uri}{}",
                c.map(|c| format!(";Cert={c}")).unwrap_or_default()
            ))
        };
        use WorkloadSource::{PeerCertificate, PeerPrincipal, Xfcc};
        // (what, request, Ok((id, source)) or Err(reason))
        type Case = (
            &'static str,
            HttpRequest,
            Result<(&'static str, WorkloadSource), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "principal",
                req(AGENT, "", None),
                Ok((AGENT, PeerPrincipal)),
            ),
            (
                "bare principal",
                req(DOMAIN, "", None),
                Err("trust_domain_id"),
            ),
            (
                "principal with a trailing slash",
                req("spiffe://example.org/", "", None),
                Err("invalid_peer_principal"),
            ),
            (
                "certificate",
                req("", &cert(AGENT, 1, false), None),
                Ok((AGENT, PeerCertificate)),
            ),
            (
                "certificate with a bare id",
                req("", &cert(DOMAIN, 1, false), None),
                Err("trust_domain_id"),
            ),
            (
                "bare principal with its certificate",
                req(DOMAIN, &cert(DOMAIN, 1, false), None),
                Err("trust_domain_id"),
            ),
            (
                "CA certificate",
                req(AGENT, &cert(AGENT, 1, true), None),
                Err("ca_certificate"),
            ),
            (
                "certificate living 3 h, 2 h allowed",
                req(AGENT, &cert(AGENT, 3, false), None),
                Err("certificate_lifetime_exceeded"),
            ),
            ("xfcc", req("", "", xfcc(AGENT, None)), Ok((AGENT, Xfcc))),
            (
                "xfcc with a bare id",
                req("", "", xfcc(DOMAIN, None)),
                Err("trust_domain_id"),
            ),
            (
                "xfcc with its certificate",
                req("", "", xfcc(AGENT, Some(cert(AGENT, 1, false)))),
                Ok((AGENT, Xfcc)),
            ),
            (
                "xfcc with a CA certificate",
                req("", "", xfcc(AGENT, Some(cert(AGENT, 1, true)))),
                Err("ca_certificate"),
            ),
            (
                "xfcc with a long-lived certificate",
                req("", "", xfcc(AGENT, Some(cert(AGENT, 3, false)))),
                Err("certificate_lifetime_exceeded"),
            ),
            (
                "xfcc with another workload's certificate",
                req("", "", xfcc(AGENT, Some(cert(OTHER, 1, false)))),
                Err("xfcc_certificate_mismatch"),
            ),
        ];
        for (what, r, expected) in cases {
            let got = resolve(&r, &cfg, SystemTime::now())
                .map(|i| i.workload.unwrap())
                .map_err(|e| e.reason());
            let seen = got
                .as_ref()
                .map(|w| (w.id.as_str(), w.source))
                .map_err(|e| *e);
            assert_eq!(seen, expected, "{what}");
            if let Ok(w) = &got {
                // A seen certificate bounds the identity's lifetime.
                assert_eq!(
                    w.not_after.is_some(),
                    what.contains("certificate"),
                    "{what}"
                );
            }
        }
        // Without a maximum, a long-lived leaf is fine.
        let unbounded = IdentityConfig {
            max_certificate_lifetime_seconds: None,
            ..cfg
        };
        let r = req(AGENT, &cert(AGENT, 24 * 365, false), None);
        assert!(resolve(&r, &unbounded, SystemTime::now()).is_ok());
        let e = resolve(&req(DOMAIN, "", None), &unbounded, SystemTime::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SPIFFE id `spiffe://example.org` from the peer principal names a trust domain, not a workload"
        );
    }
}
