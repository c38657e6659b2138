//! The on-disk block store: one file per block, recursive pins, garbage collection, quota.
//!
//! Crash safety (kill -9 or power loss at any moment):
//! - a block is written to `tmp/`, fsynced, then renamed into `blocks/`: a block file is either
//!   complete or absent;
//! - a file's root is pinned only after every block of it is durable (block data fsynced, the
//!   directories that received renames fsynced), and the pin itself is written the same way:
//!   a pinned file is complete, an interrupted add leaves only unpinned blocks;
//! - unpinned blocks are removed by [`BlockStore::gc`]; leftovers in `tmp/` are removed at
//!   start-up and by gc.
//!
//! Blocks are keyed by their sha2-256 digest (as Kubo keys by multihash), so one block serves
//! every CID of the same bytes. All methods block on file I/O: call them from
//! `spawn_blocking`.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cid::Cid;
use cid::multihash::Multihash;

use crate::StoreError;
use crate::unixfs::{self, Block, RAW, SHA2_256};

/// A block store in a data directory.
#[derive(Debug)]
pub struct BlockStore {
    blocks: PathBuf,
    pins: PathBuf,
    tmp: PathBuf,
    used: AtomicU64,
    quota: Option<u64>,
    tmp_seq: AtomicU64,
}

/// Directories that received new blocks during one add; fsynced before the pin.
#[derive(Debug, Default)]
pub struct Touched(HashSet<PathBuf>);

impl Touched {
    /// Adds the directories of `other`.
    pub fn merge(&mut self, other: Touched) {
        self.0.extend(other.0);
    }
}

impl BlockStore {
    /// Opens (creating if needed) the store in `dir`, removes leftover temporary files and
    /// counts the bytes stored.
    pub fn open(dir: &Path, quota: Option<u64>) -> Result<Self, StoreError> {
        let data_dir_err = |reason: String| StoreError::DataDir { path: dir.to_owned(), reason };
        let store = Self {
            blocks: dir.join("blocks"),
            pins: dir.join("pins"),
            tmp: dir.join("tmp"),
            used: AtomicU64::new(0),
            quota,
            tmp_seq: AtomicU64::new(0),
        };
        for d in [&store.blocks, &store.pins, &store.tmp] {
            fs::create_dir_all(d)
                .map_err(|e| data_dir_err(format!("create {}: {e}", d.display())))?;
        }
        for i in 0..=255u8 {
            let d = store.blocks.join(format!("{i:02x}"));
            fs::create_dir_all(&d)
                .map_err(|e| data_dir_err(format!("create {}: {e}", d.display())))?;
        }
        store.clean_tmp()?;
        let used = store.scan(|_, _| {})?;
        store.used.store(used, Ordering::SeqCst);
        Ok(store)
    }

    /// Bytes of blocks stored.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// The configured quota, if any.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    fn path(&self, cid: &Cid) -> Result<PathBuf, StoreError> {
        let mh = cid.hash();
        if mh.code() != SHA2_256 || mh.size() != 32 {
            return Err(StoreError::Unsupported {
                cid: *cid,
                reason: format!(
                    "hash function 0x{:x}; this store keeps sha2-256 blocks only",
                    mh.code()
                ),
            });
        }
        let hex = hex_digest(mh.digest());
        Ok(self.blocks.join(&hex[..2]).join(hex))
    }

    /// Stores a block (verifying its hash). Returns whether it was new.
    pub fn put(&self, block: &Block, touched: &mut Touched) -> Result<bool, StoreError> {
        if unixfs::verify(&block.cid, &block.data) != Some(true) {
            return Err(StoreError::BadRequest(format!(
                "block data does not hash to {}",
                block.cid
            )));
        }
        let path = self.path(&block.cid)?;
        if path.exists() {
            return Ok(false);
        }
        let len = block.data.len() as u64;
        self.reserve(len)?;
        let result = self.write_atomic(&path, &block.data);
        if result.is_err() {
            self.used.fetch_sub(len, Ordering::SeqCst);
        }
        result?;
        if let Some(parent) = path.parent() {
            touched.0.insert(parent.to_owned());
        }
        Ok(true)
    }

    fn reserve(&self, len: u64) -> Result<(), StoreError> {
        let Some(quota) = self.quota else {
            self.used.fetch_add(len, Ordering::SeqCst);
            return Ok(());
        };
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(len).filter(|total| *total <= quota)
            })
            .map(drop)
            .map_err(|used| StoreError::QuotaExceeded { used, quota, needed: len })
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}-{seq}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_data()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(format!("write block {}", path.display()), e)
        })
    }

    /// Makes the renames of an add durable (call before pinning its root).
    pub fn sync_dirs(&self, touched: &Touched) -> Result<(), StoreError> {
        for dir in &touched.0 {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// The block's bytes, or `None` when absent.
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(cid)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("read block {}", path.display()), e)),
        }
    }

    /// The block's size, or `None` when absent.
    pub fn size(&self, cid: &Cid) -> Result<Option<u64>, StoreError> {
        let path = self.path(cid)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("stat block {}", path.display()), e)),
        }
    }

    /// Visits every block of the DAG under `root` (depth first), failing with `NotFound` on
    /// the first missing one.
    fn walk(&self, root: &Cid, mut visit: impl FnMut(&Cid)) -> Result<(), StoreError> {
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            visit(&cid);
            if cid.codec() == RAW {
                if self.size(&cid)?.is_none() {
                    return Err(StoreError::NotFound { cid });
                }
                continue;
            }
            let block = self.get(&cid)?.ok_or(StoreError::NotFound { cid })?;
            let links = unixfs::child_links(&cid, &block)
                .map_err(|reason| StoreError::Malformed { cid, reason })?;
            stack.extend(links.into_iter().rev());
        }
        Ok(())
    }

    /// Pins `root` recursively: checks that every block is present, then records the pin
    /// durably.
    pub fn pin(&self, root: &Cid) -> Result<(), StoreError> {
        self.walk(root, |_| {})?;
        let path = self.pins.join(root.to_string());
        self.write_atomic(&path, b"recursive")?;
        sync_dir(&self.pins)
    }

    /// Removes the pin of `root`.
    pub fn unpin(&self, root: &Cid) -> Result<(), StoreError> {
        let path = self.pins.join(root.to_string());
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.pins),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(StoreError::BadRequest(format!("{root} is not pinned")))
            }
            Err(e) => Err(StoreError::io(format!("remove pin {}", path.display()), e)),
        }
    }

    /// Whether `root` is pinned.
    pub fn is_pinned(&self, root: &Cid) -> bool {
        self.pins.join(root.to_string()).exists()
    }

    /// All pinned roots.
    pub fn pins(&self) -> Result<Vec<Cid>, StoreError> {
        let entries = fs::read_dir(&self.pins)
            .map_err(|e| StoreError::io(format!("list {}", self.pins.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list pins", e))?;
            if let Some(cid) = entry.file_name().to_str().and_then(|n| Cid::try_from(n).ok()) {
                out.push(cid);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes every block not reachable from a pin, and temporary files. Returns the removed
    /// blocks (as raw CIDs: blocks are keyed by hash). The caller must hold the gc lock
    /// exclusively so that no add is in progress.
    pub fn gc(&self) -> Result<Vec<Cid>, StoreError> {
        self.clean_tmp()?;
        let mut live: HashSet<Vec<u8>> = HashSet::new();
        for pin in self.pins()? {
            let walked = self.walk(&pin, |cid| {
                live.insert(cid.hash().digest().to_vec());
            });
            if let Err(e) = walked {
                tracing::warn!(target: "ecld_store", %pin, "pinned DAG is incomplete: {e}");
            }
        }
        let mut removed = Vec::new();
        let mut dead = Vec::new();
        let used = self.scan(|path, digest| {
            if !live.contains(digest) {
                dead.push((path.to_owned(), digest.to_vec()));
            }
        })?;
        let mut freed = 0;
        for (path, digest) in dead {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path)
                .map_err(|e| StoreError::io(format!("remove {}", path.display()), e))?;
            freed += len;
            if let Ok(mh) = Multihash::wrap(SHA2_256, &digest) {
                removed.push(Cid::new_v1(RAW, mh));
            }
        }
        self.used.store(used.saturating_sub(freed), Ordering::SeqCst);
        Ok(removed)
    }

    /// Calls `f(path, digest)` for every block file; returns the total size.
    fn scan(&self, mut f: impl FnMut(&Path, &[u8])) -> Result<u64, StoreError> {
        let mut total = 0;
        let io = |p: &Path, e| StoreError::io(format!("scan {}", p.display()), e);
        for i in 0..=255u8 {
            let dir = self.blocks.join(format!("{i:02x}"));
            for entry in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                let entry = entry.map_err(|e| io(&dir, e))?;
                let Some(digest) = entry.file_name().to_str().and_then(parse_hex) else {
                    continue;
                };
                total += entry.metadata().map_err(|e| io(&entry.path(), e))?.len();
                f(&entry.path(), &digest);
            }
        }
        Ok(total)
    }

    fn clean_tmp(&self) -> Result<(), StoreError> {
        let io = |e| StoreError::io(format!("clean {}", self.tmp.display()), e);
        for entry in fs::read_dir(&self.tmp).map_err(io)? {
            let entry = entry.map_err(io)?;
            // A concurrent writer's temp file may vanish meanwhile: that is fine.
            let _ = fs::remove_file(entry.path());
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("sync directory {}", dir.display()), e))
}

fn hex_digest(d: &[u8]) -> String {
    use std::fmt::Write as _;
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..32).map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::{DagBuilder, cid_of};

    fn add(store: &BlockStore, data: &[u8]) -> Cid {
        let mut b = DagBuilder::new();
        let mut blocks = Vec::new();
        b.write(data, &mut blocks);
        let root = b.finish(&mut blocks);
        let mut touched = Touched::default();
        for block in &blocks {
            store.put(block, &mut touched).unwrap();
        }
        root.cid
    }

    #[test]
    fn gc_keeps_pinned_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), None).unwrap();
        let kept = add(&store, &vec![7u8; 600_000]);
        store.pin(&kept).unwrap();
        let dropped = add(&store, &vec![9u8; 300_000]);
        let removed = store.gc().unwrap();
        assert_eq!(removed.len(), 3, "the two distinct leaves and the root of the unpinned file");
        assert!(store.get(&dropped).unwrap().is_none());
        assert!(store.get(&kept).unwrap().is_some());
        store.pin(&kept).unwrap();
        store.unpin(&kept).unwrap();
        store.gc().unwrap();
        assert_eq!(store.used(), 0);
        assert!(store.unpin(&kept).is_err());
    }

    #[test]
    fn quota_is_enforced_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), Some(1000)).unwrap();
        let data = vec![1u8; 1001];
        let block = Block { cid: cid_of(RAW, &data), data: data.into() };
        let err = store.put(&block, &mut Touched::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::QuotaExceeded { used: 0, quota: 1000, needed: 1001 }),
            "{err}"
        );
        assert!(err.to_string().contains("raise the quota"));
    }

    #[test]
    fn pin_of_an_incomplete_dag_fails_with_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), None).unwrap();
        let root = add(&store, &vec![3u8; 600_000]);
        let leaf = cid_of(RAW, &[3u8; unixfs::CHUNK_SIZE]);
        fs::remove_file(store.path(&leaf).unwrap()).unwrap();
        assert!(matches!(store.pin(&root), Err(StoreError::NotFound { cid }) if cid == leaf));
        assert!(!store.is_pinned(&root));
    }

    #[test]
    fn reopening_counts_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::open(dir.path(), None).unwrap();
        add(&store, b"hello");
        fs::write(dir.path().join("tmp/leftover"), b"partial").unwrap();
        let reopened = BlockStore::open(dir.path(), None).unwrap();
        assert_eq!(reopened.used(), 5);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
