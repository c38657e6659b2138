//! Integration tests of the `ecld` binary.

mod e2e_flow;
mod e2e_security;
mod e2e_stack;
mod enclave;
mod node;
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]
mod crypto_cli;
