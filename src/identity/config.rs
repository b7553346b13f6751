//! The identity part of the configuration (`identity`): trust domains, XFCC,
//! token issuers (their own types are in [`super::issuers`]).

use serde::Deserialize;

use crate::identity::spiffe::{TrustDomain, WorkloadId};
use crate::identity::xfcc::XfccElementChoice;
use crate::request::HeaderName;

/// Workload (mTLS / SPIFFE) identity settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// SPIFFE trust domains whose ids are accepted. An id from any other trust
    /// domain is rejected (401). Empty: every SPIFFE id is rejected.
    #[serde(default)]
    pub trust_domains: Vec<TrustDomain>,
    /// `x-forwarded-client-cert` handling.
    #[serde(default)]
    pub xfcc: XfccConfig,
    /// JWT / OIDC token issuers (see `docs/tokens.md`). Empty: tokens are ignored.
    #[serde(default)]
    pub issuers: Vec<crate::identity::issuers::IssuerConfig>,
    /// Header carrying the token (default `authorization`, `Bearer` scheme).
    #[serde(default)]
    pub token_header: Option<HeaderName>,
    /// Take the token payload from Envoy's `jwt_authn` metadata instead.
    #[serde(default)]
    pub jwt_authn_metadata: Option<crate::identity::issuers::JwtAuthnMetadataConfig>,
    /// `token` (default) or `workload`: the principal when a request has both.
    #[serde(default)]
    pub principal: crate::identity::issuers::PrincipalSource,
    /// Verified-token cache capacity (default 10,000; 0 disables it).
    #[serde(default)]
    pub token_cache_capacity: Option<u64>,
    /// When set, a client certificate (`source.certificate` or an XFCC `Cert`)
    /// whose `notAfter - notBefore` is longer is refused: the certificate-side
    /// twin of an issuer's `max_lifetime_seconds`.
    #[serde(default)]
    pub max_certificate_lifetime_seconds: Option<PositiveSeconds>,
}

/// A positive number of seconds, refused while the config is deserialized
/// when it is zero (a maximum of zero would refuse every credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct PositiveSeconds(u64);

// === impl PositiveSeconds ===

impl PositiveSeconds {
    /// The number of seconds.
    pub fn get(self) -> u64 {
        self.0
    }

    /// As a duration.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl TryFrom<u64> for PositiveSeconds {
    type Error = &'static str;

    fn try_from(v: u64) -> Result<Self, Self::Error> {
        if v == 0 {
            return Err("must be a positive number of seconds");
        }
        Ok(Self(v))
    }
}

/// When to believe the `x-forwarded-client-cert` header.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfccConfig {
    /// Set only when the hop in front of Envoy sanitizes XFCC
    /// (`forward_client_cert_details: SANITIZE_SET` or Istio's default). Otherwise
    /// a client could forge it, so the header is ignored entirely.
    #[serde(default)]
    pub trusted: bool,
    /// If non-empty, XFCC is used only when the direct peer (`source.principal`)
    /// is one of these SPIFFE ids (for example the ingress gateway).
    #[serde(default)]
    pub trusted_peers: Vec<WorkloadId>,
    /// Which element names the client: `last` (the hop nearest to us) or `first`.
    #[serde(default)]
    pub element: XfccElementChoice,
}
