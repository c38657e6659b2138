//! Contract tests through JSON-RPC: every Marketplace path on the in-process ecld-devnet,
//! the same sequence on `hardhat node` where Node.js is present, and the artifacts'
//! freshness.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod artifacts;
mod devnet;
mod direct_transfer;
mod hardhat;
mod harness;
mod ledger;
mod property;
mod refused_refund;
mod scenarios;
