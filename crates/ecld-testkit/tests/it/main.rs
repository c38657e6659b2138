//! Integration tests of ecld-testkit and of the scripts it goes with: the preflight
//! (`scripts/peers`), the skip log's summary (`scripts/skip-log`) and `scripts/test` around them.

// Helpers outside #[test] functions fail loudly too: this is a test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod peers_script;
mod skip_log_script;
mod test_script;
