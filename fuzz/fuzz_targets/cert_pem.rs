//! libFuzzer entry of the `cert_pem` target: its input and invariants are documented in
//! `fuzz/src/targets/cert_pem.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::cert_pem::run(data));
