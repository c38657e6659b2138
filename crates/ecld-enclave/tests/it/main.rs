//! Integration tests of ecld-enclave: the example programs under `programs/`.

mod programs;
