//! Integration tests of ecld-crypto: round trips, tampering, and interoperability with
//! independent implementations (Debian's `age`, Python `eth-account` vectors).

// Test helpers outside `#[test]` functions may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod age_interop;
mod eip712_vectors;
mod envelope;
mod keys;
mod payload;
mod proof;

/// The repository root (for `testdata/` and `tools/`).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
