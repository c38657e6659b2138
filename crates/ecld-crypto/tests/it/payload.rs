use ecld_crypto::{
    AgeIdentity, Payload, PayloadError,
    payload::{FORMAT_VERSION, Field, MAGIC, MAX_CODE_LEN, MAX_INPUT_LEN, MAX_RECIPIENT_LEN},
};
use ecld_types::{Address, B256, keccak256};
use proptest::prelude::*;

fn recipient() -> String {
    AgeIdentity::generate().recipient().to_string()
}

fn sample() -> Payload {
    Payload {
        requester: Address::repeat_byte(0xab),
        recipient: recipient(),
        code: Some(b"print('hi')".to_vec()),
        input: b"hello world".to_vec(),
    }
}

#[test]
fn layout_is_as_documented() {
    let p = sample();
    let bytes = p.encode();
    assert_eq!(bytes.len(), p.encoded_len());
    assert_eq!(&bytes[..4], &MAGIC);
    assert_eq!(bytes[4], FORMAT_VERSION);
    assert_eq!(&bytes[5..25], p.requester.as_slice());
    assert_eq!(u16::from_be_bytes([bytes[25], bytes[26]]), 62);
    assert_eq!(&bytes[27..89], p.recipient.as_bytes());
    assert_eq!(bytes[89], 1);
    assert_eq!(&bytes[90..94], &11u32.to_be_bytes());
    assert_eq!(&bytes[94..105], b"print('hi')");
    assert_eq!(&bytes[105..109], &11u32.to_be_bytes());
    assert_eq!(&bytes[109..], b"hello world");
    assert_eq!(Payload::decode(&bytes).unwrap(), p);
}

#[test]
fn code_hash_is_keccak_or_zero() {
    let mut p = sample();
    assert_eq!(p.code_hash(), keccak256(b"print('hi')"));
    p.code = None;
    assert_eq!(p.code_hash(), B256::ZERO);
    p.code = Some(Vec::new());
    assert_eq!(p.code_hash(), keccak256(b""));
    assert_ne!(p.code_hash(), B256::ZERO);
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let bytes = sample().encode();
    for cut in 0..bytes.len() {
        let err = Payload::decode(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, PayloadError::Truncated { .. }), "cut {cut}: {err:?}");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = sample().encode();
    bytes.extend_from_slice(b"xyz");
    assert_eq!(Payload::decode(&bytes).unwrap_err(), PayloadError::TrailingBytes(3));
}

#[test]
fn unknown_version_and_magic_are_refused() {
    let mut bytes = sample().encode();
    bytes[4] = 2;
    assert_eq!(Payload::decode(&bytes).unwrap_err(), PayloadError::UnsupportedVersion(2));
    bytes[0] = b'X';
    assert_eq!(Payload::decode(&bytes).unwrap_err(), PayloadError::BadMagic);
}

#[test]
fn bad_code_flag_is_refused() {
    let p = sample();
    let mut bytes = p.encode();
    bytes[27 + p.recipient.len()] = 7;
    assert_eq!(Payload::decode(&bytes).unwrap_err(), PayloadError::InvalidCodeFlag(7));
}

fn header(recipient: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0u8; 20]);
    out.extend_from_slice(&u16::try_from(recipient.len()).unwrap().to_be_bytes());
    out.extend_from_slice(recipient.as_bytes());
    out
}

#[test]
fn oversize_fields_are_refused_before_reading_them() {
    let r = recipient();

    let mut long_recipient = MAGIC.to_vec();
    long_recipient.push(FORMAT_VERSION);
    long_recipient.extend_from_slice(&[0u8; 20]);
    long_recipient.extend_from_slice(&u16::try_from(MAX_RECIPIENT_LEN + 1).unwrap().to_be_bytes());
    assert_eq!(
        Payload::decode(&long_recipient).unwrap_err(),
        PayloadError::TooLarge {
            field: Field::Recipient,
            len: MAX_RECIPIENT_LEN + 1,
            max: MAX_RECIPIENT_LEN
        }
    );

    let mut code = header(&r);
    code.push(1);
    code.extend_from_slice(&u32::try_from(MAX_CODE_LEN + 1).unwrap().to_be_bytes());
    assert_eq!(
        Payload::decode(&code).unwrap_err(),
        PayloadError::TooLarge { field: Field::Code, len: MAX_CODE_LEN + 1, max: MAX_CODE_LEN }
    );

    let mut input = header(&r);
    input.push(0);
    input.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        Payload::decode(&input).unwrap_err(),
        PayloadError::TooLarge { field: Field::Input, len: u32::MAX as usize, max: MAX_INPUT_LEN }
    );
}

#[test]
fn invalid_recipients_are_refused() {
    for bad in ["", "age1xyz", " age1", "AGE-SECRET-KEY-1ABC", "\u{e9}"] {
        let mut bytes = header(bad);
        bytes.extend_from_slice(&[0, 0, 0, 0, 0]);
        let err = Payload::decode(&bytes).unwrap_err();
        assert!(matches!(err, PayloadError::InvalidRecipient(_)), "{bad:?}: {err:?}");
    }
    let mut bytes = header("x");
    let pos = bytes.len() - 1;
    bytes[pos] = 0xff;
    bytes.extend_from_slice(&[0, 0, 0, 0, 0]);
    assert!(matches!(Payload::decode(&bytes).unwrap_err(), PayloadError::InvalidRecipient(_)));
}

#[test]
fn new_validates_and_recipient_parses() {
    let id = AgeIdentity::generate();
    let p = Payload::new(Address::ZERO, &id.recipient(), None, vec![1, 2, 3]).unwrap();
    assert_eq!(p.recipient().unwrap(), id.recipient());
    let bad = Payload { recipient: "nope".into(), ..p };
    assert!(matches!(bad.validate().unwrap_err(), PayloadError::InvalidRecipient(_)));
}

fn any_payload() -> impl Strategy<Value = Payload> {
    (
        any::<[u8; 20]>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2000)),
        proptest::collection::vec(any::<u8>(), 0..4000),
    )
        .prop_map(|(requester, code, input)| Payload {
            requester: Address::from(requester),
            recipient: recipient(),
            code,
            input,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_round_trip(p in any_payload()) {
        prop_assert_eq!(Payload::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Payload::decode(&bytes);
    }

    /// Garbage after a valid prefix (the likeliest corruption) is refused, never accepted
    /// as a different payload.
    #[test]
    fn prop_mutated_payloads_never_panic(p in any_payload(), pos: prop::sample::Index, byte: u8) {
        let mut bytes = p.encode();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(decoded) = Payload::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}

/// The worked example in docs/protocol.md.
#[test]
fn documented_example() {
    let p = Payload {
        requester: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".parse().unwrap(),
        recipient: "age1xjdpdy7d7d0uz4y2l4mh0m2ggk9f6qcdhccm3gjjl90rddxsdd9qvt7u8z".into(),
        code: None,
        input: b"hello".to_vec(),
    };
    let hex = "45434c500170997970c51812dc3a010c7d01b50e0d17dc79c8003e61676531786a647064793764\
               376430757a3479326c346d68306d3267676b3966367163646863636d33676a6a6c393072646478\
               736464397176743775387a000000000568656c6c6f";
    assert_eq!(p.encode(), hex::decode(hex).unwrap());
    assert_eq!(p.encoded_len(), 99);
    assert_eq!(Payload::decode(&p.encode()).unwrap(), p);
}
