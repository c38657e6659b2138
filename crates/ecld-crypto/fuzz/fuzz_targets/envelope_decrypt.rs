//! `envelope::decrypt` on arbitrary bytes (binary or armored): never panics.
#![no_main]

use std::sync::OnceLock;

use ecld_crypto::AgeIdentity;
use libfuzzer_sys::fuzz_target;

fn identity() -> &'static AgeIdentity {
    static ID: OnceLock<AgeIdentity> = OnceLock::new();
    ID.get_or_init(AgeIdentity::generate)
}

fuzz_target!(|data: &[u8]| {
    let _ = ecld_crypto::envelope::decrypt_bytes(identity(), data);
});
