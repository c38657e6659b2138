//! Where a task is, the steps of the data flow as the SDK reports them, and how long each
//! took.

use std::{fmt, time::Duration};

use ecld_types::{Address, OfferId, StatusCode};
use serde::{Deserialize, Serialize};

/// The life cycle of a task on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Submitted, waiting for a node to claim it.
    Open,
    /// Claimed by (or directly matched to) a node's offer; running.
    Matched {
        /// The offer it runs under.
        offer: OfferId,
        /// The node that claimed it.
        node: Address,
    },
    /// A proof of execution was accepted and the escrow settled.
    Done {
        /// The status the enclave signed.
        status: StatusCode,
    },
    /// The requester took the price back after the deadline.
    Reclaimed,
}

impl TaskState {
    /// Whether nothing more will happen to the task.
    pub const fn is_final(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Reclaimed)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => write!(f, "open (waiting for a node)"),
            Self::Matched { offer, .. } => write!(f, "running under offer {offer}"),
            Self::Done { status } => write!(f, "done: {status}"),
            Self::Reclaimed => write!(f, "reclaimed by the requester"),
        }
    }
}

/// One step of the data flow, as [`crate::Client::run`] reports it to its progress callback
/// and times it in [`Timings`]. Each step is one kind of work, so a timing says what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// 1. Building the payload and encrypting it to the image key.
    Encrypt,
    /// 2a. Uploading the ciphertext to the store.
    Upload,
    /// 2b. Permit + `submitTask` in one transaction.
    Submit,
    /// 3–8. Waiting for a node to run the task and settle it on chain (the task is polled
    /// until its escrow is settled).
    Execute,
    /// 9a. Reading the proof of execution from the chain: the task's `ResultSubmitted` log.
    Proof,
    /// 9b. Fetching the encrypted result from the store, every block checked against its CID.
    Download,
    /// 9c. Checking the proof: signature by the image's enclave signer, chain and contract,
    /// input hash, the result bytes against the proven hash, the code hash.
    Verify,
    /// 9d. Decrypting the result with the requester's identity.
    Decrypt,
}

impl Step {
    /// Every step in order.
    pub const ALL: [Self; 8] = [
        Self::Encrypt,
        Self::Upload,
        Self::Submit,
        Self::Execute,
        Self::Proof,
        Self::Download,
        Self::Verify,
        Self::Decrypt,
    ];

    /// A short label for progress displays and benchmark tables.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Upload => "upload",
            Self::Submit => "submit",
            Self::Execute => "execute",
            Self::Proof => "proof",
            Self::Download => "download",
            Self::Verify => "verify",
            Self::Decrypt => "decrypt",
        }
    }
}

/// How long each step took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Per step, in the order of [`Step::ALL`].
    pub steps: [Duration; Step::ALL.len()],
}

impl Timings {
    /// Records the duration of a step.
    pub fn set(&mut self, step: Step, took: Duration) {
        self.steps[step as usize] = took;
    }

    /// The duration of a step.
    pub const fn get(&self, step: Step) -> Duration {
        self.steps[step as usize]
    }

    /// The sum of all steps.
    pub fn total(&self) -> Duration {
        self.steps.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_done_and_reclaimed_are_final() {
        assert!(!TaskState::Open.is_final());
        assert!(TaskState::Done { status: StatusCode::Timeout }.is_final());
        assert!(TaskState::Reclaimed.is_final());
    }

    #[test]
    fn timings_sum_steps() {
        let mut t = Timings::default();
        t.set(Step::Upload, Duration::from_millis(3));
        t.set(Step::Decrypt, Duration::from_millis(4));
        assert_eq!(t.get(Step::Upload), Duration::from_millis(3));
        assert_eq!(t.total(), Duration::from_millis(7));
    }

    #[test]
    fn steps_are_in_order_with_unique_labels() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(*step as usize, i, "{step:?}");
        }
        let labels: Vec<&str> = Step::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(
            labels,
            ["encrypt", "upload", "submit", "execute", "proof", "download", "verify", "decrypt"]
        );
    }
}
