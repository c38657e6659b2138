//! The one error type of the store, its server and its client.

use std::net::SocketAddr;
use std::path::PathBuf;

use cid::Cid;

/// Everything that can go wrong storing or fetching content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A CID string or byte string could not be parsed.
    #[error("invalid CID {input:?}: {reason}; expected a CID such as bafkrei… or Qm…")]
    InvalidCid {
        /// What was given (truncated to 120 characters).
        input: String,
        /// Why it is not a CID.
        reason: String,
    },
    /// The store does not have the block or file.
    #[error("{cid} not found in the store; add it first, or check the CID and the store URL")]
    NotFound {
        /// The missing CID (a block of the requested DAG, or its root).
        cid: Cid,
    },
    /// A store returned bytes that do not match the CID they were asked for: the store is
    /// faulty or malicious. Nothing it sent was passed on.
    #[error("store returned tampered content for {cid}: {detail}; do not trust this store")]
    Tampered {
        /// The CID whose content did not verify.
        cid: Cid,
        /// What did not match.
        detail: String,
    },
    /// A block verified but is not a valid UnixFS file node.
    #[error("{cid} is not a UnixFS file this store can read: {reason}")]
    Malformed {
        /// The offending block.
        cid: Cid,
        /// What is wrong with it.
        reason: String,
    },
    /// The CID uses a hash function or codec that this crate does not verify.
    #[error("{cid} is unsupported: {reason}")]
    Unsupported {
        /// The CID.
        cid: Cid,
        /// What is not supported.
        reason: String,
    },
    /// Storing would exceed the configured size quota.
    #[error(
        "store quota exceeded: {used} of {quota} bytes used, {needed} more needed; \
         unpin content and run gc, or raise the quota"
    )]
    QuotaExceeded {
        /// Bytes of blocks stored.
        used: u64,
        /// The quota.
        quota: u64,
        /// Bytes the rejected write needed.
        needed: u64,
    },
    /// Content is larger than the caller allowed.
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be used.
    #[error("cannot use data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP request to a remote store failed (connection, timeout, body).
    #[error("request to store at {url} failed: {source}; is the store running and reachable?")]
    Http {
        /// The request URL (without query).
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The remote store answered with an error.
    #[error("store at {url} answered {status}: {message}")]
    Api {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The store's message.
        message: String,
    },
    /// The remote store answered something that is not the Kubo API.
    #[error("store at {url} sent an unexpected answer: {detail}; is this a Kubo-compatible API?")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was unexpected.
        detail: String,
    },
    /// A request to the local store was invalid.
    #[error("{0}")]
    BadRequest(String),
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn invalid_cid(input: &str, reason: impl std::fmt::Display) -> Self {
        let input: String = input.chars().take(120).collect();
        Self::InvalidCid { input, reason: reason.to_string() }
    }
}

/// Parses a CID from its text form (CIDv0 `Qm…` or multibase CIDv1), also accepting a
/// `/ipfs/` prefix as Kubo does.
pub fn parse_cid(input: &str) -> Result<Cid, StoreError> {
    let s = input.trim();
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    if s.is_empty() {
        return Err(StoreError::invalid_cid(input, "empty string"));
    }
    if s.len() > 200 {
        return Err(StoreError::invalid_cid(input, "too long"));
    }
    Cid::try_from(s).map_err(|e| StoreError::invalid_cid(input, e))
}
