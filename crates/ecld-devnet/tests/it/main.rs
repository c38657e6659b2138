//! Integration tests of ecld-devnet: a real server on a loopback port, driven over JSON-RPC.

#![allow(clippy::unwrap_used)] // Test helpers fail the test on any unexpected answer.

mod common;
mod dev;
mod interop;
mod logs;
mod persist;
mod rpc;
mod txs;
mod ws;
