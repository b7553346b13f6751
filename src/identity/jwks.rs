//! Issuer key sets: parsing JWKS documents, fetching them (file, URL or OIDC
//! discovery) and keeping them fresh in a background task.
//!
//! The Check path only reads the current key set (one atomic load) and, on an
//! unknown `kid`, *asks* for a refresh: it never waits on the network. The
//! refresh task fetches at most once per `min_refresh_interval_seconds`, one
//! fetch at a time, so a flood of bogus `kid`s costs the IdP at most one fetch
//! per interval. A failed fetch keeps the last good key set.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::{Notify, watch};

use crate::identity::issuers::IssuerConfig;
use crate::identity::jwt::TokenError;

/// Largest JWKS or discovery document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// Most keys kept from one JWKS.
pub const MAX_KEYS: usize = 64;
/// Most keys tried for a token without `kid` (each try is a signature check, so an
/// attacker must not be able to make one request cost dozens).
pub const MAX_KEYS_WITHOUT_KID: usize = 4;
/// Time allowed for one HTTP fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a key set could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// Reading the JWKS file failed.
    #[error("cannot read `{0}`: {1}")]
    Read(PathBuf, std::io::Error),
    /// The HTTP request failed.
    #[error("fetching `{0}` failed: {1}")]
    Http(String, String),
    /// A non-2xx answer.
    #[error("`{0}` answered HTTP {1}")]
    Status(String, u16),
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("`{0}` is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge(String),
    /// Not a JWKS (or discovery) JSON document.
    #[error("invalid document from `{0}`: {1}")]
    Invalid(String, String),
    /// The JWKS holds no usable signature-verification key.
    #[error("`{0}` holds no usable public key")]
    NoUsableKeys(String),
    /// The CA file could not be used.
    #[error("cannot use CA file `{0}`: {1}")]
    Ca(PathBuf, String),
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: AlgorithmFamily,
    curve: Option<EllipticCurve>,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

// === impl Key ===

impl Key {
    /// Whether this key may verify a signature made with `alg`. An HMAC key is
    /// never loaded, so an RSA public key can never act as an HMAC secret.
    fn fits(&self, alg: Algorithm) -> bool {
        if alg.family() != self.family || self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match (alg, &self.curve) {
            (Algorithm::ES256, Some(c)) => *c == EllipticCurve::P256,
            (Algorithm::ES384, Some(c)) => *c == EllipticCurve::P384,
            (Algorithm::EdDSA, Some(c)) => *c == EllipticCurve::Ed25519,
            (_, None) => self.family == AlgorithmFamily::Rsa,
            _ => true,
        }
    }
}

/// An issuer's key set at one point in time.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Increases with every successful load; cached tokens verified under an
    /// older generation are verified again (a removed key stops working).
    pub generation: u64,
}

// === impl KeySet ===

impl KeySet {
    /// The keys that may verify a token with this `kid` and `alg`.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Key>, TokenError> {
        let by_kid: Vec<&Key> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => self.keys.iter().collect(),
        };
        if by_kid.is_empty() {
            return Err(TokenError::UnknownKeyId);
        }
        let mut fitting: Vec<&Key> = by_kid.into_iter().filter(|k| k.fits(alg)).collect();
        if fitting.is_empty() {
            return Err(TokenError::KeyAlgorithmMismatch);
        }
        if kid.is_none() {
            fitting.truncate(MAX_KEYS_WITHOUT_KID);
        }
        Ok(fitting)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys (never true for a loaded set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Verifies `signature` over `input` with `key`.
pub fn verify(key: &Key, alg: Algorithm, input: &str, signature: &str) -> bool {
    matches!(
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &key.key, alg),
        Ok(true)
    )
}

/// Parses a JWKS document, keeping only public signature keys cedar-gate can use.
pub fn parse_jwks(bytes: &[u8], origin: &str) -> Result<Vec<Key>, JwksError> {
    let doc: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| JwksError::Invalid(origin.to_owned(), e.to_string()))?;
    let list = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| JwksError::Invalid(origin.to_owned(), "no `keys` array".to_owned()))?;
    let mut keys = Vec::new();
    for raw in list.iter().take(MAX_KEYS) {
        // One odd key (an encryption key, an unknown type) must not cost the others.
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        if let Some(key) = usable(&jwk) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys(origin.to_owned()));
    }
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).ok()?),
    };
    let (family, curve) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
        AlgorithmParameters::EllipticCurve(p) => (AlgorithmFamily::Ec, Some(p.curve.clone())),
        AlgorithmParameters::OctetKeyPair(p) => (AlgorithmFamily::Ed, Some(p.curve.clone())),
        // Symmetric (`oct`) keys are never loaded: an HMAC secret has no
        // business in a public key set.
        _ => return None,
    };
    if alg.is_some_and(|a| a.family() != family) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        curve,
        key,
    })
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A file, re-read on every refresh (a mounted ConfigMap, for example).
    File(PathBuf),
    /// A JWKS URL.
    Url(String),
    /// `<issuer>/.well-known/openid-configuration` → `jwks_uri`.
    Discovery(String),
}

// === impl KeySource ===

impl KeySource {
    /// The source an issuer config names.
    pub fn of(cfg: &IssuerConfig) -> Self {
        match (&cfg.jwks_file, &cfg.jwks_url) {
            (Some(f), _) => KeySource::File(f.clone()),
            (None, Some(u)) => KeySource::Url(u.clone()),
            (None, None) => KeySource::Discovery(cfg.issuer.clone()),
        }
    }

    /// Fetches and parses the key set once.
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<Vec<Key>, JwksError> {
        match self {
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| JwksError::Read(path.clone(), e))?;
                if bytes.len() > MAX_DOCUMENT_BYTES {
                    return Err(JwksError::TooLarge(path.display().to_string()));
                }
                parse_jwks(&bytes, &path.display().to_string())
            }
            KeySource::Url(url) => parse_jwks(&get(http, url).await?, url),
            KeySource::Discovery(issuer) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = serde_json::from_slice(&get(http, &url).await?)
                    .map_err(|e| JwksError::Invalid(url.clone(), e.to_string()))?;
                // OIDC Discovery 1.0 §4.3: the document must name the very issuer.
                if doc.get("issuer").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                    return Err(JwksError::Invalid(
                        url,
                        "`issuer` does not match the configured issuer".to_owned(),
                    ));
                }
                let jwks_uri = doc
                    .get("jwks_uri")
                    .and_then(|u| u.as_str())
                    .ok_or_else(|| JwksError::Invalid(url.clone(), "no `jwks_uri`".to_owned()))?;
                if !jwks_uri.starts_with("https://") && !issuer.starts_with("http://") {
                    return Err(JwksError::Invalid(
                        url,
                        "`jwks_uri` is not https://".to_owned(),
                    ));
                }
                parse_jwks(&get(http, jwks_uri).await?, jwks_uri)
            }
        }
    }
}

/// GETs `url`, reading at most [`MAX_DOCUMENT_BYTES`].
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, JwksError> {
    let err = |e: reqwest::Error| JwksError::Http(url.to_owned(), e.to_string());
    let mut resp = http.get(url).send().await.map_err(err)?;
    if !resp.status().is_success() {
        return Err(JwksError::Status(url.to_owned(), resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(JwksError::TooLarge(url.to_owned()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(err)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(JwksError::TooLarge(url.to_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client for one issuer: bounded time, no redirects, optional extra CA.
pub fn http_client(cfg: &IssuerConfig) -> Result<reqwest::Client, JwksError> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|e| JwksError::Ca(path.clone(), e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| JwksError::Ca(path.clone(), e.to_string()))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| JwksError::Http(cfg.issuer.clone(), e.to_string()))
}

/// An issuer's current keys and the refresh request flag.
#[derive(Debug, Default)]
pub struct IssuerKeys {
    current: ArcSwapOption<KeySet>,
    refresh: Notify,
    generation: AtomicU64,
}

// === impl IssuerKeys ===

impl IssuerKeys {
    /// The current key set, if one was ever loaded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Installs a freshly loaded key set.
    pub fn install(&self, keys: Vec<Key>) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.current
            .store(Some(Arc::new(KeySet { keys, generation })));
        generation
    }

    /// Asks the refresh task for a fetch (an unknown `kid`). Never blocks;
    /// requests made while one is pending collapse into it.
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// Keeps the keys fresh until `shutdown` turns true: a fetch now, then every
    /// `interval` (every `min_interval` while there are no keys yet) or on
    /// request, never two fetches closer than `min_interval`.
    pub async fn run_refresh(
        self: Arc<Self>,
        issuer: String,
        source: KeySource,
        http: reqwest::Client,
        interval: Duration,
        min_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let started = tokio::time::Instant::now();
            // A slow IdP must not hold up shutdown.
            let fetched = tokio::select! {
                r = source.fetch(&http) => r,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            match fetched {
                Ok(keys) => {
                    let n = keys.len();
                    let generation = self.install(keys);
                    tracing::debug!(%issuer, keys = n, generation, "issuer keys refreshed");
                    crate::record::metrics::record_jwks_refresh(&issuer, true);
                }
                Err(e) => {
                    let kept = self.current().is_some();
                    tracing::warn!(%issuer, error = %e, keeping_last_good = kept, "issuer key refresh failed");
                    crate::record::metrics::record_jwks_refresh(&issuer, false);
                }
            }
            let wait = if self.current().is_some() {
                interval
            } else {
                min_interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.refresh.notified() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            // The rate limit: at most one fetch per `min_interval`, whatever asked.
            tokio::select! {
                _ = tokio::time::sleep_until(started + min_interval) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        let pem = include_bytes!("../../tests/fixtures/jwt/rsa-a.pem");
        let enc = jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap();
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk
    }

    #[test]
    fn skips_symmetric_and_encryption_keys() {
        let mut enc_key = rsa_jwk("enc");
        enc_key["use"] = json!("enc");
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            enc_key,
            {"kty": "weird"},
            rsa_jwk("k1"),
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes(), "test").unwrap();
        assert_eq!(keys.len(), 1);
        let set = KeySet {
            keys,
            generation: 1,
        };
        assert!(set.candidates(Some("k1"), Algorithm::RS256).is_ok());
        // The JWK says RS256: the same RSA key may not verify PS256.
        assert_eq!(
            set.candidates(Some("k1"), Algorithm::PS256).unwrap_err(),
            TokenError::KeyAlgorithmMismatch
        );
        assert_eq!(
            set.candidates(Some("hmac"), Algorithm::HS256).unwrap_err(),
            TokenError::UnknownKeyId
        );
        assert_eq!(
            set.candidates(Some("k1"), Algorithm::ES256).unwrap_err(),
            TokenError::KeyAlgorithmMismatch
        );
        assert_eq!(
            set.candidates(Some("nope"), Algorithm::RS256).unwrap_err(),
            TokenError::UnknownKeyId
        );
    }

    #[test]
    fn key_without_alg_fits_its_family() {
        let mut jwk = rsa_jwk("k");
        jwk.as_object_mut().unwrap().remove("alg");
        let doc = json!({ "keys": [jwk] });
        let keys = parse_jwks(doc.to_string().as_bytes(), "test").unwrap();
        let set = KeySet {
            keys,
            generation: 1,
        };
        assert!(set.candidates(Some("k"), Algorithm::PS256).is_ok());
        assert!(set.candidates(None, Algorithm::RS512).is_ok());
        assert!(set.candidates(None, Algorithm::EdDSA).is_err());
    }

    #[test]
    fn tokens_without_kid_try_a_bounded_number_of_keys() {
        let doc = json!({ "keys": vec![rsa_jwk("k"); 10] });
        let keys = parse_jwks(doc.to_string().as_bytes(), "test").unwrap();
        let set = KeySet {
            keys,
            generation: 1,
        };
        assert_eq!(
            set.candidates(None, Algorithm::RS256).unwrap().len(),
            MAX_KEYS_WITHOUT_KID
        );
        assert_eq!(
            set.candidates(Some("k"), Algorithm::RS256).unwrap().len(),
            10
        );
    }

    #[test]
    fn only_symmetric_is_an_error() {
        let doc = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(matches!(
            parse_jwks(doc.to_string().as_bytes(), "t"),
            Err(JwksError::NoUsableKeys(_))
        ));
        assert!(parse_jwks(b"not json", "t").is_err());
        assert!(parse_jwks(b"{}", "t").is_err());
    }
}
