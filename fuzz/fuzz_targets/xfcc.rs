//! libFuzzer entry of the `xfcc` target: its input and invariants are documented in
//! `fuzz/src/targets/xfcc.rs`, which the stable smoke test (`fuzz/tests/smoke.rs`) runs too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cedar_gate_fuzz::targets::xfcc::run(data));
