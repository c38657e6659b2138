#![doc = include_str!("../README.md")]

mod ids;
mod status;

pub use alloy_primitives::{Address, B256, U256, keccak256};
pub use ids::{ImageId, OfferId, ParseIdError, TaskId};
pub use status::{Fault, ParseStatusError, Settlement, StatusCode};

/// keccak256 of bytes exactly as stored (ciphertext for inputs and results).
///
/// This is the hash the proof of execution and the contract carry as `inputHash` and
/// `resultHash`.
pub fn content_hash(bytes: &[u8]) -> B256 {
    keccak256(bytes)
}
