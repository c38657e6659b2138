//! Persistent CAS state: sessions (secrets sealed to the master key), the nonce journal.
//!
//! Layout of the state directory:
//! - `master.age-key`: the CAS master X25519 identity (0600); session secrets are sealed to it.
//! - `sessions/<sha256(name)>.json`: one file per session, written atomically (temp file,
//!   fsync, rename, fsync of the directory).
//! - `nonces.jsonl`: append-only journal of issued and used nonces (fsync per line), compacted
//!   at start-up (expired entries dropped).
//! - `audit.jsonl`: see [`crate::audit`].

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use alloy_primitives::Address;
use ecld_crypto::AgeIdentity;
use ecld_tee::Policy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{CasError, api::SessionInfo};

/// A session as stored: public halves, policy, and the secrets sealed to the master key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) name: String,
    pub(crate) policy: Policy,
    pub(crate) enclave_recipient: String,
    pub(crate) enclave_signer: Address,
    pub(crate) created_at: u64,
    /// age ciphertext of the secrets bundle, to the master key.
    #[serde(with = "ecld_tee::hex_vec")]
    pub(crate) sealed: Vec<u8>,
}

impl SessionRecord {
    pub(crate) fn info(&self, cas_identity: Address) -> SessionInfo {
        SessionInfo {
            name: self.name.clone(),
            policy: self.policy.clone(),
            enclave_recipient: self.enclave_recipient.clone(),
            enclave_signer: self.enclave_signer,
            cas_identity,
            created_at: self.created_at,
            platforms: self.policy.platforms(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum NonceOp {
    Issue { nonce: String, session: String, expires_at: u64 },
    Use { nonce: String },
}

#[derive(Debug, Clone)]
pub(crate) struct NonceEntry {
    pub(crate) session: String,
    pub(crate) expires_at: u64,
    pub(crate) used: bool,
}

/// The state directory.
pub(crate) struct Store {
    dir: PathBuf,
    journal: File,
}

fn io(what: &Path) -> impl Fn(std::io::Error) -> CasError + '_ {
    move |e| CasError::storage(what.display(), e)
}

/// Writes `bytes` to `path` atomically and durably.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CasError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

impl Store {
    /// Opens (creating) the state directory; returns the store, the master identity, the
    /// sessions and the live nonces.
    #[allow(clippy::type_complexity)]
    pub(crate) fn open(
        dir: &Path,
        now: u64,
    ) -> Result<
        (Self, AgeIdentity, HashMap<String, SessionRecord>, HashMap<String, NonceEntry>),
        CasError,
    > {
        fs::create_dir_all(dir.join("sessions")).map_err(io(dir))?;
        let master_path = dir.join("master.age-key");
        let master = if master_path.exists() {
            AgeIdentity::load(&master_path)
                .map_err(|e| CasError::storage(master_path.display(), e))?
        } else {
            let id = AgeIdentity::generate();
            id.save(&master_path).map_err(|e| CasError::storage(master_path.display(), e))?;
            id
        };

        let mut sessions = HashMap::new();
        let sessions_dir = dir.join("sessions");
        for entry in fs::read_dir(&sessions_dir).map_err(io(&sessions_dir))? {
            let path = entry.map_err(io(&sessions_dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue; // a temp file left by a crash before its rename
            }
            let bytes = fs::read(&path).map_err(io(&path))?;
            let record: SessionRecord =
                serde_json::from_slice(&bytes).map_err(|e| CasError::storage(path.display(), e))?;
            sessions.insert(record.name.clone(), record);
        }

        let journal_path = dir.join("nonces.jsonl");
        let mut nonces: HashMap<String, NonceEntry> = HashMap::new();
        if journal_path.exists() {
            let file = File::open(&journal_path).map_err(io(&journal_path))?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(io(&journal_path))?;
                // A torn last line (crash mid-write) was never acknowledged: skip it.
                let Ok(op) = serde_json::from_str::<NonceOp>(&line) else { continue };
                match op {
                    NonceOp::Issue { nonce, session, expires_at } => {
                        nonces.entry(nonce).or_insert(NonceEntry {
                            session,
                            expires_at,
                            used: false,
                        });
                    }
                    NonceOp::Use { nonce } => {
                        if let Some(e) = nonces.get_mut(&nonce) {
                            e.used = true;
                        }
                    }
                }
            }
        }
        nonces.retain(|_, e| e.expires_at > now);
        let mut compact = Vec::new();
        for (nonce, e) in &nonces {
            let issue = NonceOp::Issue {
                nonce: nonce.clone(),
                session: e.session.clone(),
                expires_at: e.expires_at,
            };
            compact
                .extend(serde_json::to_vec(&issue).map_err(|e| CasError::Internal(e.to_string()))?);
            compact.push(b'\n');
            if e.used {
                let used = NonceOp::Use { nonce: nonce.clone() };
                compact.extend(
                    serde_json::to_vec(&used).map_err(|e| CasError::Internal(e.to_string()))?,
                );
                compact.push(b'\n');
            }
        }
        write_atomic(&journal_path, &compact)?;
        let journal =
            OpenOptions::new().append(true).open(&journal_path).map_err(io(&journal_path))?;
        Ok((Self { dir: dir.to_owned(), journal }, master, sessions, nonces))
    }

    fn session_path(&self, name: &str) -> PathBuf {
        self.dir.join("sessions").join(format!("{}.json", hex::encode(Sha256::digest(name))))
    }

    pub(crate) fn save_session(&self, record: &SessionRecord) -> Result<(), CasError> {
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|e| CasError::Internal(e.to_string()))?;
        write_atomic(&self.session_path(&record.name), &bytes)
    }

    fn append(&mut self, op: &NonceOp) -> Result<(), CasError> {
        let mut line = serde_json::to_vec(op).map_err(|e| CasError::Internal(e.to_string()))?;
        line.push(b'\n');
        let path = self.dir.join("nonces.jsonl");
        self.journal.write_all(&line).map_err(io(&path))?;
        self.journal.sync_data().map_err(io(&path))
    }

    pub(crate) fn record_issue(
        &mut self,
        nonce: &str,
        session: &str,
        expires_at: u64,
    ) -> Result<(), CasError> {
        self.append(&NonceOp::Issue {
            nonce: nonce.to_owned(),
            session: session.to_owned(),
            expires_at,
        })
    }

    pub(crate) fn record_use(&mut self, nonce: &str) -> Result<(), CasError> {
        self.append(&NonceOp::Use { nonce: nonce.to_owned() })
    }

    /// Keys files other than the session map: the default identity key location.
    pub(crate) fn default_identity_path(dir: &Path) -> PathBuf {
        dir.join("identity.key")
    }
}
