//! A store that lies is caught: wrong block bytes, a corrupted block file, a wrong add answer.

use axum::Router;
use axum::routing::post;
use ecld_store::{ContentStore, KuboClient, StoreError, unixfs};

use crate::common::{content, store};

/// Serves an HTTP API whose every answer is `body` (200 OK).
async fn liar(body: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/api/v0/{*rest}", post(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn wrong_block_bytes_are_tampered() {
    let client = KuboClient::new(&liar(b"not the content you asked for").await).unwrap();
    let cid = unixfs::file_cid(b"the real content");
    let err = client.cat_bytes(&cid, 1 << 20).await.unwrap_err();
    match err {
        StoreError::Tampered { cid: c, detail } => {
            assert_eq!(c, cid);
            assert!(detail.contains("29 bytes received"), "{detail}");
        }
        other => panic!("expected Tampered, got {other}"),
    }
}

#[tokio::test]
async fn a_wrong_cid_from_add_is_tampered() {
    let answer = br#"{"Name":"file","Hash":"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku","Size":"0"}"#;
    let client = KuboClient::new(&liar(answer).await).unwrap();
    let err = client.add_bytes(b"something else".to_vec().into()).await.unwrap_err();
    assert!(matches!(err, StoreError::Tampered { .. }), "{err}");
}

#[tokio::test]
async fn a_corrupted_block_on_disk_is_detected_by_the_client() {
    let (_h, client, dir) = store().await;
    let data = content(3 * 262_144);
    let cid = client.add_bytes(data.into()).await.unwrap();
    // Flip one byte of the second leaf's file.
    let leaf = unixfs::cid_of(unixfs::RAW, &content(2 * 262_144)[262_144..]);
    let hex: String = leaf.hash().digest().iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.path().join("store/blocks").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let mut out = Vec::new();
    let err = client.cat(&cid, &mut out, Default::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Tampered { cid: c, .. } if c == leaf), "{err}");
    assert_eq!(out.len(), 262_144, "only the verified first leaf was written");
}
