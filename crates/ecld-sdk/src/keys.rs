//! The ImageRegistry stores an image's X25519 key as 32 raw bytes; age names the same key
//! as a Bech32 string `age1…`. These convert between the two.

use bech32::{Bech32, Hrp};
use ecld_crypto::AgeRecipient;
use ecld_types::B256;

/// Why a key did not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The text is not a Bech32 `age1…` recipient of 32 bytes.
    #[error("`{0}` is not an age X25519 recipient (age1 + 58 Bech32 characters)")]
    NotARecipient(String),
}

/// The age recipient of a raw X25519 public key.
///
/// # Errors
/// [`KeyFormatError`] when age refuses the key.
pub fn recipient_of(key: B256) -> Result<AgeRecipient, KeyFormatError> {
    let hrp = Hrp::parse("age").map_err(|_| KeyFormatError::NotARecipient(key.to_string()))?;
    let text = bech32::encode::<Bech32>(hrp, key.as_slice())
        .map_err(|_| KeyFormatError::NotARecipient(key.to_string()))?;
    text.parse().map_err(|_| KeyFormatError::NotARecipient(text))
}

/// The raw X25519 public key of an age recipient (`age1…`).
///
/// # Errors
/// [`KeyFormatError`] when the text is not a 32-byte `age` Bech32 string.
pub fn key_of(recipient: &str) -> Result<B256, KeyFormatError> {
    let bad = || KeyFormatError::NotARecipient(recipient.chars().take(100).collect());
    let (hrp, data) = bech32::decode(recipient.trim()).map_err(|_| bad())?;
    if hrp.as_str() != "age" || data.len() != 32 {
        return Err(bad());
    }
    Ok(B256::from_slice(&data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_round_trip_through_raw_keys() {
        for _ in 0..8 {
            let r = ecld_crypto::AgeIdentity::generate().recipient().to_string();
            let key = key_of(&r).unwrap();
            assert_eq!(recipient_of(key).unwrap().to_string(), r);
        }
    }

    #[test]
    fn other_bech32_strings_are_refused() {
        assert!(key_of("age1qqqq").is_err());
        assert!(key_of("not bech32").is_err());
    }
}
