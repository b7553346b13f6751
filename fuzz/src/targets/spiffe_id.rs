//! SPIFFE id parser (`source.principal`, XFCC `URI=`, certificate URI SANs).
//! Invariants: never panics; an accepted id prints back to itself and re-parses equal,
//! and its trust domain is a non-empty prefix of it.

use cedar_gate::identity::spiffe::SpiffeId;

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match SpiffeId::parse(s) {
        Ok(id) => {
            assert_eq!(id.as_str(), s, "an accepted id is stored verbatim");
            assert!(!id.trust_domain().is_empty());
            assert!(s.starts_with(&format!("spiffe://{}", id.trust_domain())));
            assert!(s.ends_with(id.path()));
            let again = SpiffeId::parse(id.as_str()).expect("an accepted id re-parses");
            assert_eq!(again, id);
            let _ = id.kubernetes();
        }
        Err(e) => {
            let _ = (e.reason(), e.to_string());
        }
    }
}
