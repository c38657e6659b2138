#![doc = include_str!("../README.md")]

pub mod config;
pub mod journal;
pub mod metrics;
pub mod retry;
pub mod task;

pub use config::{ConfigError, ImageChoice, NodeConfig, OfferSpec, Platform};
