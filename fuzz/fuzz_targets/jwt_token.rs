//! libFuzzer entry of the `jwt_token` target: its input and invariants are documented in
//! `fuzz/src/targets/jwt_token.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::jwt_token::run(data));
