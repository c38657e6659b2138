//! Checking a proof of execution before trusting a result.
//!
//! A result is accepted only when all of these hold:
//! - the EIP-712 signature recovers to the image's enclave signer recorded in the
//!   ImageRegistry (so an attested enclave of *that* image produced it), over the domain of
//!   *this* chain id and *this* Marketplace contract (so it is not replayed from elsewhere);
//! - the proven input hash is the one the task was submitted with;
//! - the proof signs the CID the result was relayed under;
//! - keccak256 of the result bytes downloaded from the store equals the proven result hash.

use ecld_crypto::{ProofDomain, ProofSignature, ResultProof};
use ecld_types::{Address, B256, ImageId, TaskId, content_hash};
use serde::{Deserialize, Serialize};

use crate::VerifyError;

/// A proof of execution as relayed on chain, with where its result is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRecord {
    /// The signed message.
    pub proof: ResultProof,
    /// The 65-byte signature (r ‖ s ‖ v).
    pub signature: alloy::primitives::Bytes,
    /// CID of the encrypted result in the store (empty when there is none).
    pub result_cid: String,
    /// The node that relayed the proof.
    pub node: Address,
}

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// The task.
    pub task: TaskId,
    /// The image whose enclave signed.
    pub image: ImageId,
    /// The enclave signer the signature recovered to.
    pub signer: Address,
    /// The proof.
    pub record: ProofRecord,
}

/// Checks `record` for task `task` of image `image`, expecting the enclave signer
/// `expected_signer`, the submitted input hash `input_hash`, and, when the result was
/// downloaded, its bytes.
///
/// # Errors
/// The first check that fails, as a [`VerifyError`].
pub fn check(
    task: TaskId,
    image: ImageId,
    domain: &ProofDomain,
    expected_signer: Address,
    input_hash: B256,
    record: &ProofRecord,
    result: Option<&[u8]>,
) -> Result<Verified, VerifyError> {
    if record.proof.task_id != task.get() || record.proof.image_id != image.0 {
        return Err(VerifyError::BadSignature {
            task,
            reason: format!(
                "the proof names task {} of image {}, not task {task} of image {image}",
                record.proof.task_id, record.proof.image_id
            ),
        });
    }
    let recovered = ProofSignature::from_slice(&record.signature)
        .and_then(|sig| record.proof.recover(domain, &sig))
        .map_err(|e| VerifyError::BadSignature { task, reason: e.to_string() })?;
    if recovered != expected_signer {
        return Err(VerifyError::WrongSigner { task, image, expected: expected_signer, recovered });
    }
    if record.proof.input_hash != input_hash {
        return Err(VerifyError::InputHashMismatch {
            task,
            submitted: input_hash,
            proven: record.proof.input_hash,
        });
    }
    if alloy::primitives::keccak256(record.result_cid.as_bytes()) != record.proof.result_cid_hash {
        return Err(VerifyError::ResultCidMismatch { task, cid: record.result_cid.clone() });
    }
    if let Some(bytes) = result {
        let actual = content_hash(bytes);
        if actual != record.proof.result_hash {
            return Err(VerifyError::ResultHashMismatch {
                task,
                expected: record.proof.result_hash,
                actual,
            });
        }
    }
    Ok(Verified { task, image, signer: recovered, record: record.clone() })
}

#[cfg(test)]
mod tests {
    use ecld_crypto::SignerKey;
    use ecld_types::StatusCode;

    use super::*;

    fn setup() -> (SignerKey, ProofDomain, ProofRecord, Vec<u8>) {
        let key = SignerKey::generate();
        let domain = ProofDomain { chain_id: 31337, verifying_contract: Address::repeat_byte(7) };
        let result = b"result ciphertext".to_vec();
        let proof = ResultProof {
            task_id: 5,
            image_id: B256::repeat_byte(1),
            input_hash: B256::repeat_byte(2),
            input_cid_hash: B256::repeat_byte(3),
            memory_mb: 64,
            max_runtime_s: 10,
            deadline: 1_900_000_000,
            code_hash: B256::ZERO,
            result_hash: content_hash(&result),
            result_cid_hash: alloy::primitives::keccak256("bafkrei"),
            status: StatusCode::Success,
            runtime_ms: 12,
        };
        let sig = proof.sign(&key, &domain).unwrap();
        let record = ProofRecord {
            proof,
            signature: sig.as_bytes().to_vec().into(),
            result_cid: "bafkrei".into(),
            node: Address::repeat_byte(9),
        };
        (key, domain, record, result)
    }

    fn ids() -> (TaskId, ImageId) {
        (TaskId::new(5).unwrap(), ImageId(B256::repeat_byte(1)))
    }

    #[test]
    fn a_genuine_proof_and_result_verify() {
        let (key, domain, record, result) = setup();
        let (task, image) = ids();
        let v = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(2),
            &record,
            Some(&result),
        )
        .unwrap();
        assert_eq!(v.signer, key.address());
    }

    #[test]
    fn another_signer_is_rejected() {
        let (_, domain, record, result) = setup();
        let (task, image) = ids();
        let other = SignerKey::generate().address();
        let err = check(task, image, &domain, other, B256::repeat_byte(2), &record, Some(&result))
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::WrongSigner { expected, .. } if expected == other),
            "{err}"
        );
    }

    #[test]
    fn another_chain_or_contract_is_rejected() {
        let (key, domain, record, result) = setup();
        let (task, image) = ids();
        for d in [
            ProofDomain { chain_id: 1, ..domain },
            ProofDomain { verifying_contract: Address::repeat_byte(8), ..domain },
        ] {
            let err =
                check(task, image, &d, key.address(), B256::repeat_byte(2), &record, Some(&result))
                    .unwrap_err();
            assert!(matches!(err, VerifyError::WrongSigner { .. }), "{err}");
        }
    }

    #[test]
    fn altered_result_bytes_are_rejected() {
        let (key, domain, record, mut result) = setup();
        let (task, image) = ids();
        result[0] ^= 1;
        let err = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(2),
            &record,
            Some(&result),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::ResultHashMismatch { .. }), "{err}");
        assert!(err.to_string().contains("do not use it"));
    }

    #[test]
    fn a_proof_for_another_input_or_status_is_rejected() {
        let (key, domain, record, result) = setup();
        let (task, image) = ids();
        let err = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(3),
            &record,
            Some(&result),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::InputHashMismatch { .. }), "{err}");
        // A relayer that changes the status breaks the signature.
        let mut changed = record;
        changed.proof.status = StatusCode::EnclaveFailure;
        let err = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(2),
            &changed,
            Some(&result),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::WrongSigner { .. }), "{err}");
    }

    #[test]
    fn a_result_relayed_under_another_cid_is_rejected() {
        let (key, domain, mut record, result) = setup();
        let (task, image) = ids();
        record.result_cid = "bafkreiother".into();
        let err = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(2),
            &record,
            Some(&result),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::ResultCidMismatch { .. }), "{err}");
    }

    #[test]
    fn a_malformed_signature_is_rejected() {
        let (key, domain, mut record, result) = setup();
        let (task, image) = ids();
        record.signature = vec![0u8; 10].into();
        let err = check(
            task,
            image,
            &domain,
            key.address(),
            B256::repeat_byte(2),
            &record,
            Some(&result),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    }
}
