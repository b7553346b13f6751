//! Peer certificate parsing: PEM as bytes, and the URL-encoded PEM Envoy sends in
//! `source.certificate`. Never panics; an accepted certificate carries a SPIFFE id.

use std::time::{Duration, SystemTime};

use cedar_gate::identity::cert;

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    // A fixed "now" inside the seed certificates' validity, so accepted paths are reached
    // deterministically (2027-06-01T00:00:00Z; seeds are valid 2026-2036).
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_811_808_000);
    match cert::parse_pem(data, now) {
        Ok(c) => assert!(c.spiffe_id.as_str().starts_with("spiffe://")),
        Err(e) => {
            let _ = (e.reason(), e.to_string());
        }
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Err(e) = cert::parse_url_encoded_pem(s, now)
    {
        let _ = (e.reason(), e.to_string());
    }
}
