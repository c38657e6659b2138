//! Images this node refuses to run because their module can never pass its checks, kept in
//! `refused-images.json` in the data directory so that a restarted node remembers them.
//!
//! A module whose bytes verify against their CID (every block re-hashed by the store client)
//! but whose sha256 differs from the measurement the ImageRegistry holds for the image will
//! never match: the CID names those bytes forever and an image's manifest cannot change. The
//! same holds for a `codeCid` that does not parse. Such an image is refused at once: the task
//! that found out is released once, and no task of that image is claimed again.
//!
//! A store that served bytes which do not hash to their CID is different: the store lied (a
//! faulty proxy, a corrupted block that a later fetch may replace), so that failure is left
//! to the per-task release backoff ([`crate::Tuning::release_backoff`]).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use alloy::primitives::B256;
use ecld_types::ImageId;
use serde::{Deserialize, Serialize};

use crate::{fetch::FetchError, journal::write_atomic};

/// File name in the data directory.
pub const FILE: &str = "refused-images.json";

/// What a failed module fetch says about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleVerdict {
    /// The image can never run: refuse it for good.
    Unusable {
        /// Short reason for metrics and the refusal record (`measurement`, `cid`).
        reason: &'static str,
    },
    /// The failure may pass (store down or lying, local disk): retry with the task backoff.
    Transient {
        /// Short reason for metrics (`tampered`, `unavailable`, `cache`).
        reason: &'static str,
    },
}

/// Classifies a failure of [`crate::fetch::Fetcher::module`].
pub fn classify(e: &FetchError) -> ModuleVerdict {
    match e {
        // The bytes verified against their CID, so the CID itself names another module than
        // the registered measurement.
        FetchError::Mismatch { .. } => ModuleVerdict::Unusable { reason: "measurement" },
        FetchError::BadCid { .. } => ModuleVerdict::Unusable { reason: "cid" },
        FetchError::Tampered { .. } => ModuleVerdict::Transient { reason: "tampered" },
        FetchError::Unavailable { .. } => ModuleVerdict::Transient { reason: "unavailable" },
        FetchError::Cache { .. } => ModuleVerdict::Transient { reason: "cache" },
    }
}

/// One refused image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedImage {
    /// The image.
    pub image: ImageId,
    /// Its registered module CID.
    pub code_cid: String,
    /// Its registered measurement.
    pub measurement: B256,
    /// Why (`measurement`, `cid`).
    pub reason: String,
    /// The error, as logged.
    pub detail: String,
    /// When it was refused (unix seconds).
    pub at: u64,
}

/// Why the refusal file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RefusedError {
    /// A file operation failed.
    #[error("{path}: {source}; check the data directory's disk and permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a list of refusals.
    #[error(
        "{path} is not a list of refused images ({source}); delete it to try every image again"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Parse error.
        source: serde_json::Error,
    },
}

/// The refused images of one node.
#[derive(Debug)]
pub struct Refusals {
    path: PathBuf,
    images: BTreeMap<ImageId, RefusedImage>,
}

impl Refusals {
    /// Reads the refusals kept in `data_dir` (none if the file does not exist).
    pub fn open(data_dir: &Path) -> Result<Self, RefusedError> {
        let path = data_dir.join(FILE);
        let images = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<RefusedImage>>(&bytes)
                .map_err(|source| RefusedError::Corrupt { path: path.clone(), source })?
                .into_iter()
                .map(|r| (r.image, r))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(RefusedError::Io { path, source }),
        };
        Ok(Self { path, images })
    }

    /// No refusals, kept in `data_dir` once one is added (used when the file is unreadable).
    pub fn empty(data_dir: &Path) -> Self {
        Self { path: data_dir.join(FILE), images: BTreeMap::new() }
    }

    /// Whether `image`, registered with `code_cid` and `measurement`, is refused.
    pub fn refuses(&self, image: ImageId, code_cid: &str, measurement: B256) -> bool {
        self.images
            .get(&image)
            .is_some_and(|r| r.code_cid == code_cid && r.measurement == measurement)
    }

    /// Adds a refusal and writes the file; `Ok(false)` if the image was already refused.
    pub fn add(&mut self, refusal: RefusedImage) -> Result<bool, RefusedError> {
        if self.refuses(refusal.image, &refusal.code_cid, refusal.measurement) {
            return Ok(false);
        }
        self.images.insert(refusal.image, refusal);
        let list: Vec<&RefusedImage> = self.images.values().collect();
        let bytes = serde_json::to_vec_pretty(&list)
            .map_err(|source| RefusedError::Corrupt { path: self.path.clone(), source })?;
        write_atomic(&self.path, &bytes)
            .map_err(|source| RefusedError::Io { path: self.path.clone(), source })?;
        Ok(true)
    }

    /// The refused images.
    pub fn iter(&self) -> impl Iterator<Item = &RefusedImage> {
        self.images.values()
    }

    /// How many images are refused.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether no image is refused.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The file the refusals are kept in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn only_a_verified_module_with_another_measurement_or_a_bad_cid_is_permanent() {
        let mismatch =
            FetchError::Mismatch { what: "module", cid: "bafy".into(), expected: b(1), got: b(2) };
        assert_eq!(classify(&mismatch), ModuleVerdict::Unusable { reason: "measurement" });
        let bad = FetchError::BadCid { cid: "not-a-cid".into() };
        assert_eq!(classify(&bad), ModuleVerdict::Unusable { reason: "cid" });
        // The store lied about the bytes of a CID: another fetch may get the right ones.
        let tampered = FetchError::Tampered { cid: "bafy".into(), message: "hash".into() };
        assert_eq!(classify(&tampered), ModuleVerdict::Transient { reason: "tampered" });
        let down = FetchError::Unavailable { cid: "bafy".into(), message: "refused".into() };
        assert_eq!(classify(&down), ModuleVerdict::Transient { reason: "unavailable" });
        let disk =
            FetchError::Cache { path: "/x".into(), source: std::io::Error::other("disk full") };
        assert_eq!(classify(&disk), ModuleVerdict::Transient { reason: "cache" });
    }

    #[test]
    fn refusals_survive_a_restart_and_name_the_exact_registration() {
        let dir = tempfile::tempdir().unwrap();
        let image = ImageId(b(7));
        let mut r = Refusals::open(dir.path()).unwrap();
        assert!(r.is_empty());
        let refusal = RefusedImage {
            image,
            code_cid: "bafy-module".into(),
            measurement: b(1),
            reason: "measurement".into(),
            detail: "module bafy-module does not match".into(),
            at: 1_700_000_000,
        };
        assert!(r.add(refusal.clone()).unwrap());
        assert!(!r.add(refusal.clone()).unwrap(), "a second refusal of the same image is no news");
        assert!(r.refuses(image, "bafy-module", b(1)));
        assert!(!r.refuses(image, "bafy-module", b(2)));
        assert!(!r.refuses(ImageId(b(8)), "bafy-module", b(1)));

        let again = Refusals::open(dir.path()).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again.iter().next(), Some(&refusal));
        assert!(again.refuses(image, "bafy-module", b(1)));

        std::fs::write(dir.path().join(FILE), b"{ not a list").unwrap();
        let err = Refusals::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("delete it to try every image again"), "{err}");
    }
}
