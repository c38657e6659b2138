//! Quote generation through Linux configfs-tsm (`/sys/kernel/config/tsm/report`).
//!
//! The kernel interface: make a directory under the report root, write the 64 bytes of
//! report data to its `inblob`, read the quote from `outblob`, remove the directory.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{Platform, ReportData, TeeError};

/// Where Linux exposes configfs-tsm reports.
pub const DEFAULT_TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A configfs-tsm report root.
#[derive(Debug, Clone)]
pub struct ConfigfsTsm {
    root: PathBuf,
}

impl Default for ConfigfsTsm {
    fn default() -> Self {
        Self::new(DEFAULT_TSM_REPORT_DIR)
    }
}

impl ConfigfsTsm {
    /// A report root at `root` (normally [`DEFAULT_TSM_REPORT_DIR`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The report root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the report root exists.
    pub fn is_available(&self) -> bool {
        self.root.is_dir()
    }

    /// Produces a quote binding `report_data`.
    pub fn report(
        &self,
        platform: Platform,
        report_data: &ReportData,
    ) -> Result<Vec<u8>, TeeError> {
        if !self.is_available() {
            return Err(TeeError::TsmUnavailable { platform, path: self.root.clone() });
        }
        let entry = self.root.join(format!(
            "ecld-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| TeeError::Tsm { path, source }
        };
        fs::create_dir(&entry).map_err(err(&entry))?;
        let result = (|| {
            fs::write(entry.join("inblob"), report_data.0).map_err(err(&entry.join("inblob")))?;
            fs::read(entry.join("outblob")).map_err(err(&entry.join("outblob")))
        })();
        // configfs entries are removed with rmdir; a failure here only leaks a kernel object.
        let _ = fs::remove_dir(&entry);
        let quote = result?;
        if quote.is_empty() {
            return Err(TeeError::Tsm {
                path: entry.join("outblob"),
                source: std::io::Error::other("the kernel returned an empty quote"),
            });
        }
        Ok(quote)
    }
}
