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
pub const PROTOCOL_VERSION: u32 = 2;

/// A message from the node to the enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Run one task. The frame's blob is the input ciphertext as fetched from the store. A
    /// node that could not fetch the input sends an empty blob: the enclave signs status 16.
    /// The limits the program runs under are derived from the task's spec by the enclave
    /// ([`Limits::for_spec`]) and signed with it: nothing the node sends sets them.
    Run {
        /// What the proof will be bound to.
        task: TaskBinding,
    },
    /// Liveness check; answered by [`Response::Pong`].
    Ping,
    /// Ends the enclave process (exit code 0) without a response.
    Shutdown,
}

/// The on-chain facts a proof is bound to: the task's whole spec, and the domain. The node
/// takes them from the `TaskSubmitted` event and the deployment; the enclave enforces the
/// spec's limits and signs the spec, so the contract rejects a proof the node bound to
/// anything else, limits included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskBinding {
    /// The task in the Marketplace contract.
    pub task_id: TaskId,
    /// The image the task was submitted for; must be the image this enclave runs.
    pub image_id: ImageId,
    /// keccak256 of the input ciphertext, as submitted on chain.
    pub input_hash: B256,
    /// keccak256 of the input's CID as text, as submitted on chain.
    pub input_cid_hash: B256,
    /// The spec's memory limit, MB (MiB).
    pub memory_mb: u32,
    /// The spec's run time, seconds: the fuel budget is this times [`FUEL_PER_SECOND`].
    pub max_runtime_s: u32,
    /// The spec's deadline (Unix seconds).
    pub deadline: u64,
    /// EIP-712 domain: chain id.
    pub chain_id: u64,
    /// EIP-712 domain: the Marketplace contract.
    pub marketplace: Address,
}

/// Fuel (WebAssembly instructions, about) a task gets per second of its spec's
/// `maxRuntimeS`. Protocol: the same on every enclave, so a program that runs out of fuel
/// runs out on any node, however fast or loaded.
pub const FUEL_PER_SECOND: u64 = 500_000_000;

/// Bytes a task's program may write to stdout. Protocol, like the fuel rate.
pub const OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;

/// The wall-clock allowance of a task whose spec gives `max_runtime_s`: four times the run
/// time plus 10 s. Past it the run stops as STALLED (the host paused or starved the
/// enclave; the requester is refunded). An enclave on an honest, moderately loaded host uses
/// up its fuel (TIMEOUT) well before.
pub const fn wall_clock_allowance_ms(max_runtime_s: u32) -> u64 {
    (max_runtime_s as u64).saturating_mul(4_000).saturating_add(10_000)
}

/// The limits one task runs under. Exceeding `time_ms` (wall clock) gives status 19
/// (STALLED); using up `fuel` gives status 2 (TIMEOUT); exceeding memory or output gives
/// status 3 (RESOURCE_LIMIT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock allowance of the program, in milliseconds (enforced by epoch interruption
    /// with a granularity of a few milliseconds).
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

impl Limits {
    /// The limits of a task with this spec: its memory, the fuel of its run time, the
    /// protocol's output limit and the wall-clock allowance of its run time.
    pub const fn for_spec(memory_mb: u32, max_runtime_s: u32) -> Self {
        Self {
            time_ms: wall_clock_allowance_ms(max_runtime_s),
            memory_bytes: (memory_mb as u64) * 1024 * 1024,
            output_bytes: OUTPUT_LIMIT,
            fuel: Some((max_runtime_s as u64).saturating_mul(FUEL_PER_SECOND)),
        }
    }
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
    /// The CID of the result ciphertext (CIDv1, raw leaves, 256 KiB chunks: what the store
    /// gives it), empty when there is no result. `proof.result_cid_hash` is its keccak256:
    /// the node must publish the result under exactly this CID.
    pub result_cid: String,
}

/// The fields of the EIP-712 `Result` message (see `ecld_crypto::proof`): the task, its
/// whole spec, and the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofFields {
    /// The task.
    pub task_id: TaskId,
    /// The image that ran.
    pub image_id: ImageId,
    /// keccak256 of the input ciphertext (as bound by the node, also on a mismatch).
    pub input_hash: B256,
    /// keccak256 of the input's CID as text.
    pub input_cid_hash: B256,
    /// The spec's memory limit, MB.
    pub memory_mb: u32,
    /// The spec's run time, seconds.
    pub max_runtime_s: u32,
    /// The spec's deadline.
    pub deadline: u64,
    /// keccak256 of user code in the payload, zero when there was none (or the payload
    /// could not be read).
    pub code_hash: B256,
    /// keccak256 of the result ciphertext, zero when there is no result.
    pub result_hash: B256,
    /// keccak256 of the result's CID as text (of the empty string when there is no result).
    pub result_cid_hash: B256,
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
            input_cid_hash: self.input_cid_hash,
            memory_mb: self.memory_mb,
            max_runtime_s: self.max_runtime_s,
            deadline: self.deadline,
            code_hash: self.code_hash,
            result_hash: self.result_hash,
            result_cid_hash: self.result_cid_hash,
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
            input_cid_hash: B256::repeat_byte(4),
            memory_mb: 64,
            max_runtime_s: 5,
            deadline: 1_900_000_000,
            chain_id: 31337,
            marketplace: Address::repeat_byte(3),
        }
    }

    #[test]
    fn run_request_wire_form() {
        let req = Request::Run { task: binding() };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["type"], "run");
        assert_eq!(v["task"]["task_id"], 7);
        assert_eq!(v["task"]["chain_id"], 31337);
        assert_eq!(v["task"]["image_id"], format!("0x{}", "01".repeat(32)));
        assert_eq!(v["task"]["memory_mb"], 64);
        assert_eq!(v["task"]["max_runtime_s"], 5);
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
        let run = serde_json::to_value(Request::Run { task: binding() }).unwrap();
        let mut v = run.clone();
        v["extra"] = json!(1);
        assert!(serde_json::from_value::<Request>(v).is_err());
        // A node cannot choose the limits: the frame has no place for them.
        let mut v = run.clone();
        v["limits"] = serde_json::to_value(Limits::default()).unwrap();
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
                input_cid_hash: B256::ZERO,
                memory_mb: 1,
                max_runtime_s: 1,
                deadline: 1,
                code_hash: B256::ZERO,
                result_hash: B256::ZERO,
                result_cid_hash: B256::ZERO,
                status: StatusCode::InputUnavailable,
                runtime_ms: 0,
            },
            signature: Bytes::from(vec![0u8; 65]),
            message: "input hash mismatch".into(),
            result_cid: String::new(),
        });
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(v["type"], "done");
        assert_eq!(v["proof"]["status"], 16);
        assert_eq!(serde_json::from_value::<Response>(v).unwrap(), done);
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn limits_come_from_the_spec_and_the_protocol() {
        let l = Limits::for_spec(64, 5);
        assert_eq!(l.memory_bytes, 64 << 20);
        assert_eq!(l.fuel, Some(5 * FUEL_PER_SECOND));
        assert_eq!(l.output_bytes, OUTPUT_LIMIT);
        assert_eq!(l.time_ms, 30_000);
        // The wall clock always leaves the fuel room to run out first on an honest host.
        for s in [0u32, 1, 60, u32::MAX] {
            assert!(wall_clock_allowance_ms(s) >= u64::from(s).saturating_mul(4_000));
        }
    }
}
