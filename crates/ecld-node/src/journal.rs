//! The node's journal: append-only JSON lines in the data directory, each line fsynced before
//! the action it announces, so that a `kill -9` at any point resumes correctly.
//!
//! Files in the data directory:
//! - `journal.jsonl`: one [`Entry`] per line;
//! - `results/<task>.bin`: result ciphertexts, written atomically (temp file, fsync, rename)
//!   before the [`Step::Proven`] entry that refers to them.
//!
//! A torn last line (the process died mid-write) is dropped on open; any other malformed line
//! is an error, because silently skipping it could forget a task. On open the journal is
//! compacted: finished tasks are dropped and a fresh file replaces the old one atomically.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use alloy::primitives::B256;
use ecld_types::{OfferId, TaskId};
use serde::{Deserialize, Serialize};

use crate::{
    chain::TaskInfo,
    task::{Phase, Step, TransitionError, transition},
};

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error(
        "journal I/O on {path} failed: {source}; check the data directory's disk and permissions"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line in the middle of the journal is not a journal entry.
    #[error(
        "journal {path} line {line} is corrupt ({source}); restore the file from a backup or \
         inspect it by hand: refusing to start rather than forget a task"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// Parse error.
        source: serde_json::Error,
    },
    /// An entry does not follow from the state before it.
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// Offer number `index` of the config, with this content hash, is on chain as `offer`.
    Offer {
        /// Position in the config's `[[offers]]`.
        index: usize,
        /// keccak256 of the offer's canonical JSON, to notice a changed config.
        spec_hash: B256,
        /// On-chain id.
        offer: OfferId,
    },
    /// All chain events up to and including this block have been handled.
    Cursor {
        /// Block number.
        block: u64,
        /// Its hash, to notice a reorg or a restarted chain.
        hash: B256,
    },
    /// What the chain says about a task, written before its first step.
    Info {
        /// The task as submitted.
        info: TaskInfo,
    },
    /// A task moved on.
    Task {
        /// Task.
        task: TaskId,
        /// What happened.
        #[serde(flatten)]
        step: Step,
    },
}

/// What the journal knows, replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Offers by config index: (spec hash, on-chain id).
    pub offers: BTreeMap<usize, (B256, OfferId)>,
    /// Last handled block and its hash.
    pub cursor: Option<(u64, B256)>,
    /// Every task this node has touched (finished ones only until the next compaction).
    pub tasks: BTreeMap<TaskId, Phase>,
    /// The submitted fields of the tasks in `tasks`.
    pub infos: BTreeMap<TaskId, TaskInfo>,
}

impl State {
    fn apply(&mut self, entry: Entry) -> Result<(), TransitionError> {
        match entry {
            Entry::Offer { index, spec_hash, offer } => {
                self.offers.insert(index, (spec_hash, offer));
            }
            Entry::Cursor { block, hash } => self.cursor = Some((block, hash)),
            Entry::Info { info } => {
                self.infos.insert(info.id, info);
            }
            Entry::Task { task, step } => {
                let next = transition(task, self.tasks.get(&task), step)?;
                self.tasks.insert(task, next);
            }
        }
        Ok(())
    }

    /// Tasks that still hold a slot of this node.
    pub fn active(&self) -> impl Iterator<Item = (TaskId, &Phase)> {
        self.tasks.iter().filter(|(_, p)| p.is_active()).map(|(t, p)| (*t, p))
    }

    /// Entries that rebuild this state (finished tasks left out).
    fn snapshot(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .offers
            .iter()
            .map(|(index, (spec_hash, offer))| Entry::Offer {
                index: *index,
                spec_hash: *spec_hash,
                offer: *offer,
            })
            .collect();
        if let Some((block, hash)) = self.cursor {
            out.push(Entry::Cursor { block, hash });
        }
        for (task, phase) in self.active() {
            if let Some(info) = self.infos.get(&task) {
                out.push(Entry::Info { info: info.clone() });
            }
            out.extend(steps_to(phase).into_iter().map(|step| Entry::Task { task, step }));
        }
        out
    }
}

/// The steps that lead from nothing to `phase`.
fn steps_to(phase: &Phase) -> Vec<Step> {
    match phase.clone() {
        Phase::Claiming { offer } => vec![Step::Claiming { offer }],
        Phase::Claimed { offer } => vec![Step::Claimed { offer }],
        Phase::Proven { offer, outcome } => vec![Step::Claimed { offer }, Step::Proven { outcome }],
        Phase::Uploaded { offer, outcome, cid } => {
            vec![Step::Claimed { offer }, Step::Proven { outcome }, Step::Uploaded { cid }]
        }
        Phase::Submitted { offer, outcome, cid, tx } => vec![
            Step::Claimed { offer },
            Step::Proven { outcome },
            Step::Uploaded { cid },
            Step::Submitted { tx },
        ],
        Phase::Releasing { offer, reason } => {
            vec![Step::Claimed { offer }, Step::Releasing { reason }]
        }
        Phase::Done { .. } => Vec::new(),
    }
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    state: State,
}

impl Journal {
    /// Opens (or creates) the journal in `data_dir`, replays it and compacts it.
    pub fn open(data_dir: &Path) -> Result<Self, JournalError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir.join("results")).map_err(io(data_dir))?;
        let path = data_dir.join("journal.jsonl");
        let mut state = State::default();
        if path.exists() {
            let file = File::open(&path).map_err(io(&path))?;
            let lines: Vec<String> =
                BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io(&path))?;
            let last = lines.len();
            for (i, line) in lines.iter().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Entry>(line) {
                    Ok(entry) => state.apply(entry)?,
                    // The process died while writing the last line: that action never
                    // happened (each line is fsynced before the action it announces).
                    Err(_) if i + 1 == last => {
                        tracing::warn!(target: "ecld_node", line = i + 1, "dropping torn last journal line");
                    }
                    Err(source) => return Err(JournalError::Corrupt { path, line: i + 1, source }),
                }
            }
        }
        // Compact: write the live state to a new file and rename it over the old one.
        let tmp = data_dir.join("journal.jsonl.tmp");
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            for entry in state.snapshot() {
                write_line(&mut f, &entry).map_err(io(&tmp))?;
            }
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(data_dir).map_err(io(data_dir))?;
        let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        // Replay the compacted file so that `state` is exactly what a later open will see.
        let mut compacted = State::default();
        for entry in state.snapshot() {
            compacted.apply(entry)?;
        }
        Ok(Self { dir: data_dir.to_owned(), file, state: compacted })
    }

    /// The replayed state.
    pub const fn state(&self) -> &State {
        &self.state
    }

    /// Appends `entry`, fsyncs, then applies it to the state. An entry that does not follow
    /// from the state is refused before anything is written.
    pub fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        if let Entry::Task { task, step } = entry {
            transition(*task, self.state.tasks.get(task), step.clone())?;
        }
        let path = self.dir.join("journal.jsonl");
        write_line(&mut self.file, entry)
            .map_err(|source| JournalError::Io { path: path.clone(), source })?;
        self.file.sync_data().map_err(|source| JournalError::Io { path, source })?;
        self.state.apply(entry.clone())?;
        Ok(())
    }

    /// Records a task step.
    pub fn step(&mut self, task: TaskId, step: Step) -> Result<(), JournalError> {
        self.append(&Entry::Task { task, step })
    }

    /// Where the result ciphertext of `task` lives.
    pub fn result_path(&self, task: TaskId) -> PathBuf {
        self.dir.join("results").join(format!("{task}.bin"))
    }

    /// Writes the result ciphertext of `task` atomically (before its `Proven` step).
    pub fn write_result(&self, task: TaskId, bytes: &[u8]) -> Result<(), JournalError> {
        let path = self.result_path(task);
        write_atomic(&path, bytes).map_err(|source| JournalError::Io { path, source })
    }

    /// Reads the result ciphertext of `task`.
    pub fn read_result(&self, task: TaskId) -> Result<Vec<u8>, JournalError> {
        let path = self.result_path(task);
        std::fs::read(&path).map_err(|source| JournalError::Io { path, source })
    }

    /// Deletes the result file of a task that is done (best effort).
    pub fn forget_result(&self, task: TaskId) {
        let _ = std::fs::remove_file(self.result_path(task));
    }
}

fn write_line(f: &mut File, entry: &Entry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Bytes;
    use ecld_types::StatusCode;

    use super::*;
    use crate::task::{End, Outcome};

    fn ids() -> (TaskId, OfferId) {
        (TaskId::new(9).unwrap(), OfferId::new(2).unwrap())
    }

    fn outcome() -> Outcome {
        Outcome {
            status: StatusCode::Success,
            result_hash: B256::repeat_byte(3),
            runtime_ms: 10,
            code_hash: B256::ZERO,
            signature: Bytes::from(vec![1u8; 65]),
            result_cid: "bafkreiresult".into(),
        }
    }

    #[test]
    fn replays_after_reopen_and_drops_finished_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let (task, offer) = ids();
        let other = TaskId::new(10).unwrap();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.append(&Entry::Offer { index: 0, spec_hash: B256::ZERO, offer }).unwrap();
            j.append(&Entry::Cursor { block: 42, hash: B256::repeat_byte(4) }).unwrap();
            j.step(task, Step::Claiming { offer }).unwrap();
            j.step(task, Step::Claimed { offer }).unwrap();
            j.write_result(task, b"cipher").unwrap();
            j.step(task, Step::Proven { outcome: outcome() }).unwrap();
            j.step(other, Step::Claiming { offer }).unwrap();
            j.step(other, Step::Done { end: End::Lost }).unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.state().cursor, Some((42, B256::repeat_byte(4))));
        assert_eq!(j.state().offers[&0].1, offer);
        assert_eq!(j.state().tasks[&task], Phase::Proven { offer, outcome: outcome() });
        assert!(!j.state().tasks.contains_key(&other), "finished task kept after compaction");
        assert_eq!(j.read_result(task).unwrap(), b"cipher");
    }

    #[test]
    fn torn_last_line_is_dropped_but_corrupt_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (task, offer) = ids();
        {
            let mut j = Journal::open(dir.path()).unwrap();
            j.step(task, Step::Claiming { offer }).unwrap();
        }
        let path = dir.path().join("journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"kind\":\"task\",\"ta").unwrap();
        drop(f);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.state().tasks[&task], Phase::Claiming { offer });
        drop(j);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { line: 1, .. }), "{err}");
    }

    #[test]
    fn an_impossible_step_is_refused_and_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (task, _) = ids();
        let mut j = Journal::open(dir.path()).unwrap();
        assert!(j.step(task, Step::Uploaded { cid: "x".into() }).is_err());
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.state().tasks.is_empty());
    }

    proptest::proptest! {
        /// Whatever prefix of a valid run is on disk, reopening yields the state after it.
        #[test]
        fn any_prefix_replays_to_the_same_state(cut in 0usize..7) {
            let dir = tempfile::tempdir().unwrap();
            let (task, offer) = ids();
            let steps = [
                Step::Claiming { offer },
                Step::Claimed { offer },
                Step::Proven { outcome: outcome() },
                Step::Uploaded { cid: "bafy".into() },
                Step::Submitted { tx: B256::repeat_byte(9) },
                Step::Done { end: End::Settled },
            ];
            let mut expected = None;
            {
                let mut j = Journal::open(dir.path()).unwrap();
                for s in steps.iter().take(cut) {
                    j.step(task, s.clone()).unwrap();
                    expected = j.state().tasks.get(&task).cloned();
                }
            }
            let j = Journal::open(dir.path()).unwrap();
            let got = j.state().tasks.get(&task).cloned();
            match expected {
                Some(Phase::Done { .. }) | None => proptest::prop_assert!(got.is_none()),
                e => proptest::prop_assert_eq!(got, e),
            }
        }
    }
}
