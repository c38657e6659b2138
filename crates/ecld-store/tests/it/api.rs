//! The HTTP API through the verifying client, and raw HTTP for the Kubo wire format.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ecld_store::{AddOptions, CatOptions, ContentStore, StoreError, unixfs};

use crate::common::{content, store, store_with};

#[tokio::test]
async fn add_then_cat_round_trips_and_cids_match_local_computation() {
    let (_h, client, _d) = store().await;
    for len in [0, 1, 262_144, 262_145, 3 * 262_144 + 5] {
        let data = content(len);
        let cid = client.add_bytes(data.clone().into()).await.unwrap();
        assert_eq!(cid, unixfs::file_cid(&data), "len {len}");
        assert_eq!(client.cat_bytes(&cid, len as u64).await.unwrap(), data, "len {len}");
        assert!(client.has(&cid).await.unwrap());
    }
}

#[tokio::test]
async fn two_layer_file_streams_with_progress() {
    let (_h, client, _d) = store().await;
    let len = 174 * 262_144 + 1;
    let data = content(len);
    let up = Arc::new(AtomicU64::new(0));
    let seen = up.clone();
    let options = AddOptions {
        progress: Some(Arc::new(move |done: u64, _total: Option<u64>| {
            seen.store(done, Ordering::SeqCst);
        })),
        total: Some(len as u64),
        ..AddOptions::default()
    };
    let cid = client.add(Box::new(std::io::Cursor::new(data.clone())), options).await.unwrap();
    assert_eq!(up.load(Ordering::SeqCst), len as u64);
    let down = Arc::new(AtomicU64::new(0));
    let seen = down.clone();
    let mut out = Vec::new();
    let options = CatOptions {
        progress: Some(Arc::new(move |done: u64, total: Option<u64>| {
            assert_eq!(total, Some(len as u64));
            seen.store(done, Ordering::SeqCst);
        })),
        max_bytes: None,
    };
    let n = client.cat(&cid, &mut out, options).await.unwrap();
    assert_eq!(n, len as u64);
    assert_eq!(down.load(Ordering::SeqCst), len as u64);
    assert!(out == data, "downloaded bytes differ");
}

#[tokio::test]
async fn cat_bytes_refuses_files_over_the_limit() {
    let (_h, client, _d) = store().await;
    let cid = client.add_bytes(content(1000).into()).await.unwrap();
    let err = client.cat_bytes(&cid, 999).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { limit: 999 }), "{err}");
}

#[tokio::test]
async fn missing_content_is_not_found() {
    let (_h, client, _d) = store().await;
    let cid = unixfs::file_cid(b"never added");
    let err = client.cat_bytes(&cid, 100).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { cid: c } if c == cid), "{err}");
    assert!(!client.has(&cid).await.unwrap());
    assert!(matches!(client.pin(&cid).await.unwrap_err(), StoreError::NotFound { .. }));
}

#[tokio::test]
async fn errors_are_kubo_json_with_clear_messages() {
    let (h, _client, _d) = store().await;
    let http = reqwest::Client::new();
    let resp = http.post(format!("{}/api/v0/cat?arg=not-a-cid", h.url())).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["Type"], "error");
    assert_eq!(v["Code"], 1);
    assert!(v["Message"].as_str().unwrap().contains("invalid CID \"not-a-cid\""), "{v}");

    let missing = unixfs::file_cid(b"nope");
    let resp =
        http.post(format!("{}/api/v0/block/get?arg={missing}", h.url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["Message"].as_str().unwrap().contains("not found"), "{v}");

    let resp = http.post(format!("{}/api/v0/cat", h.url())).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["Message"].as_str().unwrap().contains("\"arg\" is required"), "{v}");

    let resp = http.get(format!("{}/api/v0/version", h.url())).send().await.unwrap();
    assert_eq!(resp.status(), 405, "the RPC is POST only, like Kubo");
}

#[tokio::test]
async fn add_answers_kubo_ndjson_and_refuses_other_cid_options() {
    let (h, _client, _d) = store().await;
    let http = reqwest::Client::new();
    let form = || {
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("hello.txt"))
    };
    let resp = http
        .post(format!("{}/api/v0/add?progress=true", h.url()))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["Name"], "hello.txt");
    assert_eq!(last["Hash"], unixfs::file_cid(b"hello").to_string());
    assert_eq!(last["Size"], "5");

    let resp = http
        .post(format!("{}/api/v0/add?cid-version=0", h.url()))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["Message"].as_str().unwrap().contains("cid-version=0 is not supported"), "{v}");

    let stat: serde_json::Value = http
        .post(format!("{}/api/v0/block/stat?arg={}", h.url(), last["Hash"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stat["Size"], 5);

    let gw = http
        .get(format!("{}/ipfs/{}", h.url(), last["Hash"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(gw.status(), 200);
    assert_eq!(gw.bytes().await.unwrap().as_ref(), b"hello");
    let gw = http.get(format!("{}/ipfs/bafkqaaa-bad", h.url())).send().await.unwrap();
    assert_eq!(gw.status(), 400);
}

#[tokio::test]
async fn gc_removes_unpinned_content_only() {
    let (_h, client, _d) = store().await;
    let kept = client.add_bytes(content(600_000).into()).await.unwrap();
    let data = vec![42u8; 300_000];
    let dropped = client
        .add(
            Box::new(std::io::Cursor::new(data)),
            AddOptions { pin: false, ..AddOptions::default() },
        )
        .await
        .unwrap();
    assert_eq!(client.pins().await.unwrap(), vec![kept]);
    assert_eq!(client.repo_gc().await.unwrap(), 3);
    assert!(!client.has(&dropped).await.unwrap());
    assert_eq!(client.cat_bytes(&kept, 1 << 20).await.unwrap(), content(600_000));
    client.unpin(&kept).await.unwrap();
    assert!(client.pins().await.unwrap().is_empty());
    assert!(client.repo_gc().await.unwrap() >= 4);
    assert!(!client.has(&kept).await.unwrap());
}

#[tokio::test]
async fn quota_full_is_a_clear_error_and_leaves_nothing_pinned() {
    let (_h, client, _d) = store_with(|c| c.quota_bytes = Some(1_000_000)).await;
    let err = client.add_bytes(content(2_000_000).into()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("quota exceeded"), "{msg}");
    assert!(client.pins().await.unwrap().is_empty());
    client.repo_gc().await.unwrap();
    let small = client.add_bytes(content(1000).into()).await.unwrap();
    assert_eq!(client.cat_bytes(&small, 1000).await.unwrap(), content(1000));
}

#[tokio::test]
async fn upload_limit_is_enforced() {
    let (_h, client, _d) = store_with(|c| c.max_upload_bytes = 100_000).await;
    let err = client.add_bytes(content(300_000).into()).await.unwrap_err();
    assert!(err.to_string().contains("larger than the limit of 100000 bytes"), "{err}");
}
