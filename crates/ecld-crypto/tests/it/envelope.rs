use ecld_crypto::{
    AgeIdentity, EnvelopeError,
    envelope::{decrypt_bytes, encrypt_bytes},
};
use proptest::prelude::*;

/// Length of the age header: up to and including the newline after the `---` MAC line.
fn header_len(file: &[u8]) -> usize {
    let mac = file.windows(4).position(|w| w == b"\n---").expect("header has a MAC line") + 1;
    mac + file[mac..].iter().position(|&b| b == b'\n').expect("MAC line ends") + 1
}

#[test]
fn round_trip_at_chunk_boundaries() {
    let id = AgeIdentity::generate();
    for len in [0usize, 1, 65_535, 65_536, 65_537, 131_072, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        for armor in [false, true] {
            let sealed = encrypt_bytes(&[id.recipient()], armor, &data).unwrap();
            assert_eq!(sealed.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"), armor);
            assert_eq!(decrypt_bytes(&id, &sealed).unwrap(), data, "len {len} armor {armor}");
        }
    }
}

#[test]
fn any_of_several_recipients_can_decrypt() {
    let (a, b) = (AgeIdentity::generate(), AgeIdentity::generate());
    let sealed = encrypt_bytes(&[a.recipient(), b.recipient()], false, b"shared").unwrap();
    assert_eq!(decrypt_bytes(&a, &sealed).unwrap(), b"shared");
    assert_eq!(decrypt_bytes(&b, &sealed).unwrap(), b"shared");
}

#[test]
fn wrong_identity_is_refused() {
    let sealed = encrypt_bytes(&[AgeIdentity::generate().recipient()], false, b"x").unwrap();
    let err = decrypt_bytes(&AgeIdentity::generate(), &sealed).unwrap_err();
    assert!(matches!(err, EnvelopeError::NoMatchingIdentity), "{err:?}");
}

#[test]
fn no_recipients_is_refused() {
    let err = encrypt_bytes(&[], false, b"x").unwrap_err();
    assert!(matches!(err, EnvelopeError::NoRecipients), "{err:?}");
}

#[test]
fn plaintext_is_not_an_age_file() {
    let err = decrypt_bytes(&AgeIdentity::generate(), b"hello, I am not encrypted\n").unwrap_err();
    assert!(matches!(err, EnvelopeError::NotAnAgeFile), "{err:?}");
}

#[test]
fn bad_recipient_text_names_the_problem() {
    let err = "age1notarecipient".parse::<ecld_crypto::AgeRecipient>().unwrap_err();
    assert!(matches!(err, EnvelopeError::InvalidRecipient { .. }), "{err:?}");
    assert!(err.to_string().contains("age1notarecipient"), "{err}");
}

#[test]
fn truncation_is_detected() {
    let id = AgeIdentity::generate();
    let data = vec![7u8; 150_000];
    let sealed = encrypt_bytes(&[id.recipient()], false, &data).unwrap();
    let header = header_len(&sealed);
    // Cut inside the payload, at a chunk boundary and just before the end.
    for cut in [header + 16, header + 16 + 65_536 + 16, sealed.len() - 1] {
        let err = decrypt_bytes(&id, &sealed[..cut]).unwrap_err();
        assert!(
            matches!(err, EnvelopeError::Truncated | EnvelopeError::PayloadTampered),
            "cut at {cut}: {err:?}"
        );
    }
    // Dropping whole final chunk: the stream ends without a last-chunk flag.
    let two_chunks = header + 16 + 2 * (65_536 + 16);
    let err = decrypt_bytes(&id, &sealed[..two_chunks]).unwrap_err();
    assert!(matches!(err, EnvelopeError::Truncated | EnvelopeError::PayloadTampered), "{err:?}");
}

/// Flipping any byte of the file is caught: in the header by the header checks, in the
/// payload by chunk authentication. Never silent success, never a bare I/O error.
#[test]
fn every_flipped_byte_is_rejected() {
    let id = AgeIdentity::generate();
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 256) as u8).collect();
    let sealed = encrypt_bytes(&[id.recipient()], false, &data).unwrap();
    let header = header_len(&sealed);
    let mut positions: Vec<usize> = (0..header + 64).collect();
    positions.extend((header + 64..sealed.len()).step_by(997));
    positions.push(sealed.len() - 1);
    for pos in positions {
        for mask in [0x01u8, 0x80] {
            let mut bad = sealed.clone();
            bad[pos] ^= mask;
            let err = decrypt_bytes(&id, &bad).expect_err(&format!("flip at {pos} accepted"));
            if pos >= header {
                assert!(matches!(err, EnvelopeError::PayloadTampered), "flip at {pos}: {err:?}");
            } else {
                assert!(
                    matches!(
                        err,
                        EnvelopeError::NotAnAgeFile
                            | EnvelopeError::UnknownFormat
                            | EnvelopeError::HeaderTampered
                            | EnvelopeError::NoMatchingIdentity
                    ),
                    "flip at {pos} (header): {err:?}"
                );
            }
        }
    }
}

#[test]
fn flipped_armor_is_rejected() {
    let id = AgeIdentity::generate();
    let sealed = encrypt_bytes(&[id.recipient()], true, &[5u8; 5000]).unwrap();
    for pos in (0..sealed.len()).step_by(37) {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x01;
        if let Ok(plain) = decrypt_bytes(&id, &bad) {
            panic!("flip at {pos} accepted ({} bytes out)", plain.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..140_000), armor: bool) {
        let id = AgeIdentity::generate();
        let sealed = encrypt_bytes(&[id.recipient()], armor, &data).unwrap();
        prop_assert_eq!(decrypt_bytes(&id, &sealed).unwrap(), data);
    }

    #[test]
    fn prop_decrypt_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decrypt_bytes(&AgeIdentity::generate(), &garbage);
    }
}
