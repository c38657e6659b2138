//! Identifiers of the marketplace's objects.

use std::{fmt, str::FromStr};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// Why a textual id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    /// The text is not a decimal number that fits the id.
    #[error("`{text}` is not a valid {kind} id: expected a decimal number from 1 to {max}")]
    NotANumber {
        /// Which kind of id was being parsed.
        kind: &'static str,
        /// The text that was given.
        text: String,
        /// The largest value allowed.
        max: u64,
    },
    /// Id 0 is reserved on chain for "none".
    #[error("{kind} id 0 is reserved for \"none\"; ids start at 1")]
    Zero {
        /// Which kind of id was being parsed.
        kind: &'static str,
    },
    /// The text is not 32 bytes of hex.
    #[error("`{text}` is not a valid image id: expected 0x followed by 64 hex digits")]
    NotAHash {
        /// The text that was given.
        text: String,
    },
}

macro_rules! counter_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw on-chain value; `None` for the reserved 0.
            pub const fn new(raw: u64) -> Option<Self> {
                if raw == 0 { None } else { Some(Self(raw)) }
            }

            /// The on-chain value.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let raw: u64 = text.trim().parse().map_err(|_| ParseIdError::NotANumber {
                    kind: $kind,
                    text: text.to_owned(),
                    max: u64::MAX,
                })?;
                Self::new(raw).ok_or(ParseIdError::Zero { kind: $kind })
            }
        }
    };
}

counter_id!(
    /// A task in the Marketplace contract, numbered from 1 in submission order.
    TaskId,
    "task"
);
counter_id!(
    /// A node's offer of resources in the Marketplace contract, numbered from 1.
    OfferId,
    "offer"
);

/// An image in the ImageRegistry: keccak256 of its manifest. A new version is a new id, so
/// an id never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(pub B256);

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for ImageId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        if t.len() != 66 || !t.starts_with("0x") {
            return Err(ParseIdError::NotAHash { text: text.to_owned() });
        }
        t.parse::<B256>().map(Self).map_err(|_| ParseIdError::NotAHash { text: text.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_id_zero_is_refused() {
        assert_eq!("0".parse::<TaskId>(), Err(ParseIdError::Zero { kind: "task" }));
        assert!(TaskId::new(0).is_none());
    }

    #[test]
    fn task_id_round_trips() {
        let id: TaskId = "42".parse().unwrap();
        assert_eq!(id.get(), 42);
        assert_eq!(id.to_string(), "42");
    }

    #[test]
    fn offer_id_garbage_names_the_text() {
        let err = "abc".parse::<OfferId>().unwrap_err();
        assert!(err.to_string().contains("`abc` is not a valid offer id"), "{err}");
    }

    #[test]
    fn image_id_needs_full_hash() {
        assert!("0x12".parse::<ImageId>().is_err());
        let h = format!("0x{}", "ab".repeat(32));
        assert_eq!(h.parse::<ImageId>().unwrap().to_string(), h);
    }
}
