#![doc = include_str!("../README.md")]

pub mod api;
mod audit;
pub mod client;
mod error;
mod secrets;
mod server;
mod store;

use std::{
    fmt,
    net::SocketAddr,
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

pub use client::CasClient;
pub use error::CasError;
pub use secrets::ImageSecrets;

/// The admin bearer token. `Debug` redacts it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// A random 32-byte token (hex).
    pub fn generate() -> Self {
        Self(hex::encode(rand::random::<[u8; 32]>()))
    }

    /// The token text, to send or store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison.
    pub(crate) fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// CAS configuration (serde: TOML or JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Directory of persistent state (sessions, nonces, master key, audit log).
    pub state_dir: PathBuf,
    /// Bearer token for admin endpoints (session creation). Must not be empty.
    pub admin_token: AdminToken,
    /// The CAS identity key file (secp256k1, one hex line, 0600); created if absent.
    /// Default: `<state_dir>/identity.key`.
    #[serde(default)]
    pub identity_key_file: Option<PathBuf>,
    /// How long a nonce stays valid, seconds. Default 300.
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_secs: u64,
    /// Check DCAP collateral as if it were this Unix time instead of now. Only for replaying
    /// recorded quotes (tests); a production CAS leaves it unset.
    #[serde(default)]
    pub danger_evidence_time: Option<u64>,
}

const fn default_nonce_ttl() -> u64 {
    300
}

/// Most outstanding (unused, unexpired) nonces kept; beyond it `POST /v1/nonce` answers 503.
pub const MAX_OUTSTANDING_NONCES: usize = 100_000;

impl CasConfig {
    /// A config listening on `listen` with state in `state_dir` and the given admin token.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>, admin_token: AdminToken) -> Self {
        Self {
            listen,
            state_dir: state_dir.into(),
            admin_token,
            identity_key_file: None,
            nonce_ttl_secs: default_nonce_ttl(),
            danger_evidence_time: None,
        }
    }
}

/// A running CAS.
#[derive(Debug)]
pub struct CasHandle {
    addr: SocketAddr,
    identity: Address,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl CasHandle {
    /// The bound address.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:7400`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CAS identity address (pin it in image manifests).
    pub const fn identity(&self) -> Address {
        self.identity
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops (it runs until [`Self::shutdown`] or the runtime ends).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Starts a CAS: opens (or creates) the state directory and the identity key, binds, serves.
pub async fn spawn(config: CasConfig) -> Result<CasHandle, CasError> {
    server::spawn(config).await
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
