//! Integration tests of ecld-store: CIDs against js-ipfs vectors, the HTTP API, the verifying
//! client, tampering, and interop with a real IPFS daemon.

// Helpers outside #[test] functions fail loudly too: this is a test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod common;
mod crash;
mod jsipfs;
mod tamper;
mod vectors;
