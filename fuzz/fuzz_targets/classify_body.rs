//! libFuzzer entry of the `classify_body` target: its input and invariants are documented in
//! `fuzz/src/targets/classify_body.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::classify_body::run(data));
