//! Token identity for one Check: find the token (bearer header or Envoy's
//! `jwt_authn` metadata), verify it against its issuer, cache the result.
//!
//! The verified-token cache is keyed by the SHA-256 of the token (compared by
//! equality; the token itself is never stored). An entry dies at the token's
//! `exp`, is re-checked against the clock on every hit, and is verified again
//! when its issuer's key set changed since, so a removed key stops working.
//! Failures are never cached.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::identity::IdentityConfig;
use crate::identity::issuers::{
    DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_HEADER, IssuerConfig, JwtAuthnMetadataConfig,
};
use crate::identity::jwks::{self, IssuerKeys, KeySource};
use crate::identity::jwt::{self, IssuerRules, TokenError, TokenSource, VerifiedToken};
use crate::request::HttpRequest;

/// One configured issuer at run time.
struct Issuer {
    rules: IssuerRules,
    keys: Arc<IssuerKeys>,
    cfg: IssuerConfig,
}

#[derive(Clone)]
struct Cached {
    token: Arc<VerifiedToken>,
    generation: u64,
}

/// Longest an entry is kept, whatever its `exp` says (hits re-check the clock anyway;
/// this also keeps `Instant + Duration` far from overflow).
const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Expires each entry at its token's `exp` (plus nothing: the leeway is for
/// clock skew at verification, a cached entry never outlives `exp`).
struct UntilExpiry;

impl moka::Expiry<[u8; 32], Cached> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value
            .token
            .expires_at
            .saturating_sub(unix_now(SystemTime::now()));
        Some(Duration::from_secs(u64::try_from(left).unwrap_or(0)).min(MAX_CACHE_TTL))
    }
}

/// Verifies tokens for every configured issuer.
pub struct TokenVerifier {
    issuers: Vec<Issuer>,
    header: String,
    jwt_authn: Option<JwtAuthnMetadataConfig>,
    cache: Option<Cache<[u8; 32], Cached>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| i.rules.issuer.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch (negative before it, which never happens).
pub fn unix_now(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

// === impl TokenVerifier ===

impl TokenVerifier {
    /// Builds the verifier for the config; `None` when no issuer is
    /// configured (tokens are then ignored). Keys from `jwks_file` are loaded
    /// now; HTTP keys arrive once [`TokenVerifier::start`] runs.
    pub fn new(cfg: &IdentityConfig) -> Option<Self> {
        if cfg.issuers.is_empty() {
            return None;
        }
        let mut issuers = Vec::with_capacity(cfg.issuers.len());
        for c in &cfg.issuers {
            let rules = IssuerRules::new(c);
            let keys = Arc::new(IssuerKeys::default());
            if let Some(path) = &c.jwks_file {
                match std::fs::read(path)
                    .map_err(|e| jwks::JwksError::Read(path.clone(), e))
                    .and_then(|b| jwks::parse_jwks(&b, &path.display().to_string()))
                {
                    Ok(k) => {
                        keys.install(k);
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %c.issuer, error = %e, "cannot load issuer keys")
                    }
                }
            }
            issuers.push(Issuer {
                rules,
                keys,
                cfg: c.clone(),
            });
        }
        let capacity = cfg
            .token_cache_capacity
            .unwrap_or(DEFAULT_TOKEN_CACHE_CAPACITY);
        let cache = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry)
                .build()
        });
        Some(Self {
            issuers,
            header: cfg.token_header.as_ref().map_or_else(
                || DEFAULT_TOKEN_HEADER.to_owned(),
                |h| h.as_str().to_owned(),
            ),
            jwt_authn: cfg.jwt_authn_metadata.clone(),
            cache,
        })
    }

    /// Starts one key refresh task per issuer. Call inside a tokio runtime.
    pub fn start(&self, shutdown: &watch::Sender<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for i in &self.issuers {
            let http = match jwks::http_client(&i.cfg) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(issuer = %i.cfg.issuer, error = %e, "cannot build the key fetch client");
                    crate::record::metrics::record_jwks_refresh(&i.cfg.issuer, false);
                    continue;
                }
            };
            tasks.push(tokio::spawn(i.keys.clone().run_refresh(
                i.cfg.issuer.clone(),
                KeySource::of(&i.cfg),
                http,
                Duration::from_secs(i.cfg.refresh_interval_seconds),
                Duration::from_secs(i.cfg.min_refresh_interval_seconds),
                shutdown.subscribe(),
            )));
        }
        tasks
    }

    /// Whether every issuer marked `required` has a key set.
    pub fn ready(&self) -> bool {
        self.issuers
            .iter()
            .filter(|i| i.cfg.required)
            .all(|i| i.keys.current().is_some())
    }

    /// Issuers (by `iss`) that are required and still have no keys.
    pub fn waiting_for(&self) -> Vec<&str> {
        self.issuers
            .iter()
            .filter(|i| i.cfg.required && i.keys.current().is_none())
            .map(|i| i.cfg.issuer.as_str())
            .collect()
    }

    /// The request's token identity: `Ok(None)` when it carries no token.
    pub fn resolve(
        &self,
        req: &HttpRequest,
        now: SystemTime,
    ) -> Result<Option<Arc<VerifiedToken>>, TokenError> {
        if let Some(m) = &self.jwt_authn
            && let Some(payload) = req
                .filter_metadata
                .get(&m.namespace)
                .and_then(|ns| ns.get(&m.payload_key))
        {
            return self.trusted_payload(payload, now).map(Some);
        }
        match self.bearer(req) {
            Some(token) => self.verify(token, now).map(Some),
            None => Ok(None),
        }
    }

    /// The token from the configured header: `Bearer <token>`, or the bare
    /// value for a header other than `authorization`. Another scheme (`Basic`)
    /// is not a token.
    fn bearer<'r>(&self, req: &'r HttpRequest) -> Option<&'r str> {
        let value = req.header(&self.header)?.trim();
        match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Some(rest.trim()),
            Some(_) => None,
            None if self.header != DEFAULT_TOKEN_HEADER => Some(value),
            None if value.eq_ignore_ascii_case("bearer") => Some(""),
            None => None,
        }
    }

    fn issuer(&self, iss: Option<&serde_json::Value>) -> Result<&Issuer, TokenError> {
        let iss = iss
            .and_then(|v| v.as_str())
            .ok_or(TokenError::UnknownIssuer)?;
        self.issuers
            .iter()
            .find(|i| i.rules.issuer == iss)
            .ok_or(TokenError::UnknownIssuer)
    }

    /// Verifies a compact JWS, from the cache when possible.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Arc<VerifiedToken>, TokenError> {
        let now_s = unix_now(now);
        if token.len() > jwt::MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge(token.len()));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.get(&digest)
        {
            let fresh = self
                .issuers
                .iter()
                .find(|i| i.rules.issuer == hit.token.issuer)
                .and_then(|i| i.keys.current())
                .is_some_and(|k| k.generation == hit.generation);
            if fresh && hit.token.is_current(now_s) {
                return Ok(hit.token);
            }
            cache.invalidate(&digest);
        }
        let parsed = jwt::parse(token)?;
        let issuer = self.issuer(parsed.claims.get("iss"))?;
        let alg = issuer.rules.algorithm(&parsed.alg)?;
        // Before any key lookup: a token of the wrong type never triggers a refresh.
        issuer.rules.check_type(parsed.typ)?;
        let Some(keys) = issuer.keys.current() else {
            issuer.keys.request_refresh();
            return Err(TokenError::KeysUnavailable);
        };
        let candidates = keys
            .candidates(parsed.kid.as_deref(), alg)
            .inspect_err(|e| {
                if *e == TokenError::UnknownKeyId {
                    // Answer now; the rotated key (if real) is there for the retry.
                    issuer.keys.request_refresh();
                }
            })?;
        if !candidates
            .iter()
            .any(|k| jwks::verify(k, alg, parsed.signing_input, parsed.signature))
        {
            return Err(TokenError::InvalidSignature);
        }
        let verified = Arc::new(issuer.rules.check_claims(
            &parsed.claims,
            now_s,
            TokenSource::Header,
        )?);
        if let Some(cache) = &self.cache {
            cache.insert(
                digest,
                Cached {
                    token: verified.clone(),
                    generation: keys.generation,
                },
            );
        }
        Ok(verified)
    }

    /// Envoy's `jwt_authn` already verified the signature; the claim rules
    /// (issuer, time, lifetime, audience, required claims) still apply.
    fn trusted_payload(
        &self,
        payload: &serde_json::Value,
        now: SystemTime,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let claims = payload.as_object().ok_or(TokenError::MalformedClaims)?;
        let issuer = self.issuer(claims.get("iss"))?;
        Ok(Arc::new(issuer.rules.check_claims(
            claims,
            unix_now(now),
            TokenSource::JwtAuthn,
        )?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::testkit::SigningKey;
    use serde_json::json;

    fn verifier(dir: &std::path::Path, cache: u64, extra: &str) -> TokenVerifier {
        let jwk = SigningKey::rsa_a("k1").jwk();
        let path = dir.join("jwks.json");
        std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).unwrap();
        let yaml = format!(
            "identity:\n  token_cache_capacity: {cache}\n{extra}  issuers:\n  - issuer: https://idp\n    jwks_file: {}\n    audiences: [api]\n    entity_type: User\n",
            path.display()
        );
        let cfg = crate::config::Config::from_yaml(&yaml).unwrap();
        TokenVerifier::new(&cfg.identity).unwrap()
    }

    fn sign(claims: serde_json::Value) -> String {
        SigningKey::rsa_a("k1").sign(&claims)
    }

    fn req(headers: &[(&str, &str)]) -> HttpRequest {
        let headers = crate::request::header_list(headers.iter().copied());
        HttpRequest {
            headers,
            ..Default::default()
        }
    }

    #[test]
    fn file_keys_make_it_ready_and_cache_hits_share_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path(), 100, "");
        assert!(v.ready());
        let now = SystemTime::now();
        let t = unix_now(now);
        let token = sign(json!({"iss": "https://idp", "sub": "u", "aud": "api", "exp": t + 60}));
        let a = v.verify(&token, now).unwrap();
        let b = v.verify(&token, now).unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "second verification should be a cache hit"
        );
        // A cached token is still refused once expired (leeway 30 s).
        assert_eq!(
            v.verify(&token, now + Duration::from_secs(91)).unwrap_err(),
            TokenError::Expired
        );
        // Without a cache, each verification is fresh.
        let v = verifier(dir.path(), 0, "");
        let a = v.verify(&token, now).unwrap();
        let b = v.verify(&token, now).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn bearer_extraction() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path(), 0, "");
        let now = SystemTime::now();
        // No header, or another scheme: no token.
        assert_eq!(v.resolve(&req(&[]), now), Ok(None));
        assert_eq!(
            v.resolve(&req(&[("authorization", "Basic dTpw")]), now),
            Ok(None)
        );
        // `Bearer` with nothing after it is a malformed token, not "no token".
        assert_eq!(
            v.resolve(&req(&[("authorization", "Bearer")]), now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            v.resolve(&req(&[("authorization", "bearer x.y")]), now),
            Err(TokenError::Malformed)
        );
        // A custom header takes the bare value.
        let v = verifier(dir.path(), 0, "  token_header: X-Agent-Token\n");
        let t = unix_now(now);
        let token = sign(json!({"iss": "https://idp", "sub": "u", "aud": "api", "exp": t + 60}));
        let got = v.resolve(&req(&[("x-agent-token", &token)]), now).unwrap();
        assert_eq!(got.unwrap().subject, "u");
        assert_eq!(
            v.resolve(&req(&[("authorization", &format!("Bearer {token}"))]), now),
            Ok(None)
        );
    }

    #[test]
    fn context_fields() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path(), 0, "");
        let now = SystemTime::now();
        let t = unix_now(now);
        let token = sign(
            json!({"iss": "https://idp", "sub": "u", "aud": "api", "iat": t - 7, "exp": t + 60, "scp": ["a"]}),
        );
        let vt = v.verify(&token, now).unwrap();
        let ctx = crate::decide::question::token_context(&vt, t);
        use crate::vocab::Value;
        assert!(ctx.contains(&("token_age_seconds".into(), Value::Long(7))));
        assert!(ctx.contains(&("token_remaining_seconds".into(), Value::Long(60))));
        assert!(ctx.contains(&("scopes".into(), Value::Set(vec![Value::str("a")]))));
        assert!(!ctx.iter().any(|(k, _)| k == "actor" || k == "jti"));
    }
}
