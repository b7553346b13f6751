//! libFuzzer entry of the `request_target` target: its input and invariants are documented in
//! `fuzz/src/targets/request_target.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::request_target::run(data));
