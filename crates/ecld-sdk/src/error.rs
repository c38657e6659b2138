//! Errors of the SDK. Each message says what went wrong and what to do about it.

use std::{path::PathBuf, time::Duration};

use ecld_types::{Address, B256, ImageId, TaskId, U256};

/// Why a proof of execution or a result was refused. Any of these means: do not trust the
/// result; report the node (its offer) and resubmit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature does not recover to the image's enclave signer.
    #[error(
        "the proof of task {task} was signed by {recovered}, not by image {image}'s enclave \
         signer {expected}: the result did not come from an attested enclave of that image; \
         do not use it"
    )]
    WrongSigner {
        /// The task.
        task: TaskId,
        /// The image the task names.
        image: ImageId,
        /// The signer the ImageRegistry records for the image.
        expected: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
    /// The signature is not a valid secp256k1 signature at all.
    #[error(
        "the proof of task {task} carries a malformed signature ({reason}); do not use the result"
    )]
    BadSignature {
        /// The task.
        task: TaskId,
        /// What was wrong.
        reason: String,
    },
    /// The downloaded result bytes do not hash to the proven result hash.
    #[error(
        "the result of task {task} downloaded from the store hashes to {actual}, but the proof \
         says {expected}: the stored result was altered or the store is faulty; do not use it"
    )]
    ResultHashMismatch {
        /// The task.
        task: TaskId,
        /// The hash in the proof.
        expected: B256,
        /// keccak256 of the bytes received.
        actual: B256,
    },
    /// The image's owner revoked it (its enclave key leaked or its code is unsafe): no proof
    /// signed by its enclave signer can be trusted any more, whenever it settled.
    #[error(
        "image {image} of task {task} was revoked by its owner: its enclave signer {signer} is          no longer trusted, so this proof proves nothing; do not use the result"
    )]
    ImageRevoked {
        /// The task.
        task: TaskId,
        /// The revoked image.
        image: ImageId,
        /// Its enclave signer.
        signer: Address,
    },
    /// The proof names another result CID than the one relayed with it.
    #[error(
        "the proof of task {task} was signed for another result CID than {cid}: the result is \
         not where the proof says; do not use it"
    )]
    ResultCidMismatch {
        /// The task.
        task: TaskId,
        /// The CID relayed with the proof.
        cid: String,
    },
    /// The store returned result bytes that do not match the result's CID.
    #[error(
        "the store returned altered bytes for the result {cid} of task {task} ({detail}): the \
         stored result was tampered with; do not use it"
    )]
    ResultTampered {
        /// The task.
        task: TaskId,
        /// The result CID in the proof.
        cid: String,
        /// What did not match.
        detail: String,
    },
    /// The proof binds another input than the one submitted.
    #[error(
        "the proof of task {task} is for input hash {proven}, but the task was submitted with \
         {submitted}: the node ran something else; do not use the result"
    )]
    InputHashMismatch {
        /// The task.
        task: TaskId,
        /// The input hash on chain.
        submitted: B256,
        /// The input hash in the proof.
        proven: B256,
    },
    /// The proof names other code than the code the requester sent (runner images).
    #[error(
        "the proof of task {task} names code hash {proven}, but the code you sent hashes to \
         {sent}: the enclave did not run your code; do not use the result"
    )]
    CodeHashMismatch {
        /// The task.
        task: TaskId,
        /// keccak256 of the code in the request.
        sent: B256,
        /// The code hash in the proof.
        proven: B256,
    },
    /// The chain's id is not the one the deployment file was written for.
    #[error(
        "the chain at the RPC URL has id {actual}, but the deployment file is for chain \
         {expected}: point ECLD_RPC at the right chain or use that chain's deployment file"
    )]
    WrongChain {
        /// Chain id in the deployment.
        expected: u64,
        /// Chain id reported by the RPC.
        actual: u64,
    },
}

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client configuration was found.
    #[error(
        "no local stack found (looked for {}): start one with `ecld up`, or pass --config / \
         set ECLD_CONFIG, or set ECLD_RPC, ECLD_STORE and ECLD_DEPLOYMENT",
        display_paths(searched)
    )]
    NoStack {
        /// The files that were looked for.
        searched: Vec<PathBuf>,
    },
    /// The configuration file could not be read.
    #[error(
        "cannot read the client configuration {}: {source}; start a local stack with `ecld up` \
         (it writes this file) or pass --config",
        path.display()
    )]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration file could not be written.
    #[error("cannot write {}: {source}; check the directory's permissions", path.display())]
    ConfigWrite {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration or deployment file is not valid.
    #[error("{} is not a valid ecld file: {reason}; fix it or recreate it with `ecld up`", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A key or identity file is missing or invalid.
    #[error("cannot load the key {}: {reason}; create keys with `ecld keys new` or point ECLD_KEY / ECLD_IDENTITY at them", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong (never the secret itself).
        reason: String,
    },
    /// The configuration names no key, but the operation needs one.
    #[error(
        "this needs your {what}, but no file is configured: set ECLD_KEY and ECLD_IDENTITY, or use the demo keys `ecld up` wrote"
    )]
    NoKey {
        /// Which key was missing.
        what: &'static str,
    },
    /// The chain's JSON-RPC failed.
    #[error(
        "the chain at {url} did not answer as expected ({reason}); is it running? (`ecld up` starts one)"
    )]
    Chain {
        /// The RPC URL.
        url: String,
        /// The transport or RPC error.
        reason: String,
    },
    /// A transaction was rejected by a contract.
    #[error("the {call} transaction was rejected: {reason}")]
    Reverted {
        /// The contract call.
        call: &'static str,
        /// The revert reason or error.
        reason: String,
    },
    /// The store failed.
    #[error("the store at {url} failed ({reason}); is it running? (`ecld up` starts one)")]
    Store {
        /// The store URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The CAS refused or failed.
    #[error("the CAS at {url} failed ({reason}); is it running? (`ecld up` starts one)")]
    Cas {
        /// The CAS URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Encryption or decryption failed.
    #[error("{0}")]
    Crypto(String),
    /// The result cannot be decrypted with this identity.
    #[error(
        "the result of task {task} cannot be decrypted with the identity {recipient}: it was \
         encrypted to another recipient; use the identity the task was submitted with"
    )]
    NotForYou {
        /// The task.
        task: TaskId,
        /// The recipient of the identity tried.
        recipient: String,
    },
    /// No image matches the name or id.
    #[error(
        "no image named or with id `{0}` in the ImageRegistry: list images with `ecld image list`"
    )]
    ImageNotFound(String),
    /// The name matches more than one image.
    #[error("`{name}` names {count} images; pass the image id instead (see `ecld image list`)")]
    ImageAmbiguous {
        /// The name given.
        name: String,
        /// How many images have it.
        count: usize,
    },
    /// The task does not exist on chain.
    #[error("task {0} does not exist on this chain; list your tasks with `ecld task list`")]
    TaskNotFound(TaskId),
    /// The task has no result yet.
    #[error("task {task} has no result yet (state: {state}); wait with `ecld task watch {task}`")]
    NoResult {
        /// The task.
        task: TaskId,
        /// Its current state.
        state: String,
    },
    /// Waiting for a task ran out of time.
    #[error(
        "task {task} is still {state} after {waited:?}: keep waiting with `ecld task watch {task}`, \
         or after its deadline get the price back with `ecld task reclaim {task}`"
    )]
    WaitTimeout {
        /// The task.
        task: TaskId,
        /// Its state at the time.
        state: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The wallet and the deposit together do not cover the price.
    #[error(
        "your balance of {balance} tokens (wallet plus deposit) does not cover the price {price}: fund {account} first (the demo key from `ecld up` is funded)"
    )]
    InsufficientFunds {
        /// The paying account.
        account: Address,
        /// Its wallet balance plus the part of its deposit this client has not promised to
        /// other submissions.
        balance: String,
        /// The price.
        price: String,
    },
    /// [`crate::Client::submit_many`] submitted some of the tasks, then failed.
    #[error(
        "{} of {total} tasks were submitted ({}) before the next failed: {source}; submit only \
         the {} not submitted again",
        submitted.len(),
        task_range(submitted),
        total.saturating_sub(submitted.len())
    )]
    PartlySubmitted {
        /// The tasks submitted, in request order (the first `submitted.len()` requests).
        submitted: Vec<crate::Submitted>,
        /// How many tasks were asked for.
        total: usize,
        /// Why the next one failed.
        source: Box<Error>,
    },
    /// A deposit of more than the wallet holds.
    #[error(
        "cannot deposit {amount} tokens: the wallet of {account} holds {balance}; deposit at most {balance}, or fund the account first"
    )]
    InsufficientWallet {
        /// The depositing account.
        account: Address,
        /// Its wallet's token balance (base units).
        balance: U256,
        /// The amount asked to deposit (base units).
        amount: U256,
    },
    /// A withdrawal of more than the deposit holds.
    #[error(
        "cannot withdraw {amount} tokens: the deposit of {account} in the Marketplace holds {balance}; {}",
        if balance.is_zero() {
            "there is nothing to withdraw (deposit first with `ecld deposit`)".to_owned()
        } else {
            format!("withdraw at most {balance} (see `ecld balance`)")
        }
    )]
    InsufficientDeposit {
        /// The withdrawing account.
        account: Address,
        /// Its deposit (base units).
        balance: U256,
        /// The amount asked to withdraw (base units).
        amount: U256,
    },
    /// A task cannot be reclaimed yet.
    #[error("task {task} cannot be reclaimed: {reason}")]
    CannotReclaim {
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// The proof or result failed verification.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A file could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something on chain has a value the protocol does not allow.
    #[error("unexpected data on chain: {0}; is the deployment file for these contracts?")]
    Protocol(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn task_range(submitted: &[crate::Submitted]) -> String {
    match (submitted.first(), submitted.last()) {
        (Some(a), Some(b)) if a.task == b.task => format!("task {}", a.task),
        (Some(a), Some(b)) => format!("tasks {} to {}", a.task, b.task),
        _ => "none".into(),
    }
}
