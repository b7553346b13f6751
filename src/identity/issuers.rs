//! Token issuer configuration (`identity.issuers`, `identity.token_header`,
//! `identity.jwt_authn_metadata`, `identity.principal`) and its validation.
//!
//! Everything that can be wrong with an issuer is refused at load, never per
//! request: `none` and HMAC algorithms, unbounded leeway, two issuers sharing a
//! Cedar entity type (their principals could collide), plain-HTTP key URLs
//! beyond loopback.

use std::path::PathBuf;
use std::str::FromStr;

use cedar_policy::EntityTypeName;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// An `identity` setting that is well-formed but not acceptable.
#[derive(Debug, thiserror::Error)]
#[error("invalid config: `{key}` {message}")]
pub struct InvalidIdentityConfig {
    /// The dotted key.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Largest `leeway_seconds` accepted: clock skew, not a grace period.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Default `leeway_seconds`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Default `refresh_interval_seconds`.
pub const DEFAULT_REFRESH_SECONDS: u64 = 300;
/// Default `min_refresh_interval_seconds` (rate limit of unknown-`kid` refreshes).
pub const DEFAULT_MIN_REFRESH_SECONDS: u64 = 10;
/// Default `identity.token_header`.
pub const DEFAULT_TOKEN_HEADER: &str = "authorization";
/// Default namespace of Envoy's `jwt_authn` filter metadata.
pub const DEFAULT_JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// Default verified-token cache capacity.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;

/// Entity types cedar-gate itself uses; an issuer may not claim them.
const RESERVED_ENTITY_TYPES: [&str; 8] = [
    "Workload",
    "Anonymous",
    "Group",
    "Route",
    "RouteGroup",
    "Action",
    "Model",
    "Tool",
];

/// One token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// Key source: a JWKS file on disk (re-read on every refresh).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Key source: a JWKS URL (`https://`, or `http://` on loopback only).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Key source: OIDC discovery from `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Extra CA certificates (PEM bundle) trusted for this issuer's HTTPS fetches,
    /// for example the Kubernetes cluster CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accepted `aud` values; a token must name at least one.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accepted signature algorithms. `none` and `HS*` are refused at load.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// When set, tokens with `exp - iat` above it (or without `iat`) are refused.
    #[serde(default)]
    pub max_lifetime_seconds: Option<u64>,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Cedar entity type of the subject (`User`, `Agent`, `Client`, ...).
    /// One entity type per issuer, so principals of two issuers never collide.
    pub entity_type: IssuerEntityType,
    /// Claim naming the subject (`sub`; `client_id` or `azp` for client credentials).
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claim holding groups or roles (string or array of strings); each becomes
    /// a `Group` parent of the principal.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Prepended to every group from `groups_claim` (for example `okta:`), so an
    /// issuer cannot put its subjects into groups meant for another source.
    #[serde(default)]
    pub groups_prefix: String,
    /// Claims copied into `context.auth.claims` (string, number and boolean
    /// values, as strings). Declare each in the schema's `TokenClaims`.
    #[serde(default)]
    pub context_claims: Vec<String>,
    /// Readiness waits until this issuer has a key set.
    #[serde(default = "default_true")]
    pub required: bool,
    /// How often keys are re-fetched.
    #[serde(default = "default_refresh")]
    pub refresh_interval_seconds: u64,
    /// Least time between two fetches (an unknown `kid` triggers one, at most
    /// this often).
    #[serde(default = "default_min_refresh")]
    pub min_refresh_interval_seconds: u64,
    /// Accept only tokens whose header says `typ: at+jwt` (RFC 9068 access
    /// tokens). Without it, `typ` may also be absent or `JWT`; any other `typ`
    /// is refused either way.
    #[serde(default)]
    pub require_access_token_type: bool,
}

/// A signature algorithm an issuer accepts: a public-key algorithm, parsed
/// when the config is read (`none` and HMAC are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SigningAlgorithm(Algorithm);

/// The Cedar entity type of an issuer's principals, parsed when the config is
/// read; cedar-gate's own entity types are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IssuerEntityType(EntityTypeName);

/// Trusting Envoy's `jwt_authn` filter instead of verifying the token here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnMetadataConfig {
    /// The filter metadata namespace (`metadata_context_namespaces` in Envoy's
    /// ext_authz filter must list it).
    #[serde(default = "default_jwt_authn_namespace")]
    pub namespace: String,
    /// The `payload_in_metadata` name of the jwt_authn provider.
    pub payload_key: String,
}

/// Which identity is the principal when a request has both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalSource {
    /// The token subject (the workload is in `context.auth.workload`).
    #[default]
    Token,
    /// The mTLS workload (the token is in `context.auth`).
    Workload,
}

fn default_algorithms() -> Vec<SigningAlgorithm> {
    vec![SigningAlgorithm(Algorithm::RS256)]
}
fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}
fn default_subject_claim() -> String {
    "sub".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_refresh() -> u64 {
    DEFAULT_REFRESH_SECONDS
}
fn default_min_refresh() -> u64 {
    DEFAULT_MIN_REFRESH_SECONDS
}
fn default_jwt_authn_namespace() -> String {
    DEFAULT_JWT_AUTHN_NAMESPACE.to_owned()
}

/// Parses an algorithm name from config, refusing `none` and HMAC.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err("`none` is never accepted".to_owned());
    }
    let alg = Algorithm::from_str(name).map_err(|_| format!("unknown algorithm `{name}`"))?;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(format!(
            "`{name}` is an HMAC algorithm; only public-key algorithms are accepted"
        ));
    }
    Ok(alg)
}

// === impl SigningAlgorithm ===

impl SigningAlgorithm {
    /// The algorithm.
    pub fn get(self) -> Algorithm {
        self.0
    }
}

impl TryFrom<String> for SigningAlgorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        parse_algorithm(&name).map(Self)
    }
}

// === impl IssuerEntityType ===

impl IssuerEntityType {
    /// The entity type name.
    pub fn name(&self) -> &EntityTypeName {
        &self.0
    }
}

impl TryFrom<String> for IssuerEntityType {
    type Error = String;

    fn try_from(ty: String) -> Result<Self, Self::Error> {
        let name = EntityTypeName::from_str(&ty)
            .map_err(|_| format!("`{ty}` is not a Cedar entity type name"))?;
        if RESERVED_ENTITY_TYPES.contains(&ty.as_str()) {
            return Err(format!("`{ty}` is reserved for cedar-gate's own entities"));
        }
        Ok(Self(name))
    }
}

fn invalid(key: &'static str, message: String) -> InvalidIdentityConfig {
    InvalidIdentityConfig { key, message }
}

/// Whether `url` may be fetched: `https://`, or `http://` to a loopback host.
fn fetchable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// Validates the token part of `identity`: what relates settings to each
/// other (each value was parsed on its own while the config was read).
pub fn validate(
    issuers: &[IssuerConfig],
    jwt_authn: Option<&JwtAuthnMetadataConfig>,
) -> Result<(), InvalidIdentityConfig> {
    let mut entity_types: Vec<&EntityTypeName> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for i in issuers {
        let name = i.issuer.as_str();
        if name.is_empty() {
            return Err(invalid("identity.issuers.issuer", "is empty".to_owned()));
        }
        if names.contains(&name) {
            return Err(invalid(
                "identity.issuers.issuer",
                format!("`{name}` is configured twice"),
            ));
        }
        names.push(name);
        i.check_keys_and_limits()?;
        let ty = i.entity_type.name();
        if entity_types.contains(&ty) {
            // Two issuers with one entity type could both mint `User::"alice"`.
            return Err(invalid(
                "identity.issuers.entity_type",
                format!("`{ty}` is used by two issuers; use one entity type per issuer"),
            ));
        }
        entity_types.push(ty);
        i.check_claims()?;
    }
    if let Some(m) = jwt_authn {
        check_jwt_authn(m, issuers)?;
    }
    Ok(())
}

/// Envoy's `jwt_authn` payloads need issuers to map them, and carry no header.
fn check_jwt_authn(
    m: &JwtAuthnMetadataConfig,
    issuers: &[IssuerConfig],
) -> Result<(), InvalidIdentityConfig> {
    if m.namespace.is_empty() || m.payload_key.is_empty() {
        return Err(invalid(
            "identity.jwt_authn_metadata",
            "needs a non-empty `namespace` and `payload_key`".to_owned(),
        ));
    }
    if issuers.is_empty() {
        return Err(invalid(
            "identity.jwt_authn_metadata",
            "needs `identity.issuers`: tokens are mapped by their issuer".to_owned(),
        ));
    }
    // The metadata carries the payload only: the header's `typ` could not be read.
    if let Some(i) = issuers.iter().find(|i| i.require_access_token_type) {
        return Err(invalid(
            "identity.issuers.require_access_token_type",
            format!(
                "is set for `{}`, but `identity.jwt_authn_metadata` passes token payloads without their header",
                i.issuer
            ),
        ));
    }
    Ok(())
}

// === impl IssuerConfig ===

impl IssuerConfig {
    /// One key source, fetchable URLs, and bounded times.
    fn check_keys_and_limits(&self) -> Result<(), InvalidIdentityConfig> {
        let name = self.issuer.as_str();
        let sources = usize::from(self.jwks_file.is_some())
            + usize::from(self.jwks_url.is_some())
            + usize::from(self.discovery);
        if sources != 1 {
            return Err(invalid(
                "identity.issuers",
                format!(
                    "issuer `{name}` needs exactly one key source: `jwks_file`, `jwks_url` or `discovery: true`"
                ),
            ));
        }
        if let Some(url) = &self.jwks_url
            && !fetchable(url)
        {
            return Err(invalid(
                "identity.issuers.jwks_url",
                format!("`{url}` must be https:// (http:// only on loopback)"),
            ));
        }
        if self.discovery && !fetchable(name) {
            return Err(invalid(
                "identity.issuers.discovery",
                format!("issuer `{name}` must be an https:// URL for discovery"),
            ));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(invalid(
                "identity.issuers.audiences",
                format!("issuer `{name}` needs at least one non-empty audience"),
            ));
        }
        if self.algorithms.is_empty() {
            return Err(invalid(
                "identity.issuers.algorithms",
                format!("issuer `{name}` has no algorithm"),
            ));
        }
        if self.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(invalid(
                "identity.issuers.leeway_seconds",
                format!("is {}, more than {MAX_LEEWAY_SECONDS}", self.leeway_seconds),
            ));
        }
        if self.max_lifetime_seconds == Some(0) {
            return Err(invalid(
                "identity.issuers.max_lifetime_seconds",
                "must be positive".to_owned(),
            ));
        }
        if self.refresh_interval_seconds == 0 || self.min_refresh_interval_seconds == 0 {
            return Err(invalid(
                "identity.issuers.refresh_interval_seconds",
                "refresh intervals must be positive".to_owned(),
            ));
        }
        Ok(())
    }

    /// The claims it reads are usable.
    fn check_claims(&self) -> Result<(), InvalidIdentityConfig> {
        if self.subject_claim.is_empty() {
            return Err(invalid(
                "identity.issuers.subject_claim",
                "is empty".to_owned(),
            ));
        }
        for c in &self.context_claims {
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(invalid(
                    "identity.issuers.context_claims",
                    format!("`{c}` is not usable as a Cedar attribute name"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn algorithms() {
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("NONE").is_err());
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("RS257").is_err());
        assert_eq!(parse_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
    }

    fn config(issuers: &str) -> Result<crate::config::Config, ConfigError> {
        crate::config::Config::from_yaml(&format!("identity:\n  issuers:\n{issuers}"))
    }

    const AGENTS: &str = "  - issuer: https://agents.example.com\n    jwks_url: https://agents.example.com/jwks\n    audiences: [cedar-gate]\n    entity_type: Agent\n";

    #[test]
    fn valid_issuer_defaults() {
        let c = config(AGENTS).unwrap();
        let i = &c.identity.issuers[0];
        assert_eq!(i.subject_claim, "sub");
        assert_eq!(i.algorithms, vec![SigningAlgorithm(Algorithm::RS256)]);
        assert_eq!(i.leeway_seconds, DEFAULT_LEEWAY_SECONDS);
        assert!(i.required);
        assert_eq!(c.identity.principal, PrincipalSource::Token);
    }

    #[test]
    fn refused_at_load() {
        let cases = [
            (
                format!("{AGENTS}    algorithms: [none]\n"),
                "never accepted",
            ),
            (format!("{AGENTS}    algorithms: [HS256]\n"), "HMAC"),
            (
                format!("{AGENTS}    leeway_seconds: 301\n"),
                "leeway_seconds",
            ),
            (
                format!("{AGENTS}    max_lifetime_seconds: 0\n"),
                "max_lifetime_seconds",
            ),
            (
                format!("{AGENTS}    discovery: true\n"),
                "exactly one key source",
            ),
            (
                AGENTS.replace(
                    "https://agents.example.com/jwks",
                    "http://agents.example.com/jwks",
                ),
                "jwks_url",
            ),
            (AGENTS.replace("[cedar-gate]", "[]"), "audience"),
            (AGENTS.replace("Agent", "Workload"), "reserved"),
            (AGENTS.replace("Agent", "not a type"), "entity type"),
            (
                format!(
                    "{AGENTS}{}",
                    AGENTS.replace("agents.example.com", "other.example.com")
                ),
                "one entity type per issuer",
            ),
            (format!("{AGENTS}{AGENTS}"), "configured twice"),
            (
                format!("{AGENTS}    require_access_token_type: yes please\n"),
                "require_access_token_type",
            ),
            (format!("{AGENTS}    colour: blue\n"), "colour"),
        ];
        for (yaml, needle) in cases {
            let err = config(&yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn token_options() {
        let ok = crate::config::Config::from_yaml(&format!(
            "identity:\n  principal: workload\n  token_header: x-agent-token\n  jwt_authn_metadata:\n    payload_key: jwt_payload\n  issuers:\n{AGENTS}response:\n  resource_metadata: https://gw.example.com/.well-known/oauth-protected-resource\n"
        ))
        .unwrap();
        assert_eq!(ok.identity.principal, PrincipalSource::Workload);
        assert_eq!(
            ok.identity.jwt_authn_metadata.unwrap().namespace,
            DEFAULT_JWT_AUTHN_NAMESPACE
        );
        let err = crate::config::Config::from_yaml(
            "identity:\n  jwt_authn_metadata:\n    payload_key: p\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("identity.issuers"), "{err}");
        let err = crate::config::Config::from_yaml(&format!(
            "identity:\n  jwt_authn_metadata:\n    payload_key: p\n  issuers:\n{AGENTS}    require_access_token_type: true\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("without their header"), "{err}");
        let err = crate::config::Config::from_yaml("response:\n  resource_metadata: 'x\"y'\n")
            .unwrap_err();
        assert!(err.to_string().contains("resource_metadata"), "{err}");
    }

    #[test]
    fn example_token_config_is_valid() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tokens.yaml");
        let c = crate::config::Config::load(&path).unwrap();
        assert_eq!(c.identity.issuers.len(), 2);
    }

    #[test]
    fn fetchable_urls() {
        assert!(fetchable("https://idp.example.com/jwks"));
        assert!(fetchable("http://127.0.0.1:8080/jwks"));
        assert!(fetchable("http://localhost/jwks"));
        assert!(!fetchable("http://idp.example.com/jwks"));
        assert!(!fetchable("http://127.0.0.1.evil.com/jwks"));
        assert!(!fetchable("file:///etc/passwd"));
    }
}
