//! ecld-crypto's decoders of untrusted bytes: the task input payload and the age envelope.

use std::sync::OnceLock;

use ecld_crypto::{AgeIdentity, Payload, envelope};

/// The identity `envelope_decrypt` decrypts with. A test key, public on purpose: the seed
/// corpus `corpus/envelope_decrypt/` holds envelopes encrypted to it (written by
/// `tests/seeds.rs`), so mutations of them get past the header's recipient stanza into the
/// header MAC and the payload chunks, where an identity nobody encrypted to never goes.
pub const FUZZ_IDENTITY: &str =
    "AGE-SECRET-KEY-1XTLDQYPQD0XLSG5QDWGLKMEK4QZ4LPF23WG7S67F46LX7EXN0RMQV5GDPQ";

/// [`FUZZ_IDENTITY`], parsed once.
pub fn fuzz_identity() -> &'static AgeIdentity {
    static ID: OnceLock<AgeIdentity> = OnceLock::new();
    ID.get_or_init(|| AgeIdentity::from_secret_str(FUZZ_IDENTITY).expect("a valid age identity"))
}

/// `Payload::decode`: whatever it accepts re-encodes to exactly the same bytes (the encoding
/// is canonical) and validates.
pub fn payload_decode(data: &[u8]) {
    if let Ok(payload) = Payload::decode(data) {
        assert_eq!(payload.encode(), data, "accepted payload is not canonical");
        assert!(payload.validate().is_ok(), "accepted payload does not validate");
    }
}

/// `envelope::decrypt_bytes` with [`FUZZ_IDENTITY`], binary or armored, and what the enclave
/// does next with a task input: its plaintext through `payload_decode`. An age file is never
/// shorter than what it decrypts to (a header, and a 16-byte tag per chunk).
pub fn envelope_decrypt(data: &[u8]) {
    if let Ok(plaintext) = envelope::decrypt_bytes(fuzz_identity(), data) {
        assert!(
            plaintext.len() < data.len(),
            "{} bytes decrypted from an envelope of {} bytes",
            plaintext.len(),
            data.len()
        );
        payload_decode(&plaintext);
    }
}
