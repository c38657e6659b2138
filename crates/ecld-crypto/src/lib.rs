#![doc = include_str!("../README.md")]

pub mod envelope;
pub mod keys;
pub mod payload;
pub mod proof;

pub use envelope::{AgeRecipient, EnvelopeError, decrypt, encrypt};
pub use keys::{AgeIdentity, KeyError, SignerKey};
pub use payload::{Payload, PayloadError, code_hash};
pub use proof::{ProofDomain, ProofError, ProofSignature, ResultProof};
