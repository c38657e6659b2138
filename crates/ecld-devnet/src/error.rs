//! Errors of starting and running a devnet.

use std::{net::SocketAddr, path::PathBuf};

/// Why a devnet could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}; pick a free port (or 0 for any)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The dev accounts could not be derived from the mnemonic.
    #[error("cannot derive the dev accounts: {0}")]
    Accounts(String),
    /// Reading or writing the state directory failed.
    #[error("state directory {}: {source}; check that it is writable and not full", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The state directory holds a chain made with other parameters.
    #[error(
        "state directory {} holds a chain with {what}; start with the same settings or use an \
         empty directory",
        path.display()
    )]
    ConfigMismatch {
        /// The state directory.
        path: PathBuf,
        /// Which parameter differs, and how.
        what: String,
    },
    /// A journaled block no longer applies (the file was edited or comes from another build).
    #[error(
        "state directory {}: block {number} of the journal does not replay: {reason}; move the \
         directory away to start a fresh chain",
        path.display()
    )]
    Replay {
        /// The state directory.
        path: PathBuf,
        /// The block that failed.
        number: u64,
        /// What went wrong.
        reason: String,
    },
    /// The server task ended with an error.
    #[error("the devnet server failed: {0}")]
    Server(String),
}
