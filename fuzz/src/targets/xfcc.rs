//! `x-forwarded-client-cert` parser. Invariants: never panics, bounded output (no more
//! elements than the header has commas + 1), and picking an element never fails on a
//! parsed, non-empty list.

use cedar_gate::identity::xfcc::{self, XfccElementChoice};

/// One input; panics when an invariant above does not hold.
pub fn run(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match xfcc::parse(s) {
        Ok(elements) => {
            assert!(!elements.is_empty());
            assert!(elements.len() <= s.matches(',').count() + 1);
            assert!(XfccElementChoice::First.pick(&elements).is_some());
            assert!(XfccElementChoice::Last.pick(&elements).is_some());
        }
        Err(e) => {
            let _ = (e.reason(), e.to_string());
        }
    }
}
