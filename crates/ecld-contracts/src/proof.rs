//! The EIP-712 `Result` message the enclave signs and `submitResult` checks.
//!
//! Domain `{name: "ecld", version: "1", chainId, verifyingContract: Marketplace}`, type
//! `Result(uint256 taskId,bytes32 imageId,bytes32 inputHash,bytes32 codeHash,bytes32
//! resultHash,uint16 status,uint64 runtimeMs)`. `ecld-crypto` signs it; this module is the
//! contract side's reference, used to check both agree.

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::{Eip712Domain, SolStruct},
};

mod types {
    #![allow(missing_docs, unreachable_pub)]
    alloy::sol! {
        #[derive(Debug)]
        struct Result {
            uint256 taskId;
            bytes32 imageId;
            bytes32 inputHash;
            bytes32 codeHash;
            bytes32 resultHash;
            uint16 status;
            uint64 runtimeMs;
        }
    }
}

/// The fields of a proof of execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// Task the proof is for.
    pub task_id: u64,
    /// Image that ran.
    pub image_id: B256,
    /// keccak256 of the input ciphertext.
    pub input_hash: B256,
    /// keccak256 of user-supplied code, zero when the image ran its own program.
    pub code_hash: B256,
    /// keccak256 of the result ciphertext.
    pub result_hash: B256,
    /// Status code of execution.
    pub status: u16,
    /// Run time, ms.
    pub runtime_ms: u64,
}

impl Proof {
    fn message(&self) -> types::Result {
        types::Result {
            taskId: U256::from(self.task_id),
            imageId: self.image_id,
            inputHash: self.input_hash,
            codeHash: self.code_hash,
            resultHash: self.result_hash,
            status: self.status,
            runtimeMs: self.runtime_ms,
        }
    }
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
