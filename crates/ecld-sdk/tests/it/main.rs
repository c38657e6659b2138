//! The SDK against a real chain (ecld-devnet with the deployed contracts) and a real store,
//! with this test playing the node and the enclave by hand (their own crates test those
//! roles; the whole stack runs in `ecld`'s end-to-end tests).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

mod batch;
mod deposit;
mod flow;
mod harness;
