//! Integration tests of ecld-testkit and of the preflight it goes with (`scripts/peers`).

// Helpers outside #[test] functions fail loudly too: this is a test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_script;
