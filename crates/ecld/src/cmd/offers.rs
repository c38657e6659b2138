//! `ecld offers`: what nodes offer on the Marketplace.

use super::connect::ConnectArgs;
use crate::output;

/// Arguments of `ecld offers`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  ecld offers list\n  ecld offers list --json")]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Every active offer: node, image, slots, limits, price.
    List,
}

/// Runs `ecld offers`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.connect.connect().await?;
    match args.command {
        Command::List => {
            let offers = client.offers().await?;
            output::emit(&offers, |os| {
                if os.is_empty() {
                    return "no active offers: start a node with `ecld node` (or `ecld up`)"
                        .to_owned();
                }
                let mut s = format!(
                    "{:>5}  {:<42}  {:<12}  {:>5}  {:>7}  {:>8}  {}",
                    "OFFER", "NODE", "IMAGE", "SLOTS", "MEM MB", "MAX S", "PRICE"
                );
                for o in os {
                    let image = o.image.map_or_else(|| "any".to_owned(), |i| i.to_string());
                    s.push_str(&format!(
                        "\n{:>5}  {:<42}  {:<12}  {:>5}  {:>7}  {:>8}  {}",
                        o.id,
                        o.node.to_string(),
                        &image[..12.min(image.len())],
                        o.slots,
                        o.memory_mb,
                        o.max_runtime_s,
                        o.price
                    ));
                }
                s
            })
        }
    }
}
