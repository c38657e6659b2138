//! `ecld encrypt` and `ecld decrypt`: age envelopes, streamed.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, IsTerminal, Read, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use ecld_crypto::{AgeIdentity, AgeRecipient};

/// Arguments of `ecld encrypt`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld encrypt --to age1... input.bin -o input.age
  tar c dir | ecld encrypt --to age1... --armor > dir.tar.age
  ecld encrypt --to \"$(ecld keys show --json | jq -r .recipient)\" notes.txt -o notes.age

The output is a standard age v1 file: `age -d -i identity.txt` decrypts it too.")]
pub(crate) struct EncryptArgs {
    /// Recipient to encrypt to (age X25519, `age1…`); repeat for several.
    #[arg(long, short = 'r', value_name = "RECIPIENT", required = true)]
    to: Vec<String>,
    /// Write ASCII armor (PEM-like text) instead of binary.
    #[arg(long, short)]
    armor: bool,
    /// File to encrypt; standard input when absent or `-`.
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
    /// Where to write the encrypted file; standard output when absent or `-`.
    #[arg(long, short, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// Arguments of `ecld decrypt`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld decrypt -i ~/.local/share/ecld/keys/identity.txt result.age -o result.txt
  ecld decrypt -i identity.txt < result.age

Binary and armored files are both accepted. With -o, the output appears only once the whole
file has decrypted and authenticated; on standard output, discard what was printed if the
command fails.")]
pub(crate) struct DecryptArgs {
    /// Your age identity file (`AGE-SECRET-KEY-1…`, as written by `ecld keys new` or
    /// `age-keygen`).
    #[arg(long, short, value_name = "IDENTITY")]
    identity: PathBuf,
    /// File to decrypt; standard input when absent or `-`.
    #[arg(value_name = "IN")]
    input: Option<PathBuf>,
    /// Where to write the plaintext; standard output when absent or `-`.
    #[arg(long, short, value_name = "OUT")]
    output: Option<PathBuf>,
}

/// Runs `ecld encrypt`.
pub(crate) async fn run_encrypt(args: EncryptArgs) -> anyhow::Result<()> {
    let recipients =
        args.to.iter().map(|r| r.parse::<AgeRecipient>()).collect::<Result<Vec<_>, _>>()?;
    let output = dash_is_none(args.output);
    if output.is_none() && !args.armor && io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write binary ciphertext to a terminal; add --armor, use -o FILE, or \
             redirect standard output"
        );
    }
    let input = dash_is_none(args.input);
    tokio::task::spawn_blocking(move || {
        let reader = open_input(input.as_deref())?;
        let n = write_output(output.as_deref(), |w| {
            ecld_crypto::encrypt(&recipients, args.armor, reader, w).map_err(Into::into)
        })?;
        tracing::info!(target: "ecld::envelope", bytes = n, "encrypted");
        Ok(())
    })
    .await?
}

/// Runs `ecld decrypt`.
pub(crate) async fn run_decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let identity = AgeIdentity::load(&args.identity)?;
    let input = dash_is_none(args.input);
    let output = dash_is_none(args.output);
    tokio::task::spawn_blocking(move || {
        let reader = open_input(input.as_deref())?;
        let n = write_output(output.as_deref(), |w| {
            ecld_crypto::decrypt(&identity, reader, w).map_err(Into::into)
        })?;
        tracing::info!(target: "ecld::envelope", bytes = n, "decrypted");
        Ok(())
    })
    .await?
}

fn dash_is_none(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| p.as_os_str() != "-")
}

/// Opens a file, or standard input for `None`.
pub(crate) fn open_input(path: Option<&Path>) -> anyhow::Result<Box<dyn Read + Send>> {
    Ok(match path {
        Some(p) => Box::new(BufReader::new(
            File::open(p).with_context(|| format!("cannot open input file {}", p.display()))?,
        )),
        None => Box::new(io::stdin()),
    })
}

/// Streams into `path` (via a temporary file renamed on success, so a failed run leaves
/// nothing behind) or into standard output for `None`.
pub(crate) fn write_output<T>(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        let mut out = BufWriter::new(io::stdout().lock());
        let value = write(&mut out)?;
        out.flush()?;
        return Ok(value);
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Outputs are often decrypted secrets: readable by the user only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = (|| {
        let mut out = BufWriter::new(file);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
