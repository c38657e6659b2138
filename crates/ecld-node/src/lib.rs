#![doc = include_str!("../README.md")]

pub mod chain;
pub mod config;
pub mod crash_point;
pub mod enclave;
pub mod fetch;
pub mod journal;
pub mod metrics;
mod node;
pub mod refused;
pub mod retry;
pub mod task;

pub use config::{ConfigError, ImageChoice, NodeConfig, OfferSpec, Platform};
pub use node::{NodeError, NodeHandle, Tuning, spawn, spawn_tuned};
