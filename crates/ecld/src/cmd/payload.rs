//! `ecld payload`: build and inspect task input payloads.

use std::path::PathBuf;

use anyhow::Context as _;
use ecld_crypto::{AgeIdentity, AgeRecipient, Payload};
use ecld_types::{Address, keccak256};
use serde::Serialize;

use crate::{cmd::envelope::write_output, output};

/// Arguments of `ecld payload`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld payload build --input data.txt --recipient age1... --requester 0xAbC... -o payload.bin
  ecld payload build --input data.csv --code script.py --identity keys/identity.txt \\
      --requester 0xAbC... --encrypt-to age1image... -o input.age
  ecld payload inspect payload.bin
  ecld payload inspect input.age -i image-identity.txt --json

The byte layout is documented in docs/protocol.md.")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: PayloadCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PayloadCommand {
    /// Build a payload from the program input, optional code and your result recipient.
    Build(BuildArgs),
    /// Show what a payload holds (decrypting it first when given an identity).
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The program's input (its standard input when it runs).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Code for a runner image (WASM module or script source). Omit for images that run
    /// their own program.
    #[arg(long, value_name = "FILE")]
    code: Option<PathBuf>,
    /// Where the result goes: your age recipient (`age1…`).
    #[arg(
        long,
        value_name = "RECIPIENT",
        conflicts_with = "identity",
        required_unless_present = "identity"
    )]
    recipient: Option<String>,
    /// Take the result recipient from this age identity file instead.
    #[arg(long, short, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The Ethereum address that will submit the task.
    #[arg(long, value_name = "ADDRESS")]
    requester: Address,
    /// Encrypt the payload to this recipient (the image's enclave key) as an age file.
    #[arg(long, value_name = "RECIPIENT")]
    encrypt_to: Option<String>,
    /// With --encrypt-to: ASCII-armor the age file.
    #[arg(long, requires = "encrypt_to")]
    armor: bool,
    /// Output file; standard output when absent or `-`.
    #[arg(long, short, value_name = "OUT")]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// The payload file (plain, or an age file when --identity is given).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Decrypt the file with this age identity first.
    #[arg(long, short, value_name = "IDENTITY")]
    identity: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PayloadView {
    format_version: u8,
    requester: Address,
    recipient: String,
    code_len: Option<usize>,
    code_hash: String,
    input_len: usize,
    input_hash: String,
    encoded_len: usize,
}

impl PayloadView {
    fn of(p: &Payload) -> Self {
        Self {
            format_version: ecld_crypto::payload::FORMAT_VERSION,
            requester: p.requester,
            recipient: p.recipient.clone(),
            code_len: p.code.as_ref().map(Vec::len),
            code_hash: p.code_hash().to_string(),
            input_len: p.input.len(),
            input_hash: keccak256(&p.input).to_string(),
            encoded_len: p.encoded_len(),
        }
    }

    fn render(&self) -> String {
        let code = match self.code_len {
            Some(n) => format!("{n} bytes, keccak256 {}", self.code_hash),
            None => "none (the image runs its own program; codeHash is zero)".to_owned(),
        };
        format!(
            "payload format v{}, {} bytes\n  requester  {}\n  recipient  {}\n  code       {code}\n  input      {} bytes, keccak256 {}",
            self.format_version,
            self.encoded_len,
            self.requester,
            self.recipient,
            self.input_len,
            self.input_hash
        )
    }
}

/// Runs `ecld payload`.
#[allow(clippy::unused_async, reason = "uniform command signature")]
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        PayloadCommand::Build(a) => build(a),
        PayloadCommand::Inspect(a) => inspect(&a),
    }
}

fn read(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} file {}", path.display()))
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let recipient: AgeRecipient = match (&args.recipient, &args.identity) {
        (Some(r), _) => r.parse()?,
        (None, Some(path)) => AgeIdentity::load(path)?.recipient(),
        (None, None) => anyhow::bail!("give --recipient age1… or --identity FILE"),
    };
    let encrypt_to = args.encrypt_to.as_deref().map(str::parse::<AgeRecipient>).transpose()?;
    let code = args.code.as_deref().map(|p| read(p, "code")).transpose()?;
    let input = read(&args.input, "input")?;
    let payload = Payload::new(args.requester, &recipient, code, input)?;
    let bytes = payload.encode();
    let output = args.output.filter(|p| p.as_os_str() != "-");
    write_output(output.as_deref(), |w| {
        match &encrypt_to {
            Some(to) => {
                ecld_crypto::encrypt(std::slice::from_ref(to), args.armor, bytes.as_slice(), w)?;
            }
            None => w.write_all(&bytes)?,
        }
        Ok(())
    })?;
    let view = PayloadView::of(&payload);
    tracing::info!(target: "ecld::payload", bytes = view.encoded_len, encrypted = encrypt_to.is_some(), "built payload");
    if output.is_some() {
        output::emit(&view, PayloadView::render)?;
    }
    Ok(())
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let raw = read(&args.file, "payload")?;
    let bytes = match &args.identity {
        Some(path) => {
            let identity = AgeIdentity::load(path)?;
            ecld_crypto::envelope::decrypt_bytes(&identity, &raw)?
        }
        None => raw,
    };
    let payload = Payload::decode(&bytes).map_err(|e| {
        let hint =
            if bytes.starts_with(b"age-encryption.org/") || bytes.starts_with(b"-----BEGIN AGE") {
                " (the file is an age file: pass --identity to decrypt it first)"
            } else {
                ""
            };
        anyhow::anyhow!("{e}{hint}")
    })?;
    output::emit(&PayloadView::of(&payload), PayloadView::render)
}
