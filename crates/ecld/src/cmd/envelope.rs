//! `ecld encrypt` and `ecld decrypt`.

/// Arguments of `ecld encrypt`.
#[derive(Debug, clap::Args)]
pub(crate) struct EncryptArgs {}

/// Arguments of `ecld decrypt`.
#[derive(Debug, clap::Args)]
pub(crate) struct DecryptArgs {}

/// Runs `ecld encrypt`.
#[allow(clippy::unused_async)]
pub(crate) async fn run_encrypt(_args: EncryptArgs) -> anyhow::Result<()> {
    anyhow::bail!("`ecld encrypt` is being built")
}

/// Runs `ecld decrypt`.
#[allow(clippy::unused_async)]
pub(crate) async fn run_decrypt(_args: DecryptArgs) -> anyhow::Result<()> {
    anyhow::bail!("`ecld decrypt` is being built")
}
