//! The seed corpora of `payload_decode` and `envelope_decrypt`, and what each seed reaches.
//!
//! `cargo test --manifest-path fuzz/Cargo.toml --test seeds` checks every committed seed
//! against what its name promises (an envelope that decrypts with `FUZZ_IDENTITY` to a valid
//! payload, one whose header MAC was altered, a payload with trailing bytes, ...), so a seed
//! that no longer reaches past the envelope header fails. (Other files in the corpus, such as
//! finds `scripts/fuzz --merge` added, are replayed by `tests/corpus.rs`.)
//! With `ECLD_FUZZ_WRITE_SEEDS=1` it first writes the seeds again (age encryption is
//! randomised: the envelopes change, what they reach does not).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed assertion is the test failing.

use std::path::PathBuf;

use ecld_crypto::{AgeIdentity, EnvelopeError, Payload, PayloadError, envelope};
use ecld_fuzz::fuzz_identity;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

/// A payload in the documented binary layout (`docs/protocol.md`), built by hand so that
/// the broken variants below can differ from it in one field.
fn payload_bytes(code: Option<&[u8]>, input: &[u8]) -> Vec<u8> {
    let recipient = fuzz_identity().recipient().to_string();
    let mut out = b"ECLP\x01".to_vec();
    out.extend_from_slice(&[0x11; 20]);
    out.extend_from_slice(&u16::try_from(recipient.len()).unwrap().to_be_bytes());
    out.extend_from_slice(recipient.as_bytes());
    match code {
        None => out.push(0),
        Some(code) => {
            out.push(1);
            out.extend_from_slice(&u32::try_from(code.len()).unwrap().to_be_bytes());
            out.extend_from_slice(code);
        }
    }
    out.extend_from_slice(&u32::try_from(input.len()).unwrap().to_be_bytes());
    out.extend_from_slice(input);
    out
}

const INPUT: &[u8] = b"17 23 42 5 8\n";
const CODE: &[u8] = b"import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n";

/// What a seed of `payload_decode` must decode to.
#[derive(Debug)]
enum Decoded {
    Valid,
    BadMagic,
    UnsupportedVersion,
    Truncated,
    InvalidRecipient,
    InvalidCodeFlag,
    TrailingBytes,
    TooLarge,
}

fn payload_seeds() -> Vec<(&'static str, Vec<u8>, Decoded)> {
    let valid = payload_bytes(None, INPUT);
    let with = |at: usize, byte: u8| {
        let mut b = valid.clone();
        b[at] = byte;
        b
    };
    // Offsets in the layout: magic 0, version 4, requester 5, recipient length 25, recipient
    // 27, then the code flag.
    let flag_at = 27 + fuzz_identity().recipient().to_string().len();
    let mut too_long = valid.clone();
    too_long[flag_at + 1..flag_at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
    vec![
        ("valid_input.bin", valid.clone(), Decoded::Valid),
        ("valid_code.bin", payload_bytes(Some(CODE), INPUT), Decoded::Valid),
        ("valid_empty.bin", payload_bytes(Some(b""), b""), Decoded::Valid),
        ("bad_magic.bin", with(0, b'X'), Decoded::BadMagic),
        ("bad_version.bin", with(4, 2), Decoded::UnsupportedVersion),
        ("bad_recipient.bin", with(27, b'b'), Decoded::InvalidRecipient),
        ("bad_code_flag.bin", with(flag_at, 2), Decoded::InvalidCodeFlag),
        ("truncated.bin", valid[..valid.len() - 1].to_vec(), Decoded::Truncated),
        ("trailing.bin", [&valid[..], b"\n"].concat(), Decoded::TrailingBytes),
        ("input_too_large.bin", too_long, Decoded::TooLarge),
    ]
}

fn check_payload(name: &str, bytes: &[u8], expected: &Decoded) {
    let got = Payload::decode(bytes);
    let ok = matches!(
        (expected, &got),
        (Decoded::Valid, Ok(_))
            | (Decoded::BadMagic, Err(PayloadError::BadMagic))
            | (Decoded::UnsupportedVersion, Err(PayloadError::UnsupportedVersion(_)))
            | (Decoded::Truncated, Err(PayloadError::Truncated { .. }))
            | (Decoded::InvalidRecipient, Err(PayloadError::InvalidRecipient(_)))
            | (Decoded::InvalidCodeFlag, Err(PayloadError::InvalidCodeFlag(_)))
            | (Decoded::TrailingBytes, Err(PayloadError::TrailingBytes(_)))
            | (Decoded::TooLarge, Err(PayloadError::TooLarge { .. }))
    );
    assert!(ok, "payload_decode seed {name}: expected {expected:?}, got {got:?}");
}

/// What a seed of `envelope_decrypt` must reach.
#[derive(Debug)]
enum Opened {
    /// Decrypts with `FUZZ_IDENTITY` to a payload that decodes.
    Payload,
    /// Decrypts with `FUZZ_IDENTITY` to bytes that are not a payload.
    NotAPayload,
    NotAnAgeFile,
    NoMatchingIdentity,
    HeaderTampered,
    PayloadTampered,
    Truncated,
    PassphraseEncrypted,
}

fn envelope_seeds() -> Vec<(&'static str, Vec<u8>, Opened)> {
    let ours = fuzz_identity().recipient();
    let theirs = AgeIdentity::generate().recipient();
    let seal = |recipients: &[_], armor, plaintext: &[u8]| {
        envelope::encrypt_bytes(recipients, armor, plaintext).unwrap()
    };
    let one = std::slice::from_ref(&ours);
    let valid = seal(one, false, &payload_bytes(None, INPUT));
    let flipped = |at: usize| {
        let mut b = valid.clone();
        b[at] ^= 0x01;
        b
    };
    // The header ends with "--- " and its MAC (43 base64 characters) on one line; the
    // payload is a 16-byte nonce and the chunks, the last one marked final.
    let mac_at = valid.windows(4).position(|w| w == b"--- ").unwrap() + 4;
    let payload_at = mac_at + 44;
    // A passphrase header (scrypt stanza) as age writes one; the decryptor refuses it before
    // it would derive a key.
    let scrypt = [
        &b"age-encryption.org/v1\n-> scrypt AAAAAAAAAAAAAAAAAAAAAA 18\n"[..],
        &b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"[..],
        &b"--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"[..],
        &[0u8; 48][..],
    ]
    .concat();
    vec![
        ("valid_payload.age", valid.clone(), Opened::Payload),
        (
            "valid_payload_code_armored.age",
            seal(one, true, &payload_bytes(Some(CODE), INPUT)),
            Opened::Payload,
        ),
        (
            "valid_two_recipients.age",
            seal(&[theirs.clone(), ours.clone()], false, &payload_bytes(None, INPUT)),
            Opened::Payload,
        ),
        ("valid_empty.age", seal(one, false, b""), Opened::NotAPayload),
        ("valid_not_a_payload.age", seal(one, true, INPUT), Opened::NotAPayload),
        ("other_recipient.age", seal(&[theirs], false, INPUT), Opened::NoMatchingIdentity),
        ("header_mac_altered.age", flipped(mac_at), Opened::HeaderTampered),
        ("payload_altered.age", flipped(valid.len() - 1), Opened::PayloadTampered),
        ("truncated.age", valid[..payload_at + 16].to_vec(), Opened::Truncated),
        ("scrypt.age", scrypt, Opened::PassphraseEncrypted),
        ("not_age.bin", INPUT.to_vec(), Opened::NotAnAgeFile),
    ]
}

fn check_envelope(name: &str, bytes: &[u8], expected: &Opened) {
    let got = envelope::decrypt_bytes(fuzz_identity(), bytes);
    let ok = match (expected, &got) {
        (Opened::Payload, Ok(p)) => Payload::decode(p).is_ok(),
        (Opened::NotAPayload, Ok(p)) => Payload::decode(p).is_err(),
        (Opened::NotAnAgeFile, Err(EnvelopeError::NotAnAgeFile))
        | (Opened::NoMatchingIdentity, Err(EnvelopeError::NoMatchingIdentity))
        | (Opened::HeaderTampered, Err(EnvelopeError::HeaderTampered))
        | (Opened::PayloadTampered, Err(EnvelopeError::PayloadTampered))
        | (Opened::Truncated, Err(EnvelopeError::Truncated))
        | (Opened::PassphraseEncrypted, Err(EnvelopeError::PassphraseEncrypted)) => true,
        _ => false,
    };
    assert!(ok, "envelope_decrypt seed {name}: expected {expected:?}, got {got:?}");
}

/// Writes the seeds when asked, then reads them from the committed corpus: each is there and
/// reaches what it is named for.
fn check_corpus<E: std::fmt::Debug>(
    target: &str,
    seeds: Vec<(&'static str, Vec<u8>, E)>,
    check: fn(&str, &[u8], &E),
) {
    let dir = corpus(target);
    if std::env::var_os("ECLD_FUZZ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes, _) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, _, expected) in &seeds {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (ECLD_FUZZ_WRITE_SEEDS=1 writes the seeds)", path.display())
        });
        check(name, &bytes, expected);
    }
}

#[test]
fn payload_decode_seeds_reach_what_they_are_named_for() {
    check_corpus("payload_decode", payload_seeds(), check_payload);
}

#[test]
fn envelope_decrypt_seeds_reach_what_they_are_named_for() {
    check_corpus("envelope_decrypt", envelope_seeds(), check_envelope);
}
