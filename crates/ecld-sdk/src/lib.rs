#![doc = include_str!("../README.md")]

mod client;
pub mod config;
mod error;
pub mod keys;
mod result;
mod status;
pub mod verify;

pub use client::{
    Client, Fetched, Image, Ledger, MAX_BATCH, Offer, OfferChoice, PublishRequest, Submitted,
    TaskInfo, TaskRequest, TaskResult, load_wallet,
};
pub use config::ClientConfig;
pub use ecld_types::{ImageId, OfferId, StatusCode, TaskId};
pub use error::{Error, VerifyError};
pub use result::ProgramOutput;
pub use status::{Step, TaskState, Timings};
