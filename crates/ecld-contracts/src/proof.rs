//! The EIP-712 `Result` message the enclave signs and `submitResult` checks.
//!
//! Domain `{name: "ecld", version: "1", chainId, verifyingContract: Marketplace}`, type
//! `Result(uint256 taskId,TaskSpec spec,bytes32 codeHash,bytes32 resultHash,bytes32
//! resultCidHash,uint16 status,uint64 runtimeMs)` with the task's whole `TaskSpec` nested.
//! `ecld-crypto` signs it; this module is the contract side's reference, used to check both
//! agree.

use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::{Eip712Domain, SolStruct},
};

use crate::TaskSpec;

mod types {
    #![allow(missing_docs, unreachable_pub)]
    alloy::sol! {
        #[derive(Debug)]
        struct TaskSpec {
            bytes32 imageId;
            bytes32 inputHash;
            bytes32 inputCidHash;
            uint32 memoryMb;
            uint32 maxRuntimeS;
            uint64 deadline;
        }

        #[derive(Debug)]
        struct Result {
            uint256 taskId;
            TaskSpec spec;
            bytes32 codeHash;
            bytes32 resultHash;
            bytes32 resultCidHash;
            uint16 status;
            uint64 runtimeMs;
        }
    }
}

/// The fields of a proof of execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// Task the proof is for.
    pub task_id: u64,
    /// The task's spec, as committed on chain.
    pub spec: TaskSpec,
    /// keccak256 of user-supplied code, zero when the image ran its own program.
    pub code_hash: B256,
    /// keccak256 of the result ciphertext.
    pub result_hash: B256,
    /// The result's CID (its keccak256 is signed).
    pub result_cid: String,
    /// Status code of execution.
    pub status: u16,
    /// Run time, ms.
    pub runtime_ms: u64,
}

impl Proof {
    fn message(&self) -> types::Result {
        let s = &self.spec;
        types::Result {
            taskId: U256::from(self.task_id),
            spec: types::TaskSpec {
                imageId: s.imageId,
                inputHash: s.inputHash,
                inputCidHash: s.inputCidHash,
                memoryMb: s.memoryMb,
                maxRuntimeS: s.maxRuntimeS,
                deadline: s.deadline,
            },
            codeHash: self.code_hash,
            resultHash: self.result_hash,
            resultCidHash: keccak256(self.result_cid.as_bytes()),
            status: self.status,
            runtimeMs: self.runtime_ms,
        }
    }
}

/// hashStruct(TaskSpec): what the contract's `hashSpec` returns.
pub fn spec_struct_hash(spec: &TaskSpec) -> B256 {
    let p = Proof {
        task_id: 0,
        spec: spec.clone(),
        code_hash: B256::ZERO,
        result_hash: B256::ZERO,
        result_cid: String::new(),
        status: 0,
        runtime_ms: 0,
    };
    p.message().spec.eip712_hash_struct()
}

/// The proof domain of a Marketplace.
pub fn domain(chain_id: u64, marketplace: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some("ecld".into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(marketplace),
        None,
    )
}

/// hashStruct(Result) of the proof.
pub fn result_struct_hash(proof: &Proof) -> B256 {
    proof.message().eip712_hash_struct()
}

/// The digest the enclave signs: keccak256("\x19\x01" ‖ domainSeparator ‖ hashStruct).
pub fn result_digest(proof: &Proof, chain_id: u64, marketplace: Address) -> B256 {
    proof.message().eip712_signing_hash(&domain(chain_id, marketplace))
}
