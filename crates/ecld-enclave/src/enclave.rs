//! One task, end to end inside the enclave: check the input against its CID and hash,
//! decrypt, parse the payload, run the program under the spec's limits, encrypt the result
//! to the payload's recipient, name its CID, sign the proof over the spec and the CID.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    time::Duration,
};

use alloy_primitives::{B256, Bytes, keccak256};
use ecld_crypto::{Payload, ProofDomain, ResultProof, envelope};
use ecld_types::{ImageId, StatusCode, content_hash};

use crate::{
    attest::ImageSecrets,
    image::Measurement,
    protocol::{Done, Limits, PROTOCOL_VERSION, ProofFields, Ready, TaskBinding},
    result::ResultEnvelope,
    runner::{CODE_INVALID_EXIT, RunnerKind},
    runtime::{Execution, Exit, Program},
};

/// Why the enclave refused a task without signing anything.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task is for another image; signing it would misuse this image's key.
    #[error(
        "task {task} is for image {wanted}, but this enclave runs image {mine}; send it to an enclave of that image"
    )]
    WrongImage {
        /// The task.
        task: u64,
        /// The image the task names.
        wanted: ImageId,
        /// The image this enclave runs.
        mine: ImageId,
    },
    /// Signing the proof failed.
    #[error("cannot sign the proof: {0}")]
    Signing(String),
}

/// A warm enclave: the compiled program and the image secrets.
#[derive(Debug)]
pub struct Enclave {
    program: Program,
    secrets: ImageSecrets,
    measurement: Measurement,
    platform: String,
    image_id: Option<ImageId>,
}

/// The signed answer to one task and the result ciphertext (empty when there is none).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The `Done` frame header.
    pub done: Done,
    /// The result ciphertext.
    pub result: Vec<u8>,
}

impl Enclave {
    /// An enclave running `program` (whose module measured `measurement`) with `secrets`
    /// obtained on `platform`. With `image_id`, tasks for other images are refused.
    pub fn new(
        program: Program,
        secrets: ImageSecrets,
        measurement: Measurement,
        platform: impl Into<String>,
        image_id: Option<ImageId>,
    ) -> Self {
        Self { program, secrets, measurement, platform: platform.into(), image_id }
    }

    /// The `Ready` frame this enclave announces.
    pub fn ready(&self) -> Ready {
        Ready {
            version: PROTOCOL_VERSION,
            signer: self.secrets.signer.address(),
            recipient: self.secrets.identity.recipient().to_string(),
            platform: self.platform.clone(),
            measurement: self.measurement,
            accepts_code: self.program.runner().is_some(),
        }
    }

    /// Runs one task under the limits of its spec ([`Limits::for_spec`]). Every outcome of
    /// the input and the program is a signed [`Answer`]; only a task for another image, or a
    /// signer failure, is an error.
    pub fn run(&self, task: &TaskBinding, input: &[u8]) -> Result<Answer, TaskError> {
        if let Some(mine) = self.image_id
            && mine != task.image_id
        {
            return Err(TaskError::WrongImage {
                task: task.task_id.get(),
                wanted: task.image_id,
                mine,
            });
        }
        let limits = Limits::for_spec(task.memory_mb, task.max_runtime_s);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.execute(task, &limits, input)))
            .unwrap_or_else(|_| {
                Outcome::bare(
                    StatusCode::EnclaveFailure,
                    "the enclave failed while running the task",
                )
            });
        self.sign(task, outcome)
    }

    fn execute(&self, task: &TaskBinding, limits: &Limits, input: &[u8]) -> Outcome {
        if input.is_empty() {
            return Outcome::bare(
                StatusCode::InputUnavailable,
                "the node could not fetch the input",
            );
        }
        // Whose fault a wrong input is: bytes that are not what the requester's CID names
        // came from the node (or a store); bytes that are, but do not hash to what the
        // requester committed, are the requester's own.
        let cid = cid_text(input);
        if keccak256(cid.as_bytes()) != task.input_cid_hash {
            return Outcome::bare(
                StatusCode::InputUnavailable,
                format!(
                    "the input bytes are {cid}, not the CID the task names (its hash is {})",
                    task.input_cid_hash
                ),
            );
        }
        let actual = content_hash(input);
        if actual != task.input_hash {
            return Outcome::bare(
                StatusCode::InputMismatch,
                format!(
                    "input hash mismatch: the bytes of the requester's CID hash to {actual}, the \
                     requester committed {}",
                    task.input_hash
                ),
            );
        }
        let Ok(plaintext) = envelope::decrypt_bytes(&self.secrets.identity, input) else {
            return Outcome::bare(
                StatusCode::InputInvalid,
                "the input does not decrypt with the image key",
            );
        };
        let plaintext = zeroize::Zeroizing::new(plaintext);
        let payload = match Payload::decode(&plaintext) {
            Ok(payload) => payload,
            Err(e) => {
                return Outcome::bare(
                    StatusCode::InputInvalid,
                    format!("the input payload is invalid: {e}"),
                );
            }
        };
        let Ok(recipient) = payload.recipient() else {
            return Outcome::bare(
                StatusCode::InputInvalid,
                "the payload's result recipient is invalid",
            );
        };
        let code_hash = payload.code_hash();

        let (envelope, runtime, message) =
            if payload.code.is_none() && self.program.runner().is_none() {
                let Execution { exit, stdout, stderr, elapsed } =
                    self.program.run(&payload.input, limits);
                let status = exit.status();
                let env = ResultEnvelope {
                    status: status.code(),
                    exit_code: exit.exit_code(),
                    stdout,
                    stderr,
                };
                (env, elapsed, status.describe().to_owned())
            } else {
                run_code(&self.program, payload.code.as_deref(), &payload.input, limits)
            };
        let status = StatusCode::try_from(envelope.status).unwrap_or(StatusCode::EnclaveFailure);
        match envelope::encrypt_bytes(&[recipient], false, &envelope.encode()) {
            Ok(result) => Outcome { status, code_hash, result, runtime, message },
            Err(_) => Outcome::bare(StatusCode::EnclaveFailure, "cannot encrypt the result"),
        }
    }

    fn sign(&self, task: &TaskBinding, outcome: Outcome) -> Result<Answer, TaskError> {
        let (result_hash, result_cid) = if outcome.result.is_empty() {
            (B256::ZERO, String::new())
        } else {
            (content_hash(&outcome.result), cid_text(&outcome.result))
        };
        let result_cid_hash = keccak256(result_cid.as_bytes());
        let runtime_ms = u64::try_from(outcome.runtime.as_millis()).unwrap_or(u64::MAX);
        let fields = ProofFields {
            task_id: task.task_id,
            image_id: task.image_id,
            input_hash: task.input_hash,
            input_cid_hash: task.input_cid_hash,
            memory_mb: task.memory_mb,
            max_runtime_s: task.max_runtime_s,
            deadline: task.deadline,
            code_hash: outcome.code_hash,
            result_hash,
            result_cid_hash,
            status: outcome.status,
            runtime_ms,
        };
        let proof: ResultProof = fields.to_proof();
        let domain = ProofDomain { chain_id: task.chain_id, verifying_contract: task.marketplace };
        let signature = proof
            .sign(&self.secrets.signer, &domain)
            .map_err(|e| TaskError::Signing(e.to_string()))?;
        Ok(Answer {
            done: Done {
                proof: fields,
                signature: Bytes::copy_from_slice(&signature.0),
                message: outcome.message,
                result_cid,
            },
            result: outcome.result,
        })
    }
}

/// The CID the store gives `bytes` (CIDv1, raw leaves, 256 KiB chunks), as text.
pub fn cid_text(bytes: &[u8]) -> String {
    ecld_store::unixfs::file_cid(bytes).to_string()
}

/// keccak256 of [`cid_text`]: what a spec's `inputCidHash` and a proof's `resultCidHash`
/// name.
pub fn cid_hash(bytes: &[u8]) -> B256 {
    keccak256(cid_text(bytes).as_bytes())
}

/// A task that carries code, or one for a runner image: code that is missing, does not
/// compile, or that a `stdin-v1` interpreter refused (exit 125) is CODE_INVALID.
fn run_code(
    program: &Program,
    code: Option<&[u8]>,
    input: &[u8],
    limits: &Limits,
) -> (ResultEnvelope, Duration, String) {
    match program.run_code(code, input, limits) {
        Err(reason) => {
            let env = ResultEnvelope {
                status: StatusCode::CodeInvalid.code(),
                exit_code: -1,
                stdout: Vec::new(),
                stderr: format!("[ecld enclave] {reason}\n").into_bytes(),
            };
            let message = match program.runner() {
                None => "the payload carries code, but this image does not accept code".to_owned(),
                Some(_) if code.is_none() => {
                    "this runner image needs code; the payload has none".to_owned()
                }
                Some(_) => "the code does not compile as a WASI preview 1 command".to_owned(),
            };
            (env, Duration::ZERO, message)
        }
        Ok(Execution { exit, stdout, stderr, elapsed }) => {
            let status = if program.runner() == Some(RunnerKind::Stdin)
                && exit == Exit::Exited(CODE_INVALID_EXIT)
            {
                StatusCode::CodeInvalid
            } else {
                exit.status()
            };
            let env = ResultEnvelope {
                status: status.code(),
                exit_code: exit.exit_code(),
                stdout,
                stderr,
            };
            (env, elapsed, status.describe().to_owned())
        }
    }
}

struct Outcome {
    status: StatusCode,
    code_hash: B256,
    result: Vec<u8>,
    runtime: Duration,
    message: String,
}

impl Outcome {
    /// An outcome without a result (the recipient is unknown or the program never ran).
    fn bare(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code_hash: B256::ZERO,
            result: Vec::new(),
            runtime: Duration::ZERO,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod runner_tests;
#[cfg(test)]
mod tests;
