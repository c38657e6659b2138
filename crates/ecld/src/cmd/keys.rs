//! `ecld keys`: create and show the user's keys.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ecld_crypto::{AgeIdentity, SignerKey};
use serde::Serialize;

use crate::output;

/// File name of the age identity inside a key directory.
pub(crate) const IDENTITY_FILE: &str = "identity.txt";
/// File name of the Ethereum key inside a key directory.
pub(crate) const ETH_KEY_FILE: &str = "eth.key";

/// Arguments of `ecld keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld keys new                       create keys in the default directory
  ecld keys new --out ./keys          create keys in ./keys
  ecld keys show --dir ./keys --json  print the public halves as JSON")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create an age identity (to receive results) and an Ethereum key (to pay and submit).
    ///
    /// Writes `identity.txt` (age-keygen format) and `eth.key` (0x + 64 hex digits), both
    /// readable only by you (mode 0600). Existing keys are never overwritten.
    New {
        /// Directory for the key files (created if missing).
        #[arg(long, short, value_name = "DIR", default_value_os_t = default_key_dir())]
        out: PathBuf,
    },
    /// Print the public halves of your keys: age recipient and Ethereum address.
    Show {
        /// Directory that holds `identity.txt` and `eth.key`.
        #[arg(long, short, value_name = "DIR", default_value_os_t = default_key_dir())]
        dir: PathBuf,
        /// An age identity file elsewhere (overrides DIR/identity.txt).
        #[arg(long, short, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// An Ethereum key file elsewhere (overrides DIR/eth.key).
        #[arg(long, short, value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

#[derive(Debug, Serialize)]
struct KeysView {
    identity: Option<PathBuf>,
    recipient: Option<String>,
    key: Option<PathBuf>,
    address: Option<String>,
}

impl KeysView {
    fn render(&self) -> String {
        let mut out = String::new();
        if let (Some(r), Some(p)) = (&self.recipient, &self.identity) {
            out.push_str(&format!("age recipient    {r}\n  identity file  {}\n", p.display()));
        }
        if let (Some(a), Some(p)) = (&self.address, &self.key) {
            out.push_str(&format!("ethereum address {a}\n  key file       {}\n", p.display()));
        }
        out
    }
}

/// `$XDG_DATA_HOME/ecld/keys`, else `~/.local/share/ecld/keys`, else `./.ecld/keys`.
pub(crate) fn default_key_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("ecld/keys");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/ecld/keys"),
        None => PathBuf::from(".ecld/keys"),
    }
}

/// Runs `ecld keys`.
#[allow(clippy::unused_async, reason = "uniform command signature")]
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::New { out } => new(&out),
        KeysCommand::Show { dir, identity, key } => show(&dir, identity, key),
    }
}

fn new(dir: &Path) -> anyhow::Result<()> {
    let identity_path = dir.join(IDENTITY_FILE);
    let key_path = dir.join(ETH_KEY_FILE);
    for path in [&identity_path, &key_path] {
        anyhow::ensure!(
            !path.exists(),
            "{} already exists; keys are never overwritten. Use `ecld keys show --dir {}` to \
             see them, or `--out` another directory",
            path.display(),
            dir.display()
        );
    }
    create_private_dir(dir)?;
    let identity = AgeIdentity::generate();
    identity.save(&identity_path)?;
    let key = SignerKey::generate();
    key.save(&key_path)?;
    tracing::info!(target: "ecld::keys", dir = %dir.display(), "created keys");
    let view = KeysView {
        identity: Some(identity_path),
        recipient: Some(identity.recipient().to_string()),
        key: Some(key_path),
        address: Some(key.address().to_string()),
    };
    output::emit(&view, KeysView::render)
}

fn show(dir: &Path, identity: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<()> {
    let identity_path = identity.unwrap_or_else(|| dir.join(IDENTITY_FILE));
    let key_path = key.unwrap_or_else(|| dir.join(ETH_KEY_FILE));
    let identity = AgeIdentity::load(&identity_path)?;
    let key = SignerKey::load(&key_path)?;
    let view = KeysView {
        identity: Some(identity_path),
        recipient: Some(identity.recipient().to_string()),
        key: Some(key_path),
        address: Some(key.address().to_string()),
    };
    output::emit(&view, KeysView::render)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create key directory {}", dir.display()))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create key directory {}", dir.display()))
    }
}
