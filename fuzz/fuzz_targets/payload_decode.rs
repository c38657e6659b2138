//! `ecld_fuzz::payload_decode` under libFuzzer; see `src/crypto.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ecld_fuzz::payload_decode(data));
