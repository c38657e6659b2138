//! The command groups of `ecld`, one module each.
//!
//! To add a command group `foo`:
//! 1. create `cmd/foo.rs` with `#[derive(clap::Args)] pub(crate) struct Args` (doc comments
//!    become `--help`; put examples in `#[command(after_help = ...)]`) and
//!    `pub(crate) async fn run(args: Args) -> anyhow::Result<()>`;
//! 2. add `pub(crate) mod foo;` below, a variant to [`Command`] and an arm to [`run`].
//!
//! Output goes through [`crate::output::emit`] (text or `--json`); logs through `tracing`.
//! Return [`Exit`] to end with a specific process exit code after printing the result.

pub(crate) mod bench;
pub(crate) mod cas;
pub(crate) mod connect;
pub(crate) mod devnet;
pub(crate) mod enclave;
pub(crate) mod envelope;
pub(crate) mod funds;
pub(crate) mod image;
pub(crate) mod keys;
pub(crate) mod node;
pub(crate) mod offers;
pub(crate) mod payload;
pub(crate) mod progress;
pub(crate) mod proof;
pub(crate) mod store;
pub(crate) mod task;
pub(crate) mod up;

use clap::Subcommand;

/// Every top-level command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the whole local stack: chain, contracts, store, CAS and a node with the example images.
    Up(up::Args),
    /// Run a task end to end, or each step on its own (submit, watch, verify, fetch, …).
    Task(task::Args),
    /// List, show and publish images (programs with their enclave keys and measurement).
    Image(image::Args),
    /// List the nodes' offers of resources.
    Offers(offers::Args),
    /// Your tokens: in your wallet, and deposited in the Marketplace for tasks to draw on.
    Balance(funds::BalanceArgs),
    /// Move tokens from your wallet into your deposit: tasks then pay their escrow from it,
    /// with no permit each and less gas.
    Deposit(funds::DepositArgs),
    /// Move tokens of your deposit back to your wallet.
    Withdraw(funds::WithdrawArgs),
    /// Measure the stack and write docs/BENCHMARKS.md.
    Bench(bench::Args),
    /// Create and show your keys (age identity for results, Ethereum key for payments).
    Keys(keys::Args),
    /// Encrypt a file to one or more age X25519 recipients (streaming, any size).
    Encrypt(envelope::EncryptArgs),
    /// Decrypt an age file with your identity (armored or binary, detected automatically).
    Decrypt(envelope::DecryptArgs),
    /// Build and inspect task input payloads (input, optional code, result recipient).
    Payload(payload::Args),
    /// Run an EC Node: offer resources, take tasks, run enclaves, relay proofs.
    Node(node::Args),
    /// Sign and verify EIP-712 proofs of execution.
    Proof(proof::Args),
    /// Run the TEE enclave process for one image (started by the node; frames on stdin/stdout).
    Enclave(enclave::Args),
    /// Run the content store (IPFS-compatible CIDs, Kubo RPC subset) or add, fetch and pin in one.
    Store(store::Args),
    /// Run a local Ethereum JSON-RPC development chain (hardhat-compatible accounts).
    Devnet(devnet::Args),
    /// Run the Configuration and Attestation Service, or manage its image sessions.
    Cas(cas::Args),
}

/// Runs the chosen command.
pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => up::run(args).await,
        Command::Task(args) => task::run(args).await,
        Command::Image(args) => image::run(args).await,
        Command::Offers(args) => offers::run(args).await,
        Command::Balance(args) => funds::run_balance(args).await,
        Command::Deposit(args) => funds::run_deposit(args).await,
        Command::Withdraw(args) => funds::run_withdraw(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Encrypt(args) => envelope::run_encrypt(args).await,
        Command::Decrypt(args) => envelope::run_decrypt(args).await,
        Command::Payload(args) => payload::run(args).await,
        Command::Node(args) => node::run(args).await,
        Command::Proof(args) => proof::run(args).await,
        Command::Enclave(args) => enclave::run(args).await,
        Command::Store(args) => store::run(args).await,
        Command::Devnet(args) => devnet::run(args).await,
        Command::Cas(args) => cas::run(args).await,
    }
}

/// The process exit code for a command that failed with `err`, and its class's name (what
/// `--json` errors carry): 4 `rejected` for a proof or result that failed verification,
/// 1 `error` for anything else.
pub(crate) fn exit_code(err: &anyhow::Error) -> (u8, &'static str) {
    if task::rejected(err) { (task::EXIT_REJECTED, "rejected") } else { (1, "error") }
}

/// Ends the process with `code` without printing an error: the command has already told the
/// user what happened (for example a task that finished with a non-success status).
#[derive(Debug)]
pub(crate) struct Exit {
    /// The process exit code.
    pub(crate) code: u8,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {}", self.code)
    }
}

impl std::error::Error for Exit {}
