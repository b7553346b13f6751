//! The bodies of cedar-gate's fuzz targets, one module per target, each a
//! `run(data: &[u8])` that panics when one of its invariants does not hold.
//!
//! Two drivers call them: the libFuzzer binaries in `fuzz_targets/` (nightly, cargo-fuzz,
//! coverage-guided: `make fuzz`), and the smoke test in `tests/smoke.rs` (stable, part of
//! `make test`: the seeds, any local corpus and a fixed number of deterministic mutations,
//! in the same build as the crate's other tests).

mod shipped_routes;

pub mod targets {
    pub mod cert_pem;
    pub mod check_request;
    pub mod classify_body;
    pub mod jwt_token;
    pub mod request_target;
    pub mod spiffe_id;
    pub mod xfcc;
}

/// A target's body: one input, a panic when an invariant does not hold.
pub type Target = fn(&[u8]);

/// Every target by name, the name of its binary, its seed directory
/// (`fuzz/seeds/<name>`) and its corpus directory (`fuzz/corpus/<name>`).
pub const TARGETS: &[(&str, Target)] = &[
    ("spiffe_id", targets::spiffe_id::run),
    ("xfcc", targets::xfcc::run),
    ("cert_pem", targets::cert_pem::run),
    ("check_request", targets::check_request::run),
    ("classify_body", targets::classify_body::run),
    ("jwt_token", targets::jwt_token::run),
    ("request_target", targets::request_target::run),
];
