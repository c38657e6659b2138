//! `ecld_fuzz::proof_signature` under libFuzzer; see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ecld_fuzz::proof_signature(data));
