//! libFuzzer entry of the `check_request` target: its input and invariants are documented in
//! `fuzz/src/targets/check_request.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::check_request::run(data));
