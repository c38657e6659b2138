//! Integration tests of ecld-enclave: the example programs under `programs/`.

mod attest;
mod programs;
