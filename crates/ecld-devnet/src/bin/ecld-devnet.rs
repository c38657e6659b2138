//! `ecld-devnet`: the devnet on its own, for tools and tests that want a process (the same
//! library `ecld devnet` runs). Prints `listening on http://… ws://…` as its first stdout line.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use ecld_devnet::DevnetConfig;

/// Ethereum JSON-RPC development chain (revm), hardhat-compatible accounts and chain id.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port (0: any free port).
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Chain id.
    #[arg(long, default_value_t = ecld_devnet::DEFAULT_CHAIN_ID)]
    chain_id: u64,
    /// Number of dev accounts.
    #[arg(long, default_value_t = 20)]
    accounts: u32,
    /// Mine every SECONDS instead of one block per transaction.
    #[arg(long, value_name = "SECONDS")]
    block_time: Option<f64>,
    /// Persist the chain in DIR (survives restarts and crashes).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let block_time = match args.block_time {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--block-time must be a positive number of seconds, got {s}"),
        None => None,
    };
    let config = DevnetConfig {
        bind: SocketAddr::new(args.host, args.port),
        chain_id: args.chain_id,
        accounts: args.accounts,
        block_time,
        state_dir: args.state,
        ..DevnetConfig::default()
    };
    let devnet = ecld_devnet::spawn(config).await?;
    println!("listening on {} {}", devnet.url(), devnet.ws_url());
    shutdown_signal().await;
    devnet.shutdown().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return ctrl_c.await.unwrap_or(());
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
