#![doc = include_str!("../README.md")]

pub mod client;
pub mod image;
pub mod protocol;
pub mod result;
pub mod runtime;
