//! Compact JWS parsing (size, segments, base64url, header JSON, `alg`), the first thing
//! done with an untrusted bearer token before any key is looked up.
//!
//! Invariants: never panics; an accepted token is within the size bound and has three
//! segments; every refusal has a fixed reason code.

use cedar_gate::identity::jwt;

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match jwt::parse(s) {
        Ok(parsed) => {
            assert_eq!(s.split('.').count(), 3);
            let _ = format!("{parsed:?}");
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
        }
    }
}
