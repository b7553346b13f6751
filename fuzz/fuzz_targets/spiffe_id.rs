//! libFuzzer entry of the `spiffe_id` target: its input and invariants are documented in
//! `fuzz/src/targets/spiffe_id.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::spiffe_id::run(data));
