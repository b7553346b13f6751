//! What a token costs on the Check path: verification alone (cached, uncached per
//! algorithm) and a whole `Gate::check` (workload only, token cached, token uncached),
//! with the shipped `cedar/` policies and keys from a JWKS file.
//!
//! Run: `cargo run --release --example token_cost` (numbers in BENCHMARKS.md come from the
//! profile named in the output; a debug build is several times slower).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cedar_gate::config::Config;
use cedar_gate::decide::Gate;
use cedar_gate::identity::token::TokenVerifier;
use cedar_gate::request::{HttpRequest, Peer};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");

struct Key {
    kid: &'static str,
    alg: Algorithm,
    enc: EncodingKey,
}

fn key(kid: &'static str, alg: Algorithm, file: &str) -> Key {
    let pem = std::fs::read(Path::new(FIXTURES).join(file)).unwrap();
    let enc = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap();
    Key { kid, alg, enc }
}

fn token(k: &Key, sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut h = Header::new(k.alg);
    h.kid = Some(k.kid.to_owned());
    let claims = json!({"iss": "https://agents.example.com", "sub": sub, "aud": "https://models.example.com",
        "iat": now, "exp": now + 600, "groups": ["approved-agents"], "jti": sub, "scope": "models:read"});
    jsonwebtoken::encode(&h, &claims, &k.enc).unwrap()
}

/// Mean time per call of `f` over `iters` calls (after a warm-up of a tenth).
fn time(iters: u32, mut f: impl FnMut(u32)) -> Duration {
    for i in 0..iters / 10 {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iters {
        f(i);
    }
    start.elapsed() / iters
}

fn main() {
    let keys = [
        key("rs256", Algorithm::RS256, "rsa-a.pem"),
        key("ps256", Algorithm::PS256, "rsa-b.pem"),
        key("es256", Algorithm::ES256, "ec-p256.pem"),
        key("eddsa", Algorithm::EdDSA, "ed25519.pem"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let jwks: Vec<_> = keys
        .iter()
        .map(|k| {
            let mut j =
                serde_json::to_value(Jwk::from_encoding_key(&k.enc, k.alg).unwrap()).unwrap();
            j["kid"] = json!(k.kid);
            j
        })
        .collect();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, json!({ "keys": jwks }).to_string()).unwrap();
    let yaml = |cache: u64| {
        format!(
            "identity:\n  trust_domains: [example.org]\n  token_cache_capacity: {cache}\n  issuers:\n  - issuer: https://agents.example.com\n    jwks_file: {}\n    audiences: [\"https://models.example.com\"]\n    algorithms: [RS256, PS256, ES256, EdDSA]\n    entity_type: Agent\n    groups_claim: groups\n    max_lifetime_seconds: 900\n",
            jwks_path.display()
        )
    };
    let cached_cfg = Arc::new(Config::from_yaml(&yaml(10_000)).unwrap());
    let uncached_cfg = Arc::new(Config::from_yaml(&yaml(0)).unwrap());

    println!(
        "profile: {}",
        if cfg!(debug_assertions) {
            "debug (unoptimized)"
        } else {
            "release"
        }
    );
    let iters = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let now = SystemTime::now();

    // Verification alone.
    let cached = TokenVerifier::new(&cached_cfg.identity).unwrap();
    let uncached = TokenVerifier::new(&uncached_cfg.identity).unwrap();
    let rs = token(&keys[0], "bot");
    cached.verify(&rs, now).unwrap();
    let t = time(iters * 10, |_| {
        black_box(cached.verify(black_box(&rs), now).unwrap());
    });
    println!(
        "verify, cache hit (RS256 token)       {:>9.2} µs",
        t.as_secs_f64() * 1e6
    );
    for k in &keys {
        let tok = token(k, "bot");
        let t = time(iters, |_| {
            black_box(uncached.verify(black_box(&tok), now).unwrap());
        });
        println!(
            "verify, no cache, {:<6}              {:>9.2} µs",
            k.kid,
            t.as_secs_f64() * 1e6
        );
    }

    // The whole decision (identity + classify + Cedar), shipped policies.
    let snapshot =
        cedar_gate::policy::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cedar"), 1)
            .unwrap();
    let req = |auth: Option<&str>, principal: &str| {
        let authorization = auth.map(|a| format!("Bearer {a}"));
        let headers = cedar_gate::request::header_list(
            authorization.as_deref().map(|a| ("authorization", a)),
        );
        HttpRequest {
            id: "bench".into(),
            method: "GET".into(),
            host: "models.example.com".into(),
            path: "/v1/models".into(),
            scheme: "https".into(),
            headers,
            source: Peer {
                principal: principal.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    };
    let workload_req = req(None, "spiffe://example.org/ns/agents/sa/research-agent");
    let token_req = req(Some(&rs), "");
    let cached_gate = Gate::new(cached_cfg.clone());
    let uncached_gate = Gate::new(uncached_cfg.clone());
    assert!(
        cached_gate
            .check(&snapshot, &workload_req, now)
            .decision
            .is_allow()
    );
    assert!(
        cached_gate
            .check(&snapshot, &token_req, now)
            .decision
            .is_allow()
    );
    assert!(
        uncached_gate
            .check(&snapshot, &token_req, now)
            .decision
            .is_allow()
    );
    let t_w = time(iters * 5, |_| {
        black_box(cached_gate.check(&snapshot, black_box(&workload_req), now));
    });
    let t_c = time(iters * 5, |_| {
        black_box(cached_gate.check(&snapshot, black_box(&token_req), now));
    });
    let t_u = time(iters, |_| {
        black_box(uncached_gate.check(&snapshot, black_box(&token_req), now));
    });
    println!(
        "Gate::check, workload (mTLS) only     {:>9.2} µs",
        t_w.as_secs_f64() * 1e6
    );
    println!(
        "Gate::check, RS256 token, cache hit   {:>9.2} µs",
        t_c.as_secs_f64() * 1e6
    );
    println!(
        "Gate::check, RS256 token, no cache    {:>9.2} µs",
        t_u.as_secs_f64() * 1e6
    );
}
