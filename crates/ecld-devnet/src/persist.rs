//! The chain journal: an append-only file of mined blocks (raw signed transactions plus the
//! block's timestamp), fsync'd before the RPC answers, replayed on start.
//!
//! Frame: `len: u32 LE ‖ check: first 4 bytes of keccak256(payload) ‖ payload (JSON)`. A torn
//! or corrupt frame at the end (a crash during a write) is cut off on open; the transaction in
//! it was never acknowledged.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
};

use alloy::primitives::{Bytes, U256, keccak256};
use serde::{Deserialize, Serialize};

use crate::DevnetError;

/// File name of the journal inside the state directory.
pub(crate) const JOURNAL_FILE: &str = "chain.journal";

/// Largest frame accepted on replay; anything bigger is corruption.
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Record {
    /// First record: the parameters the chain was created with.
    Genesis {
        chain_id: u64,
        accounts: u32,
        balance: U256,
        gas_limit: u64,
        initial_base_fee: u64,
        timestamp: u64,
    },
    /// A mined block.
    Block {
        number: u64,
        timestamp: u64,
        time_offset: i64,
        /// EIP-2718 encodings of the transactions, in order.
        txs: Vec<Bytes>,
    },
    /// `evm_revert`: every block after `to` is gone.
    Revert { to: u64 },
}

/// The open journal, positioned at its end.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns it with the records it holds.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<Record>), DevnetError> {
        let io = |source| DevnetError::State { path: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(JOURNAL_FILE);
        let io = |source| DevnetError::State { path: path.clone(), source };
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, good) = decode_all(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                target: "ecld_devnet",
                path = %path.display(),
                cut = bytes.len() - good,
                "journal ends in a torn record (crash during a write); cutting it off"
            );
            file.set_len(good as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok((Self { file, path }, records))
    }

    /// Appends `record` and waits until it is on disk.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), DevnetError> {
        let frame = encode(record);
        let io = |source| DevnetError::State { path: self.path.clone(), source };
        self.file.write_all(&frame).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// Encodes one frame.
pub(crate) fn encode(record: &Record) -> Vec<u8> {
    // Serialising a plain enum of numbers and byte strings cannot fail.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&keccak256(&payload)[..4]);
    frame.extend_from_slice(&payload);
    frame
}

/// Decodes frames until the first bad one; returns them and the length of the good prefix.
pub(crate) fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + 8) {
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[..4]);
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else { break };
        if keccak256(payload)[..4] != head[4..8] {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(payload) else { break };
        records.push(record);
        at += 8 + len;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u64) -> Record {
        Record::Block {
            number: n,
            timestamp: 1000 + n,
            time_offset: -3,
            txs: vec![Bytes::from(vec![2, 1, n as u8])],
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, recs) = Journal::open(dir.path()).unwrap();
            assert!(recs.is_empty());
            j.append(&block(1)).unwrap();
            j.append(&Record::Revert { to: 0 }).unwrap();
            j.append(&block(1)).unwrap();
        }
        // A crash in the middle of the next write leaves half a frame.
        let path = dir.path().join(JOURNAL_FILE);
        let half = &encode(&block(2))[..7];
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(half).unwrap();
        drop(f);
        let (mut j, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs, vec![block(1), Record::Revert { to: 0 }, block(1)]);
        j.append(&block(2)).unwrap();
        drop(j);
        let (_, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[3], block(2));
    }

    #[test]
    fn a_flipped_byte_ends_the_journal_there() {
        let mut bytes = encode(&block(1));
        let second = encode(&block(2));
        bytes.extend_from_slice(&second);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        let (recs, good) = decode_all(&bytes);
        assert_eq!(recs, vec![block(1)]);
        assert_eq!(good, bytes.len() - second.len());
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let (_, good) = decode_all(&bytes);
            proptest::prop_assert!(good <= bytes.len());
        }
    }
}
