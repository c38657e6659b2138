//! `ecld devnet`: the embedded Ethereum development chain (JSON-RPC over HTTP and WebSocket).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde::Serialize;

use crate::output;

/// Run a local Ethereum JSON-RPC chain: dev accounts of the test mnemonic with 10 000 ETH
/// each, automine (one block per transaction) or interval mining, hardhat-compatible.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  ecld devnet                                  http://127.0.0.1:8545, chain id 31337, in memory
  ecld devnet --state ~/.ecld/chain            keep the chain across restarts (and crashes)
  ecld devnet --port 0 --block-time 2 --json   any free port, a block every 2 s, ready line as JSON")]
pub(crate) struct Args {
    /// Address to listen on (HTTP and WebSocket share the port).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port; 0 picks a free one (printed in the ready line).
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Chain id.
    #[arg(long, default_value_t = ecld_devnet::DEFAULT_CHAIN_ID)]
    chain_id: u64,
    /// Number of funded dev accounts (m/44'/60'/0'/0/i of the test mnemonic).
    #[arg(long, default_value_t = 20)]
    accounts: u32,
    /// Mine a block every SECONDS with the waiting transactions instead of one per transaction.
    #[arg(long, value_name = "SECONDS")]
    block_time: Option<f64>,
    /// Keep the chain in DIR: every acknowledged transaction survives a restart or a crash.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[derive(Serialize)]
struct Ready {
    url: String,
    ws_url: String,
    chain_id: u64,
    accounts: Vec<String>,
}

/// Runs the devnet until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let block_time = match args.block_time {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--block-time must be a positive number of seconds, got {s}"),
        None => None,
    };
    let config = ecld_devnet::DevnetConfig {
        bind: SocketAddr::new(args.host, args.port),
        chain_id: args.chain_id,
        accounts: args.accounts,
        block_time,
        state_dir: args.state,
        ..ecld_devnet::DevnetConfig::default()
    };
    let handle = ecld_devnet::spawn(config).await?;
    let ready = Ready {
        url: handle.url(),
        ws_url: handle.ws_url(),
        chain_id: handle.chain_id(),
        accounts: handle.accounts().iter().map(|a| a.address().to_string()).collect(),
    };
    output::emit(&ready, |r| {
        format!(
            "listening on {} {} (chain id {}, {} dev accounts of the test mnemonic, first {})",
            r.url,
            r.ws_url,
            r.chain_id,
            r.accounts.len(),
            r.accounts.first().map_or("none", String::as_str)
        )
    })?;
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    };
    stop.await.context("wait for a stop signal")?;
    tracing::info!(target: "ecld", "stopping the devnet");
    handle.shutdown().await?;
    Ok(())
}
