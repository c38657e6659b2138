//! `ecld proof`.

/// Arguments of `ecld proof`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Runs `ecld proof`.
#[allow(clippy::unused_async)]
pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`ecld proof` is being built; see `ecld --help` for what works today")
}
