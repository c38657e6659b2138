#![doc = include_str!("../README.md")]

pub mod blockstore;
mod client;
mod error;
mod server;
pub mod unixfs;

pub use cid::Cid;
pub use client::{AddOptions, CatOptions, ContentStore, KuboClient, MAX_BLOCK_SIZE, Progress};
pub use error::{StoreError, parse_cid};
pub use server::{StoreConfig, StoreHandle, spawn};
