//! Status codes of execution.
//!
//! The enclave signs one of these codes in every proof; the Marketplace contract settles
//! the task by the code's [`Fault`] class. The numbers are protocol: never reuse or
//! renumber one. Codes 0–15 are the program's or requester's responsibility (the node is
//! paid); codes 16 and up are the system's (the requester is refunded at once).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who caused the outcome of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Nobody: the program ran and succeeded.
    None,
    /// The requester's program failed on its own terms.
    Program,
    /// The requester sent something that cannot run (bad payload or code).
    Requester,
    /// The node, store, image or enclave failed; not the requester's doing.
    System,
}

/// What the contract does with the escrowed price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    /// The node that ran the task is paid the price.
    PayNode,
    /// The requester gets the whole price back.
    RefundRequester,
}

/// Why a status code number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status code {0} is not defined by the ecld protocol (known: 0-6 and 16-19)")]
pub struct ParseStatusError(pub u16);

/// The status code of an execution, as signed in the proof and stored on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
#[repr(u16)]
pub enum StatusCode {
    /// 0: the program ran to completion and exited 0. The node is paid.
    Success = 0,
    /// 1: the program exited non-zero or trapped. The node is paid.
    ProgramError = 1,
    /// 2: the program used up its fuel: the budget of the task's own run time
    /// (`maxRuntimeS` × the protocol's fuel per second). Counted in instructions, not wall
    /// time, so no host can cause it by pausing or starving the enclave. The node is paid.
    Timeout = 2,
    /// 3: the program exceeded the task's memory limit or the protocol's output limit. The
    /// node is paid.
    ResourceLimit = 3,
    /// 4: the payload cannot be decrypted or parsed. The requester's fault; the node is paid.
    InputInvalid = 4,
    /// 5: user-supplied code is missing, does not compile or parse. The requester's fault;
    /// the node is paid.
    CodeInvalid = 5,
    /// 6: the input's bytes are the ones the requester's CID names, but their keccak256 is
    /// not the `inputHash` the requester committed. The requester's fault; the node is paid.
    InputMismatch = 6,
    /// 16: the input could not be fetched, or its bytes are not the ones its CID names. The
    /// requester is refunded.
    InputUnavailable = 16,
    /// 17: the image could not be fetched or its measurement does not match. The requester
    /// is refunded.
    ImageUnavailable = 17,
    /// 18: the enclave failed for reasons of its own. The requester is refunded.
    EnclaveFailure = 18,
    /// 19: the program had fuel left but the enclave's wall-clock allowance ran out: its host
    /// paused or starved it. The node's fault; the requester is refunded.
    Stalled = 19,
}

impl StatusCode {
    /// Every defined code, in numeric order.
    pub const ALL: [Self; 11] = [
        Self::Success,
        Self::ProgramError,
        Self::Timeout,
        Self::ResourceLimit,
        Self::InputInvalid,
        Self::CodeInvalid,
        Self::InputMismatch,
        Self::InputUnavailable,
        Self::ImageUnavailable,
        Self::EnclaveFailure,
        Self::Stalled,
    ];

    /// The first code that counts as the system's fault. The contract uses the same bound.
    pub const FIRST_SYSTEM_CODE: u16 = 16;

    /// The number signed in the proof.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The protocol name, in upper snake case as documented.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::ProgramError => "PROGRAM_ERROR",
            Self::Timeout => "TIMEOUT",
            Self::ResourceLimit => "RESOURCE_LIMIT",
            Self::InputInvalid => "INPUT_INVALID",
            Self::CodeInvalid => "CODE_INVALID",
            Self::InputMismatch => "INPUT_MISMATCH",
            Self::InputUnavailable => "INPUT_UNAVAILABLE",
            Self::ImageUnavailable => "IMAGE_UNAVAILABLE",
            Self::EnclaveFailure => "ENCLAVE_FAILURE",
            Self::Stalled => "STALLED",
        }
    }

    /// Who is at fault for this outcome.
    pub const fn fault(self) -> Fault {
        match self {
            Self::Success => Fault::None,
            Self::ProgramError | Self::Timeout | Self::ResourceLimit => Fault::Program,
            Self::InputInvalid | Self::CodeInvalid | Self::InputMismatch => Fault::Requester,
            Self::InputUnavailable
            | Self::ImageUnavailable
            | Self::EnclaveFailure
            | Self::Stalled => Fault::System,
        }
    }

    /// What the contract does with the escrow for this code.
    pub const fn settlement(self) -> Settlement {
        match self.fault() {
            Fault::System => Settlement::RefundRequester,
            Fault::None | Fault::Program | Fault::Requester => Settlement::PayNode,
        }
    }

    /// A one-line explanation for people.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Success => "the program ran and succeeded",
            Self::ProgramError => "the program exited with an error or trapped",
            Self::Timeout => "the program used up the fuel of the task's run time",
            Self::ResourceLimit => "the program exceeded its memory or output limit",
            Self::InputInvalid => "the input payload could not be decrypted or parsed",
            Self::CodeInvalid => "the supplied code is missing or does not compile",
            Self::InputMismatch => {
                "the input is what the requester's CID names, but not what its committed hash names"
            }
            Self::InputUnavailable => {
                "the input could not be fetched, or was not what its CID names"
            }
            Self::ImageUnavailable => {
                "the image could not be fetched or did not match its measurement"
            }
            Self::EnclaveFailure => "the enclave failed",
            Self::Stalled => "the enclave was paused or starved past its wall-clock allowance",
        }
    }

    /// Process exit code the CLI uses for this outcome: 0 success, 1 program, 2 requester,
    /// 3 system.
    pub const fn exit_class(self) -> u8 {
        match self.fault() {
            Fault::None => 0,
            Fault::Program => 1,
            Fault::Requester => 2,
            Fault::System => 3,
        }
    }
}

impl TryFrom<u16> for StatusCode {
    type Error = ParseStatusError;

    fn try_from(raw: u16) -> Result<Self, Self::Error> {
        Self::ALL.into_iter().find(|s| s.code() == raw).ok_or(ParseStatusError(raw))
    }
}

impl From<StatusCode> for u16 {
    fn from(s: StatusCode) -> Self {
        s.code()
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_codes_refund_and_others_pay() {
        for s in StatusCode::ALL {
            let refund = s.code() >= StatusCode::FIRST_SYSTEM_CODE;
            assert_eq!(s.settlement() == Settlement::RefundRequester, refund, "{s}");
        }
    }

    #[test]
    fn undefined_codes_are_refused() {
        for raw in [7u16, 15, 20, 255, u16::MAX] {
            assert_eq!(StatusCode::try_from(raw), Err(ParseStatusError(raw)));
        }
    }

    #[test]
    fn codes_round_trip_through_json_as_numbers() {
        for s in StatusCode::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, s.code().to_string());
            assert_eq!(serde_json::from_str::<StatusCode>(&json).unwrap(), s);
        }
        assert!(serde_json::from_str::<StatusCode>("7").is_err());
    }

    #[test]
    fn exit_classes_follow_fault() {
        assert_eq!(StatusCode::Success.exit_class(), 0);
        assert_eq!(StatusCode::Timeout.exit_class(), 1);
        assert_eq!(StatusCode::CodeInvalid.exit_class(), 2);
        assert_eq!(StatusCode::EnclaveFailure.exit_class(), 3);
    }
}
