//! `Payload::decode` on arbitrary bytes: never panics, and whatever it accepts re-encodes
//! to exactly the same bytes (the encoding is canonical).
#![no_main]

use ecld_crypto::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::decode(data) {
        assert_eq!(payload.encode(), data, "accepted payload is not canonical");
        assert!(payload.validate().is_ok(), "accepted payload does not validate");
    }
});
