#![doc = include_str!("../README.md")]

mod accounts;
mod chain;
mod config;
mod error;
mod node;
mod persist;
mod rpc;
mod server;

use std::{net::SocketAddr, sync::Arc};

use tokio::{sync::watch, task::JoinHandle};

pub use accounts::DevAccount;
pub use config::{DEFAULT_CHAIN_ID, DevnetConfig, TEST_MNEMONIC};
pub use error::DevnetError;

/// Starts a devnet: opens (or replays) the chain, binds the JSON-RPC server and, with a
/// `block_time`, starts the interval miner. Must be called inside a Tokio runtime.
pub async fn spawn(config: DevnetConfig) -> Result<DevnetHandle, DevnetError> {
    let cfg = config.clone();
    let node = tokio::task::spawn_blocking(move || node::Node::open(&cfg))
        .await
        .map_err(|e| DevnetError::Server(e.to_string()))??;
    let node = Arc::new(node);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| DevnetError::Bind { addr: config.bind, source })?;
    let addr =
        listener.local_addr().map_err(|source| DevnetError::Bind { addr: config.bind, source })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app =
        server::router(server::AppState { node: Arc::clone(&node), shutdown: shutdown_rx.clone() });
    let mut stop = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    let miner = config
        .block_time
        .map(|every| tokio::spawn(server::interval_miner(Arc::clone(&node), every, shutdown_rx)));
    tracing::info!(target: "ecld_devnet", %addr, chain_id = config.chain_id, "devnet listening");
    Ok(DevnetHandle {
        addr,
        node,
        shutdown: shutdown_tx,
        server: Some(server),
        miner,
        chain_id: config.chain_id,
    })
}

/// A running devnet. Dropping it stops the server in the background; [`DevnetHandle::shutdown`]
/// stops it and waits.
#[derive(Debug)]
pub struct DevnetHandle {
    addr: SocketAddr,
    node: Arc<node::Node>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    miner: Option<JoinHandle<()>>,
    chain_id: u64,
}

impl DevnetHandle {
    /// The bound address (the real port when the config asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// HTTP JSON-RPC endpoint, e.g. `http://127.0.0.1:8545`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// WebSocket JSON-RPC endpoint (same port), e.g. `ws://127.0.0.1:8545`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The unlocked dev accounts, in mnemonic order (index 0 first).
    pub fn accounts(&self) -> &[DevAccount] {
        &self.node.accounts
    }

    /// The dev accounts' private keys as 0x-prefixed hex, in mnemonic order. Publicly known
    /// keys: for this devnet only.
    pub fn private_keys(&self) -> Vec<String> {
        self.node.accounts.iter().map(DevAccount::private_key_hex).collect()
    }

    /// Stops accepting requests, closes WebSocket sessions and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), DevnetError> {
        let _ = self.shutdown.send(true);
        if let Some(miner) = self.miner.take() {
            let _ = miner.await;
        }
        match self.server.take() {
            Some(server) => match server.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DevnetError::Server(e.to_string())),
                Err(e) => Err(DevnetError::Server(e.to_string())),
            },
            None => Ok(()),
        }
    }
}

impl Drop for DevnetHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
