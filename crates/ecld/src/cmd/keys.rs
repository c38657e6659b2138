//! `ecld keys`.

/// Arguments of `ecld keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `ecld keys`.
#[allow(clippy::unused_async)]
pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ecld keys` is being built; see `ecld --help` for what works today")
}
