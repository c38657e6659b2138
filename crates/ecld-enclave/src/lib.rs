#![doc = include_str!("../README.md")]

pub mod attest;
pub mod client;
pub mod enclave;
pub mod image;
pub mod protocol;
pub mod result;
pub mod runner;
pub mod runtime;
pub mod server;
