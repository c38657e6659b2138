//! What an enclave runs: the image's WebAssembly module and its measurement.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The measurement of an image: sha256 of the WebAssembly module bytes the enclave loaded.
///
/// For the `sim` platform this is the value the evidence carries and the CAS compares with
/// the image policy; on TDX/SGX the hardware measurement covers the enclave binary and the
/// module is measured into the report data by the same rule.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Measurement(pub alloy_primitives::B256);

impl Measurement {
    /// sha256 of `module` bytes.
    pub fn of(module: &[u8]) -> Self {
        Self(alloy_primitives::B256::from_slice(&Sha256::digest(module)))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0.0
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Measurement({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_is_sha256_of_module() {
        // sha256("") is the well-known e3b0c442… value.
        assert_eq!(
            Measurement::of(b"").to_string(),
            "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(Measurement::of(b"a"), Measurement::of(b"b"));
    }
}
