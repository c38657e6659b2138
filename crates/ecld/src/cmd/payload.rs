//! `ecld payload`.

/// Arguments of `ecld payload`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `ecld payload`.
#[allow(clippy::unused_async)]
pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ecld payload` is being built; see `ecld --help` for what works today")
}
