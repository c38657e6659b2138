//! `ecld proof`: sign and verify EIP-712 proofs of execution.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ecld_crypto::{ProofDomain, ProofSignature, ResultProof, SignerKey};
use ecld_types::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::output;

/// Arguments of `ecld proof`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A proof file is JSON with the EIP-712 Result fields:
  {\"taskId\": 1, \"imageId\": \"0x…32 bytes\", \"inputHash\": \"0x…\", \"codeHash\": \"0x…\",
   \"resultHash\": \"0x…\", \"status\": 0, \"runtimeMs\": 12}

Examples:
  ecld proof sign --key eth.key --chain-id 31337 --contract 0xMarket... proof.json > signed.json
  ecld proof verify --signer 0xEnclave... --chain-id 31337 --contract 0xMarket... signed.json

`sign` prints a signed-proof JSON document; `verify` accepts it (or a bare proof file with
--signature). The chain id and contract are always taken from the command line, never from
the file, so a proof for another chain or contract fails.")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: ProofCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ProofCommand {
    /// Sign a proof with a secp256k1 key (the image's enclave signer).
    Sign(SignArgs),
    /// Check that a proof was signed by the expected signer for this chain and contract.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct DomainArgs {
    /// Chain id of the chain the Marketplace contract is on.
    #[arg(long, value_name = "ID")]
    chain_id: u64,
    /// The Marketplace contract address (EIP-712 verifying contract).
    #[arg(long, value_name = "ADDRESS")]
    contract: Address,
}

impl DomainArgs {
    const fn domain(&self) -> ProofDomain {
        ProofDomain { chain_id: self.chain_id, verifying_contract: self.contract }
    }
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The signer key file (0x + 64 hex digits, mode 0600).
    #[arg(long, short, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    domain: DomainArgs,
    /// The proof JSON file; standard input when `-` or absent.
    #[arg(value_name = "PROOF")]
    proof: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The address the proof must recover to (the image's enclave signer).
    #[arg(long, value_name = "ADDRESS")]
    signer: Address,
    #[command(flatten)]
    domain: DomainArgs,
    /// The signature (0x + 130 hex digits); needed when the file is a bare proof.
    #[arg(long, value_name = "HEX")]
    signature: Option<ProofSignature>,
    /// A signed-proof JSON (from `ecld proof sign`) or a bare proof JSON; standard input
    /// when `-` or absent.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// What `ecld proof sign` prints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedProof {
    proof: ResultProof,
    domain: ProofDomain,
    digest: B256,
    signature: ProofSignature,
    signer: Address,
}

/// Either a signed document or a bare proof.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProofFile {
    Signed(SignedProof),
    Bare(ResultProof),
}

/// Runs `ecld proof`.
#[allow(clippy::unused_async, reason = "uniform command signature")]
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        ProofCommand::Sign(a) => sign(&a),
        ProofCommand::Verify(a) => verify(&a),
    }
}

fn read_json(path: Option<&Path>) -> anyhow::Result<String> {
    match path.filter(|p| p.as_os_str() != "-") {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the proof file {}", p.display())),
        None => std::io::read_to_string(std::io::stdin()).context("cannot read standard input"),
    }
}

fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let key = SignerKey::load(&args.key)?;
    let text = read_json(args.proof.as_deref())?;
    let proof: ResultProof = serde_json::from_str(&text).context(
        "the proof JSON is not valid: it needs taskId, the spec's imageId, inputHash, \
         inputCidHash, memoryMb, maxRuntimeS and deadline, then codeHash, resultHash, \
         resultCidHash (hashes: 0x + 64 hex digits), status (a defined status code) and runtimeMs",
    )?;
    let domain = args.domain.domain();
    let signature = proof.sign(&key, &domain)?;
    let signed = SignedProof {
        digest: proof.signing_hash(&domain),
        proof,
        domain,
        signature,
        signer: key.address(),
    };
    tracing::info!(target: "ecld::proof", task = proof.task_id, signer = %signed.signer, "signed proof");
    // The signed document is the data; print it as JSON either way (pretty for people).
    if output::json() {
        output::emit(&signed, |_| String::new())
    } else {
        println!("{}", serde_json::to_string_pretty(&signed)?);
        Ok(())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Verified {
    valid: bool,
    signer: Address,
    task_id: u64,
    status: u16,
    status_name: &'static str,
    digest: B256,
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let text = read_json(args.file.as_deref())?;
    let file: ProofFile = serde_json::from_str(&text)
        .context("the file is neither a signed proof (from `ecld proof sign`) nor a proof JSON")?;
    let (proof, signature) = match file {
        ProofFile::Signed(s) => (s.proof, args.signature.unwrap_or(s.signature)),
        ProofFile::Bare(p) => {
            let sig = args
                .signature
                .context("the file is a bare proof without a signature; pass --signature 0x…")?;
            (p, sig)
        }
    };
    let domain = args.domain.domain();
    proof.verify(&domain, &signature, args.signer)?;
    let view = Verified {
        valid: true,
        signer: args.signer,
        task_id: proof.task_id,
        status: proof.status.code(),
        status_name: proof.status.name(),
        digest: proof.signing_hash(&domain),
    };
    output::emit(&view, |v| {
        format!(
            "valid: task {} signed by {} (status {} {}) for chain {} contract {}",
            v.task_id,
            v.signer,
            v.status,
            v.status_name,
            domain.chain_id,
            domain.verifying_contract
        )
    })
}
