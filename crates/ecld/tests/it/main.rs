//! Integration tests of the `ecld` binary.

mod enclave;
