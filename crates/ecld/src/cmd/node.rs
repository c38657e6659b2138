//! `ecld node`: run an EC Node (offers, claims, enclaves, proofs) or write its example config.

use std::path::PathBuf;

use anyhow::Context;

use crate::output;

/// Arguments of `ecld node`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld node init                      write ecld-node.toml, a commented example
  ecld node -c ecld-node.toml         register the offers and take tasks until Ctrl-C
  ECLD_NODE_RPC_URL=http://10.0.0.5:8545 ecld node

Every setting of the file can be overridden by an ECLD_NODE_* environment variable (listed at
the top of the example). SIGTERM or Ctrl-C stops taking tasks, finishes or releases the tasks
held, and exits; the journal in the data directory resumes anything left after a crash.")]
pub(crate) struct Args {
    /// The configuration file (when running the node).
    #[arg(short, long, env = "ECLD_NODE_CONFIG", default_value = "ecld-node.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a commented example configuration file.
    Init {
        /// Where to write it.
        #[arg(short, long, default_value = "ecld-node.toml")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run the node until SIGTERM or Ctrl-C (the default).
    Run,
}

/// Runs `ecld node`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command.unwrap_or(Command::Run) {
        Command::Init { out, force } => {
            if out.exists() && !force {
                anyhow::bail!("{} exists; pass --force to replace it", out.display());
            }
            std::fs::write(&out, ecld_node::config::EXAMPLE)
                .with_context(|| format!("cannot write {}", out.display()))?;
            output::emit(&serde_json::json!({ "config": out }), |_| {
                format!(
                    "wrote {}: edit the chain, store, CAS and offers, then `ecld node run`",
                    out.display()
                )
            })
        }
        Command::Run => {
            let cfg = ecld_node::NodeConfig::load(&args.config)?;
            let node = ecld_node::spawn(cfg).await?;
            output::emit(
                &serde_json::json!({
                    "address": node.address,
                    "offers": node.offers,
                    "metrics": node.metrics_addr,
                }),
                |_| {
                    let offers: Vec<String> = node.offers.iter().map(ToString::to_string).collect();
                    format!(
                        "node {} running, offers {}{}",
                        node.address,
                        offers.join(", "),
                        node.metrics_addr
                            .map(|a| format!(", metrics http://{a}/metrics"))
                            .unwrap_or_default()
                    )
                },
            )?;
            let stopper = node.stopper();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!(target: "ecld", "stop signal received");
                let _ = stopper.send(true);
            });
            node.wait().await?;
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
