//! Signed tokens for tests, fuzz seeds, benchmarks and examples: fixture keys, their
//! JWKs, tokens signed with them. Compiled for the crate's own unit tests and with the
//! `testkit` feature, never into the server.
// Test support: a fixture that does not load is a broken checkout, not an input.
#![allow(clippy::expect_used)]

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key with its `kid` and algorithm.
#[derive(Clone)]
pub struct SigningKey {
    /// The key id in the JWKS and token headers.
    pub kid: String,
    /// The algorithm tokens are signed with.
    pub alg: Algorithm,
    key: EncodingKey,
}

/// The fixture PEMs (generated once with openssl; test-only keys).
pub mod pem {
    /// RSA 2048, key A.
    pub const RSA_A: &str = include_str!("../../tests/fixtures/jwt/rsa-a.pem");
    /// Public half of RSA key A (the HMAC-confusion attack uses it as a secret).
    pub const RSA_A_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa-a.pub.pem");
    /// RSA 2048, key B.
    pub const RSA_B: &str = include_str!("../../tests/fixtures/jwt/rsa-b.pem");
    /// EC P-256.
    pub const EC_P256: &str = include_str!("../../tests/fixtures/jwt/ec-p256.pem");
    /// EC P-384.
    pub const EC_P384: &str = include_str!("../../tests/fixtures/jwt/ec-p384.pem");
    /// Ed25519.
    pub const ED25519: &str = include_str!("../../tests/fixtures/jwt/ed25519.pem");
}

// === impl SigningKey ===

impl SigningKey {
    /// A key from a PEM fixture for `alg`.
    pub fn new(kid: &str, alg: Algorithm, pem: &str) -> Self {
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("fixture key");
        Self {
            kid: kid.to_owned(),
            alg,
            key,
        }
    }

    /// RSA key A as RS256 with kid `kid`.
    pub fn rsa_a(kid: &str) -> Self {
        Self::new(kid, Algorithm::RS256, pem::RSA_A)
    }

    /// The public JWK (with `kid` and `alg`).
    pub fn jwk(&self) -> Value {
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&self.key, self.alg).expect("jwk"))
                .expect("jwk json");
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// Signs `claims` (header: this key's `alg` and `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign token")
    }

    /// Signs `claims` under exactly `header` (any JSON, such as a non-string `typ`),
    /// with this key and algorithm whatever `header` says.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("sign");
        format!("{input}.{sig}")
    }
}
