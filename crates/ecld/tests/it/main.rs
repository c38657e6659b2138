//! Integration tests of the `ecld` binary.

mod adversarial;
mod adversarial_stack;
mod bench;
mod chaos;
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers")]
mod crypto_cli;
mod deposit;
mod e2e_flow;
mod e2e_security;
mod e2e_stack;
mod enclave;
mod local_stack;
mod node;
mod node_chain;
mod node_faults;
mod one_account;
mod readme;
mod runners;
mod web;
