//! The life of one task on this node, as a state machine the journal replays.
//!
//! ```text
//! Claiming ─▶ Claimed ─▶ Proven ─▶ Uploaded ─▶ Submitted ─▶ Done(Settled)
//!    │           │                                  │
//!    └──▶ Done(Lost)  └──▶ Releasing ─▶ Done(Released)   └──▶ Done(Expired)
//! ```
//!
//! `Proven` holds the enclave's outcome (result ciphertext on disk + signed proof): once it is
//! journaled the node never runs the task again, it only re-uploads the same bytes and
//! re-submits the same proof.

use alloy::primitives::{B256, Bytes};
use ecld_types::{OfferId, StatusCode, TaskId};
use serde::{Deserialize, Serialize};

/// What the enclave produced for a task, enough to upload and submit it again after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Status code signed in the proof.
    pub status: StatusCode,
    /// keccak256 of the result ciphertext (the file `results/<task>.bin` in the data dir).
    pub result_hash: B256,
    /// Run time signed in the proof.
    pub runtime_ms: u64,
    /// keccak256 of the user-supplied code that ran (zero for none).
    pub code_hash: B256,
    /// The enclave's 65-byte EIP-712 signature.
    pub signature: Bytes,
    /// The CID the enclave signed for the result (empty without a result): the upload must
    /// give exactly this one.
    pub result_cid: String,
}

/// How a task left this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The proof is on chain and the task settled.
    Settled,
    /// Another node claimed it first (or it was no longer claimable).
    Lost,
    /// Handed back with `releaseTask`.
    Released,
    /// It can no longer be settled by this node (deadline passed, reclaimed by requester).
    Expired,
}

/// Where a task stands on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// A claim transaction may be in flight: the chain decides.
    Claiming {
        /// Offer used.
        offer: OfferId,
    },
    /// This node holds the task and has not run it yet.
    Claimed {
        /// Offer used.
        offer: OfferId,
    },
    /// The enclave's outcome is on disk.
    Proven {
        /// Offer used.
        offer: OfferId,
        /// The outcome.
        outcome: Outcome,
    },
    /// The result ciphertext is in the store.
    Uploaded {
        /// Offer used.
        offer: OfferId,
        /// The outcome.
        outcome: Outcome,
        /// Its CID.
        cid: String,
    },
    /// `submitResult` was sent.
    Submitted {
        /// Offer used.
        offer: OfferId,
        /// The outcome.
        outcome: Outcome,
        /// Its CID.
        cid: String,
        /// Transaction hash.
        tx: B256,
    },
    /// A release transaction may be in flight.
    Releasing {
        /// Offer used.
        offer: OfferId,
        /// Why.
        reason: String,
    },
    /// Finished here.
    Done {
        /// How.
        end: End,
    },
}

impl Phase {
    /// Short name for logs and metrics labels.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Claiming { .. } => "claiming",
            Self::Claimed { .. } => "claimed",
            Self::Proven { .. } => "proven",
            Self::Uploaded { .. } => "uploaded",
            Self::Submitted { .. } => "submitted",
            Self::Releasing { .. } => "releasing",
            Self::Done { .. } => "done",
        }
    }

    /// Whether the task still occupies a slot of this node.
    pub const fn is_active(&self) -> bool {
        !matches!(self, Self::Done { .. })
    }

    /// The offer the task was claimed under, while active.
    pub const fn offer(&self) -> Option<OfferId> {
        match self {
            Self::Claiming { offer }
            | Self::Claimed { offer }
            | Self::Proven { offer, .. }
            | Self::Uploaded { offer, .. }
            | Self::Submitted { offer, .. }
            | Self::Releasing { offer, .. } => Some(*offer),
            Self::Done { .. } => None,
        }
    }

    /// The outcome, once proven.
    pub const fn outcome(&self) -> Option<&Outcome> {
        match self {
            Self::Proven { outcome, .. }
            | Self::Uploaded { outcome, .. }
            | Self::Submitted { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// A step recorded in the journal for one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// About to send `claimTask` (or adopting a task the chain matched to us).
    Claiming {
        /// Offer.
        offer: OfferId,
    },
    /// The chain says this node holds the task.
    Claimed {
        /// Offer.
        offer: OfferId,
    },
    /// The enclave's outcome was written to disk.
    Proven {
        /// The outcome.
        outcome: Outcome,
    },
    /// The result is in the store under this CID.
    Uploaded {
        /// CID.
        cid: String,
    },
    /// `submitResult` sent in this transaction.
    Submitted {
        /// Transaction hash.
        tx: B256,
    },
    /// About to send `releaseTask`.
    Releasing {
        /// Why.
        reason: String,
    },
    /// Finished.
    Done {
        /// How.
        end: End,
    },
}

/// A step that does not follow from the current phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: step `{step}` cannot follow phase `{phase}`; the journal is inconsistent")]
pub struct TransitionError {
    /// Task.
    pub task: TaskId,
    /// Phase before.
    pub phase: &'static str,
    /// Step refused.
    pub step: &'static str,
}

impl Step {
    /// Short name.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Claiming { .. } => "claiming",
            Self::Claimed { .. } => "claimed",
            Self::Proven { .. } => "proven",
            Self::Uploaded { .. } => "uploaded",
            Self::Submitted { .. } => "submitted",
            Self::Releasing { .. } => "releasing",
            Self::Done { .. } => "done",
        }
    }
}

/// Applies `step` to `phase` (`None`: the task is new to this node).
pub fn transition(
    task: TaskId,
    phase: Option<&Phase>,
    step: Step,
) -> Result<Phase, TransitionError> {
    let refuse = |p: Option<&Phase>, s: &Step| TransitionError {
        task,
        phase: p.map_or("new", Phase::name),
        step: s.name(),
    };
    let next = match (phase, step) {
        // A task may be adopted again after it ended (a reorg can undo a release or a loss).
        (None | Some(Phase::Done { .. }), Step::Claiming { offer }) => Phase::Claiming { offer },
        (None | Some(Phase::Claiming { .. } | Phase::Done { .. }), Step::Claimed { offer }) => {
            Phase::Claimed { offer }
        }
        (Some(Phase::Claimed { offer } | Phase::Claiming { offer }), Step::Proven { outcome }) => {
            Phase::Proven { offer: *offer, outcome }
        }
        (
            Some(Phase::Proven { offer, outcome } | Phase::Uploaded { offer, outcome, .. }),
            Step::Uploaded { cid },
        ) => Phase::Uploaded { offer: *offer, outcome: outcome.clone(), cid },
        (
            Some(
                Phase::Uploaded { offer, outcome, cid }
                | Phase::Submitted { offer, outcome, cid, .. },
            ),
            Step::Submitted { tx },
        ) => Phase::Submitted { offer: *offer, outcome: outcome.clone(), cid: cid.clone(), tx },
        (
            Some(Phase::Claiming { offer } | Phase::Claimed { offer }),
            Step::Releasing { reason },
        ) => Phase::Releasing { offer: *offer, reason },
        (Some(p), Step::Done { end }) if p.is_active() => Phase::Done { end },
        (p, s) => return Err(refuse(p, &s)),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            status: StatusCode::Success,
            result_hash: B256::repeat_byte(1),
            runtime_ms: 3,
            code_hash: B256::ZERO,
            signature: Bytes::from(vec![7u8; 65]),
            result_cid: "bafkreiresult".into(),
        }
    }

    fn t() -> TaskId {
        TaskId::new(5).unwrap()
    }

    #[test]
    fn happy_path_reaches_settled() {
        let offer = OfferId::new(1).unwrap();
        let mut p = transition(t(), None, Step::Claiming { offer }).unwrap();
        for s in [
            Step::Claimed { offer },
            Step::Proven { outcome: outcome() },
            Step::Uploaded { cid: "bafy".into() },
            Step::Submitted { tx: B256::ZERO },
            Step::Done { end: End::Settled },
        ] {
            p = transition(t(), Some(&p), s).unwrap();
        }
        assert_eq!(p, Phase::Done { end: End::Settled });
    }

    #[test]
    fn a_proven_task_cannot_be_released_or_proven_again() {
        let offer = OfferId::new(1).unwrap();
        let p = Phase::Proven { offer, outcome: outcome() };
        assert!(transition(t(), Some(&p), Step::Releasing { reason: "x".into() }).is_err());
        let err = transition(t(), Some(&p), Step::Proven { outcome: outcome() }).unwrap_err();
        assert_eq!(err.phase, "proven");
    }

    #[test]
    fn done_is_final_unless_reclaimed() {
        let offer = OfferId::new(1).unwrap();
        let p = Phase::Done { end: End::Lost };
        assert!(transition(t(), Some(&p), Step::Done { end: End::Settled }).is_err());
        assert!(transition(t(), Some(&p), Step::Proven { outcome: outcome() }).is_err());
        assert!(transition(t(), Some(&p), Step::Claiming { offer }).is_ok());
    }
}
