//! `ecld_fuzz::store_http` under libFuzzer; see `src/lib.rs` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ecld_fuzz::store_http(data));
