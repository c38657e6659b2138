//! The append-only audit log: one JSON line per decision, fsynced before the answer is sent.
//!
//! Events: `session_created`, `session_exists`, `nonce_issued`, `attest_accepted`,
//! `attest_refused` (with `code` and `reason`). Secrets never appear in it.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;

use crate::CasError;

/// One audit record.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AuditEvent<'a> {
    pub(crate) ts: u64,
    pub(crate) event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) measurement: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

pub(crate) struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub(crate) fn open(path: &Path) -> Result<Self, CasError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| CasError::storage(path.display(), e))?;
        Ok(Self { path: path.to_owned(), file: Mutex::new(file) })
    }

    pub(crate) fn record(&self, event: &AuditEvent<'_>) -> Result<(), CasError> {
        let mut line = serde_json::to_vec(event).map_err(|e| CasError::Internal(e.to_string()))?;
        line.push(b'\n');
        let mut file =
            self.file.lock().map_err(|_| CasError::Internal("audit lock poisoned".into()))?;
        file.write_all(&line).map_err(|e| CasError::storage(self.path.display(), e))?;
        file.sync_data().map_err(|e| CasError::storage(self.path.display(), e))
    }
}
