//! Helpers shared by the test modules.

use std::path::PathBuf;

use ecld_store::{KuboClient, StoreConfig, StoreHandle};

/// The deterministic content of the vectors: byte i is i % 251.
pub(crate) fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A store on a free port in a fresh directory, and a client of it.
pub(crate) async fn store() -> (StoreHandle, KuboClient, tempfile::TempDir) {
    store_with(|_| {}).await
}

/// Like [`store`], with the configuration adjusted by `f`.
pub(crate) async fn store_with(
    f: impl FnOnce(&mut StoreConfig),
) -> (StoreHandle, KuboClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::ephemeral(dir.path().join("store"));
    f(&mut config);
    let handle = ecld_store::spawn(config).await.unwrap();
    let client = KuboClient::new(&handle.url()).unwrap();
    (handle, client, dir)
}
