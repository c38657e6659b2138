//! Integration tests of ecld-tee: sim evidence, DCAP sample quotes, configfs-tsm.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dcap;
mod sim;
mod tsm;
