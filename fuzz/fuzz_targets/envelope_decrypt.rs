//! `ecld_fuzz::envelope_decrypt` under libFuzzer; see `src/crypto.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ecld_fuzz::envelope_decrypt(data));
