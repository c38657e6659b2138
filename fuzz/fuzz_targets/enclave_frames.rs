//! `ecld_fuzz::enclave_frames` under libFuzzer; see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ecld_fuzz::enclave_frames(data));
