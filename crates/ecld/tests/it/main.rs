//! Integration tests of the `ecld` binary.

mod e2e_flow;
mod e2e_security;
mod e2e_stack;
mod enclave;
