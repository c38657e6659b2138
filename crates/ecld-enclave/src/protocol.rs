//! The frames the node and the enclave exchange on the enclave's stdin and stdout.
//!
//! Every frame is `u32 BE frame length ‖ u32 BE header length ‖ JSON header ‖ blob` (see
//! [`frame`]); the header is one of the enums below, tagged by `"type"`. The blob carries the
//! one binary field of a message (the input ciphertext of [`Request::Run`], the result
//! ciphertext of [`Response::Done`]) so that large ciphertexts are not hex- or
//! base64-encoded. `docs/protocol.md` ("Enclave frames") is the normative description.
//!
//! Conversation: the enclave attests to the CAS, then writes [`Response::Ready`] (or
//! [`Response::Fatal`] and exits non-zero). The node then sends requests one at a time and
//! reads exactly one response for each. End of stdin or [`Request::Shutdown`] ends the
//! process with exit code 0.

pub mod frame;

use alloy_primitives::{Address, B256, Bytes};
use ecld_crypto::ResultProof;
use ecld_types::{ImageId, StatusCode, TaskId};
use serde::{Deserialize, Serialize};

use crate::image::Measurement;

/// Version of the frame protocol, announced in [`Response::Ready`].
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from the node to the enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Run one task. The frame's blob is the input ciphertext as fetched from the store. A
    /// node that could not fetch the input sends an empty blob: the enclave signs status 16.
    Run {
        /// What the proof will be bound to.
        task: TaskBinding,
        /// The limits the program runs under.
        limits: Limits,
    },
    /// Liveness check; answered by [`Response::Pong`].
    Ping,
    /// Ends the enclave process (exit code 0) without a response.
    Shutdown,
}

/// The on-chain facts a proof is bound to. The node takes them from the `TaskSubmitted`
/// event and the deployment; the enclave signs them, so the contract rejects a proof the
/// node bound to anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskBinding {
    /// The task in the Marketplace contract.
    pub task_id: TaskId,
    /// The image the task was submitted for; must be the image this enclave runs.
    pub image_id: ImageId,
    /// keccak256 of the input ciphertext, as submitted on chain.
    pub input_hash: B256,
    /// EIP-712 domain: chain id.
    pub chain_id: u64,
    /// EIP-712 domain: the Marketplace contract.
    pub marketplace: Address,
}

/// The limits one task runs under. Exceeding `time_ms` gives status 2 (TIMEOUT); exceeding
/// memory, output or fuel gives status 3 (RESOURCE_LIMIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Execution time of the program, in milliseconds (wall clock, enforced by epoch
    /// interruption with a granularity of a few milliseconds).
    pub time_ms: u64,
    /// Linear memory the program may grow to, in bytes (all memories together).
    pub memory_bytes: u64,
    /// Bytes the program may write to stdout.
    pub output_bytes: u64,
    /// WebAssembly fuel (about one unit per instruction). Honoured only by an enclave started
    /// with fuel metering (`--fuel`); `null` means no fuel limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

impl Default for Limits {
    /// 10 s, 256 MiB of memory, 16 MiB of output, no fuel limit.
    fn default() -> Self {
        Self {
            time_ms: 10_000,
            memory_bytes: 256 * 1024 * 1024,
            output_bytes: 16 * 1024 * 1024,
            fuel: None,
        }
    }
}

/// A message from the enclave to the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The enclave attested and holds the image secrets; first frame of every conversation.
    Ready(Ready),
    /// The answer to [`Request::Run`]. The blob is the result ciphertext (empty when no
    /// result could be produced: statuses 4 and 16, see `docs/protocol.md`).
    Done(Done),
    /// The answer to [`Request::Ping`].
    Pong,
    /// A request frame could not be understood; the enclave stays up for the next one.
    Error {
        /// What was wrong, for the node's log.
        message: String,
    },
    /// Start-up failed (attestation, module); the process exits non-zero after this frame.
    Fatal {
        /// What went wrong and what to check.
        message: String,
    },
}

/// What the enclave announces once it holds the image secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// [`PROTOCOL_VERSION`] of the enclave.
    pub version: u32,
    /// Address of the image's proof signer (the ImageRegistry's `enclaveSigner`).
    pub signer: Address,
    /// The image's X25519 input recipient (`age1…`; the ImageRegistry's `enclaveKey`).
    pub recipient: String,
    /// The TEE platform the enclave attested with: `sim`, `tdx` or `sgx`.
    pub platform: String,
    /// sha256 of the module the enclave loaded.
    pub measurement: Measurement,
    /// Whether the image accepts user code in the payload (a runner image).
    pub accepts_code: bool,
}

/// The signed outcome of one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// The fields of the EIP-712 `Result` message, as signed.
    pub proof: ProofFields,
    /// 65-byte signature `r ‖ s ‖ v` (v ∈ {27, 28}) by the image signer over the EIP-712
    /// digest of `proof` in the domain of the task's chain and Marketplace.
    pub signature: Bytes,
    /// A public, one-line explanation for the node's log. Never carries program output.
    pub message: String,
}

/// The fields of the EIP-712 `Result(uint256 taskId, bytes32 imageId, bytes32 inputHash,
/// bytes32 codeHash, bytes32 resultHash, uint16 status, uint64 runtimeMs)` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofFields {
    /// The task.
    pub task_id: TaskId,
    /// The image that ran.
    pub image_id: ImageId,
    /// keccak256 of the input ciphertext (as bound by the node, also on a mismatch).
    pub input_hash: B256,
    /// keccak256 of user code in the payload, zero when there was none (or the payload
    /// could not be read).
    pub code_hash: B256,
    /// keccak256 of the result ciphertext, zero when there is no result.
    pub result_hash: B256,
    /// The status code.
    pub status: StatusCode,
    /// Program run time in milliseconds (0 when the program did not start).
    pub runtime_ms: u64,
}

impl ProofFields {
    /// The proof as `ecld-crypto` verifies it.
    pub fn to_proof(&self) -> ResultProof {
        ResultProof {
            task_id: self.task_id.get(),
            image_id: self.image_id.0,
            input_hash: self.input_hash,
            code_hash: self.code_hash,
            result_hash: self.result_hash,
            status: self.status,
            runtime_ms: self.runtime_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn binding() -> TaskBinding {
        TaskBinding {
            task_id: TaskId::new(7).unwrap(),
            image_id: ImageId(B256::repeat_byte(1)),
            input_hash: B256::repeat_byte(2),
            chain_id: 31337,
            marketplace: Address::repeat_byte(3),
        }
    }

    #[test]
    fn run_request_wire_form() {
        let req = Request::Run { task: binding(), limits: Limits::default() };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["type"], "run");
        assert_eq!(v["task"]["task_id"], 7);
        assert_eq!(v["task"]["chain_id"], 31337);
        assert_eq!(v["task"]["image_id"], format!("0x{}", "01".repeat(32)));
        assert_eq!(v["limits"]["time_ms"], 10_000);
        assert!(v["limits"].get("fuel").is_none());
        let back: Request = serde_json::from_value(v).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn unit_requests_are_just_a_tag() {
        assert_eq!(serde_json::to_value(Request::Ping).unwrap(), json!({"type": "ping"}));
        assert_eq!(serde_json::to_value(Request::Shutdown).unwrap(), json!({"type": "shutdown"}));
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(serde_json::from_value::<Request>(json!({"type": "reboot"})).is_err());
        let run = serde_json::to_value(Request::Run { task: binding(), limits: Limits::default() })
            .unwrap();
        let mut v = run.clone();
        v["extra"] = json!(1);
        assert!(serde_json::from_value::<Request>(v).is_err());
        let mut v = run.clone();
        v["limits"]["cpu"] = json!(1);
        assert!(serde_json::from_value::<Request>(v).is_err());
        let mut v = run;
        v["task"]["task_id"] = json!(-1);
        assert!(serde_json::from_value::<Request>(v).is_err());
    }

    #[test]
    fn done_wire_form_carries_status_as_number() {
        let done = Response::Done(Done {
            proof: ProofFields {
                task_id: TaskId::new(1).unwrap(),
                image_id: ImageId(B256::ZERO),
                input_hash: B256::ZERO,
                code_hash: B256::ZERO,
                result_hash: B256::ZERO,
                status: StatusCode::InputUnavailable,
                runtime_ms: 0,
            },
            signature: Bytes::from(vec![0u8; 65]),
            message: "input hash mismatch".into(),
        });
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(v["type"], "done");
        assert_eq!(v["proof"]["status"], 16);
        assert_eq!(serde_json::from_value::<Response>(v).unwrap(), done);
    }
}
