//! The store as a service: configuration, [`spawn`], and the handle to a running store.

mod api;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, oneshot};
use tokio::task::JoinHandle;

use crate::StoreError;
use crate::blockstore::BlockStore;

/// Configuration of a store service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Address of the HTTP API and gateway (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory of blocks and pins (created if missing).
    pub data_dir: PathBuf,
    /// Maximum bytes of blocks stored; `None` for no limit.
    pub quota_bytes: Option<u64>,
    /// Maximum file bytes of one `add` request.
    pub max_upload_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5001)),
            data_dir: PathBuf::from("ecld-store"),
            quota_bytes: None,
            max_upload_bytes: 64 << 30,
        }
    }
}

impl StoreConfig {
    /// A configuration for `data_dir` listening on a free loopback port (tests, embedding).
    #[must_use]
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

/// Shared state of the running service.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Arc<BlockStore>,
    /// Adds hold it shared from the first block to the pin; gc holds it exclusively.
    pub(crate) gc_lock: Arc<RwLock<()>>,
    pub(crate) config: StoreConfig,
    pub(crate) peer_id: String,
}

/// A running store. Dropping it stops the service.
#[derive(Debug)]
pub struct StoreHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Opens the data directory, binds the listener and serves the Kubo RPC subset and the
/// gateway in a background task.
pub async fn spawn(config: StoreConfig) -> Result<StoreHandle, StoreError> {
    let dir = config.data_dir.clone();
    let quota = config.quota_bytes;
    let (store, peer_id) = tokio::task::spawn_blocking(move || {
        let store = BlockStore::open(&dir, quota)?;
        let peer_id = peer_id(&dir)?;
        Ok::<_, StoreError>((store, peer_id))
    })
    .await
    .map_err(|e| StoreError::BadRequest(format!("store start-up task failed: {e}")))??;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StoreError::Bind { addr: config.listen, source })?;
    let addr =
        listener.local_addr().map_err(|source| StoreError::Bind { addr: config.listen, source })?;
    tracing::info!(target: "ecld_store", %addr, dir = %config.data_dir.display(), used = store.used(), "store listening");
    let state = Arc::new(State {
        store: Arc::new(store),
        gc_lock: Arc::new(RwLock::new(())),
        config,
        peer_id,
    });
    let app = api::router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(StoreHandle { addr, shutdown: Some(tx), task: Some(task) })
}

impl StoreHandle {
    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API and gateway, e.g. `http://127.0.0.1:5001`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join().await
    }

    /// Waits until the service stops (it stops only on [`StoreHandle::shutdown`] or an I/O
    /// error of the listener).
    pub async fn wait(mut self) -> Result<(), StoreError> {
        self.join().await
    }

    async fn join(&mut self) -> Result<(), StoreError> {
        let Some(task) = self.task.take() else { return Ok(()) };
        match task.await {
            Ok(result) => result.map_err(|e| StoreError::io("serve the store API", e)),
            Err(e) => Err(StoreError::BadRequest(format!("store task failed: {e}"))),
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A stable identifier of this store, kept in the data directory. It names the store in
/// `/api/v0/id`; it is not a libp2p identity (the store does not speak libp2p).
fn peer_id(dir: &Path) -> Result<String, StoreError> {
    use sha2::{Digest, Sha256};
    let path = dir.join("peer-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{}|{}|{now}", dir.display(), std::process::id());
    let digest = Sha256::digest(seed.as_bytes());
    let mh = cid::multihash::Multihash::<64>::wrap(crate::unixfs::SHA2_256, &digest)
        .map_err(|e| StoreError::BadRequest(format!("peer id: {e}")))?;
    let id = cid::Cid::new_v1(0x72, mh).to_string();
    std::fs::write(&path, &id)
        .map_err(|e| StoreError::io(format!("write {}", path.display()), e))?;
    Ok(id)
}
