//! Fixed-size byte strings that travel as hex text in JSON.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `N` bytes, written as lowercase hex (no prefix); `0x` is accepted when parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> HexBytes<N> {
    /// The bytes.
    pub const fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected} bytes of hex ({} hex digits), got `{text}`", expected * 2)]
pub struct HexError {
    /// Number of bytes expected.
    pub expected: usize,
    /// The text given (truncated to 80 characters).
    pub text: String,
}

impl<const N: usize> FromStr for HexBytes<N> {
    type Err = HexError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let mut out = [0u8; N];
        hex::decode_to_slice(t, &mut out)
            .map_err(|_| HexError { expected: N, text: text.chars().take(80).collect() })?;
        Ok(Self(out))
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde helper for variable-length byte vectors as hex text.
pub mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes bytes as lowercase hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Reads hex text (optional `0x`) into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        hex::decode(t.strip_prefix("0x").unwrap_or(t))
            .map_err(|e| serde::de::Error::custom(format!("invalid hex: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_prefix() {
        let h: HexBytes<2> = "0xabCD".parse().unwrap();
        assert_eq!(h.0, [0xab, 0xcd]);
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"abcd\"");
        assert!("abc".parse::<HexBytes<2>>().is_err());
        assert!("abcdef".parse::<HexBytes<2>>().is_err());
    }
}
