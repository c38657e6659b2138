//! Inputs and image modules from the store, verified; results to the store.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use alloy::primitives::B256;
use ecld_enclave::image::Measurement;
use ecld_store::{ContentStore, KuboClient, StoreError, parse_cid};
use ecld_types::content_hash;

use crate::{
    journal::write_atomic,
    retry::{Backoff, Retryable, retry},
};

/// Largest input ciphertext fetched.
pub const MAX_INPUT: u64 = 256 << 20;
/// Largest module fetched.
pub const MAX_MODULE: u64 = 256 << 20;
/// Longest a single store call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why content could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The store could not deliver (down, content missing) after retries.
    #[error("store unavailable for {cid}: {message}")]
    Unavailable {
        /// The CID.
        cid: String,
        /// Last error.
        message: String,
    },
    /// The CID on chain does not parse.
    #[error("`{cid}` is not a valid CID")]
    BadCid {
        /// The text.
        cid: String,
    },
    /// The bytes are not the ones the chain names.
    #[error("{what} {cid} does not match: expected {expected}, got {got}")]
    Mismatch {
        /// Input or module.
        what: &'static str,
        /// The CID.
        cid: String,
        /// Expected hash.
        expected: B256,
        /// Actual hash.
        got: B256,
    },
    /// The store served bytes that do not match their CID.
    #[error("the store served tampered content for {cid}: {message}")]
    Tampered {
        /// The CID.
        cid: String,
        /// Detail.
        message: String,
    },
    /// The local module cache failed.
    #[error("module cache {path}: {source}")]
    Cache {
        /// File.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
}

struct Call(StoreError);

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Retryable for Call {
    fn is_transient(&self) -> bool {
        match &self.0 {
            // A store that is down, overloaded, or has not received the content yet (IPFS
            // propagation) may answer later.
            StoreError::Http { .. } | StoreError::NotFound { .. } | StoreError::Io { .. } => true,
            StoreError::Api { status, .. } => *status >= 500 || *status == 404 || *status == 429,
            _ => false,
        }
    }
}

fn timed_out() -> StoreError {
    StoreError::Io {
        context: "store call".into(),
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
    }
}

/// Store access of one node.
#[derive(Debug)]
pub struct Fetcher {
    store: KuboClient,
    cache_dir: PathBuf,
    verified: Mutex<HashSet<PathBuf>>,
    backoff: Backoff,
}

impl Fetcher {
    /// A fetcher using `store`, caching modules in `data_dir/modules`.
    pub fn new(store: KuboClient, data_dir: &Path, backoff: Backoff) -> Self {
        Self {
            store,
            cache_dir: data_dir.join("modules"),
            verified: Mutex::new(HashSet::new()),
            backoff,
        }
    }

    async fn cat(&self, cid_text: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let cid =
            parse_cid(cid_text).map_err(|_| FetchError::BadCid { cid: cid_text.to_owned() })?;
        let r = retry(self.backoff, "store_cat", || async {
            match tokio::time::timeout(CALL_TIMEOUT, self.store.cat_bytes(&cid, max)).await {
                Ok(r) => r.map_err(Call),
                Err(_) => Err(Call(timed_out())),
            }
        })
        .await;
        r.map_err(|Call(e)| match e {
            StoreError::Tampered { detail, .. } => {
                FetchError::Tampered { cid: cid_text.to_owned(), message: detail }
            }
            other => {
                FetchError::Unavailable { cid: cid_text.to_owned(), message: other.to_string() }
            }
        })
    }

    /// The input ciphertext of a task, as its CID names it (every block checked). Whether it
    /// is what the requester committed (`input_hash`) is the enclave's to judge and sign.
    pub async fn input(&self, cid: &str, input_hash: B256) -> Result<Vec<u8>, FetchError> {
        let bytes = self.cat(cid, MAX_INPUT).await?;
        // Bytes the CID names but the requester's hash does not are the requester's doing:
        // the enclave judges them (INPUT_MISMATCH, the node is paid), so they go to it.
        let got = content_hash(&bytes);
        if got != input_hash {
            tracing::warn!(target: "ecld_node", cid, expected = %input_hash, %got, "the input the requester's CID names does not hash to the inputHash it committed; the enclave will sign INPUT_MISMATCH");
        }
        Ok(bytes)
    }

    /// The module `code_cid`, verified against `measurement` (sha256), from the local cache
    /// or the store. Returns the path of the verified file.
    pub async fn module(&self, code_cid: &str, measurement: B256) -> Result<PathBuf, FetchError> {
        let safe: String = code_cid.chars().filter(char::is_ascii_alphanumeric).collect();
        let path = self.cache_dir.join(format!("{safe}-{}.wasm", hex::encode(&measurement[..8])));
        if self.verified.lock().is_ok_and(|v| v.contains(&path)) {
            return Ok(path);
        }
        if let Ok(bytes) = tokio::fs::read(&path).await
            && Measurement::of(&bytes).0 == measurement
        {
            self.mark(&path);
            return Ok(path);
        }
        let bytes = self.cat(code_cid, MAX_MODULE).await?;
        let got = Measurement::of(&bytes).0;
        if got != measurement {
            return Err(FetchError::Mismatch {
                what: "module",
                cid: code_cid.to_owned(),
                expected: measurement,
                got,
            });
        }
        let cache = |source| FetchError::Cache { path: path.clone(), source };
        std::fs::create_dir_all(&self.cache_dir).map_err(cache)?;
        write_atomic(&path, &bytes).map_err(cache)?;
        self.mark(&path);
        Ok(path)
    }

    fn mark(&self, path: &Path) {
        if let Ok(mut v) = self.verified.lock() {
            v.insert(path.to_owned());
        }
    }

    /// Uploads a result ciphertext; the same bytes always give the same CID, so uploading
    /// again after a restart is harmless.
    pub async fn upload(&self, bytes: &[u8]) -> Result<String, FetchError> {
        let data = bytes::Bytes::copy_from_slice(bytes);
        let r = retry(self.backoff, "store_add", || async {
            match tokio::time::timeout(CALL_TIMEOUT, self.store.add_bytes(data.clone())).await {
                Ok(r) => r.map_err(Call),
                Err(_) => Err(Call(timed_out())),
            }
        })
        .await;
        r.map(|cid| cid.to_string()).map_err(|Call(e)| FetchError::Unavailable {
            cid: "(upload)".into(),
            message: e.to_string(),
        })
    }
}
