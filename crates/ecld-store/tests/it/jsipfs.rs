//! Interop with a real IPFS implementation: js-ipfs 0.66 (`jsipfs daemon --offline`) from
//! `tools/node_modules`. Without it the tests fail under CI and are recorded skips elsewhere.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ecld_store::{ContentStore, KuboClient, StoreError, unixfs};
use ecld_testkit::{peers, runs};

use crate::common::{content, repo_root};

/// A running `jsipfs daemon --offline` in a temporary repository; killed on drop.
pub(crate) struct JsIpfs {
    child: Child,
    /// The API base URL.
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Drop for JsIpfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts js-ipfs for `test`. Without Node.js or js-ipfs that test fails under CI and is a
/// recorded skip elsewhere (`None`).
pub(crate) fn start(test: &str) -> Option<JsIpfs> {
    let tools = repo_root().join("tools");
    let bin = tools.join("node_modules/.bin/jsipfs");
    if !peers::NODE.available_for(test, runs("node", &["--version"]))
        || !peers::JS_IPFS.available_for(test, bin.is_file())
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let polyfill: PathBuf = tools.join("ipfs-polyfill.cjs");
    let env = |c: &mut Command| {
        c.env("IPFS_PATH", &repo)
            .env("NODE_OPTIONS", format!("--require={}", polyfill.display()))
            .stdin(Stdio::null());
    };
    let mut init = Command::new(&bin);
    init.args(["init", "--empty-repo"]).stdout(Stdio::null());
    env(&mut init);
    assert!(init.status().unwrap().success(), "jsipfs init failed");
    let config_path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    let port = free_port();
    config["Bootstrap"] = serde_json::json!([]);
    config["Addresses"]["Swarm"] = serde_json::json!([]);
    config["Addresses"]["Delegates"] = serde_json::json!([]);
    config["Addresses"]["API"] = serde_json::json!(format!("/ip4/127.0.0.1/tcp/{port}"));
    config["Addresses"]["Gateway"] = serde_json::json!("");
    config["Addresses"]["RPC"] = serde_json::json!("");
    std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

    let mut daemon = Command::new(&bin);
    daemon.args(["daemon", "--offline"]).stdout(Stdio::piped()).stderr(Stdio::inherit());
    env(&mut daemon);
    let mut child = daemon.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Daemon is ready") {
                let _ = tx.send(());
            }
        }
    });
    let node = JsIpfs { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    rx.recv_timeout(Duration::from_secs(90)).expect("jsipfs daemon did not get ready within 90 s");
    Some(node)
}

#[tokio::test]
async fn client_against_js_ipfs_matches_cids_and_verifies_content() {
    let Some(node) =
        start("ecld-store::it jsipfs::client_against_js_ipfs_matches_cids_and_verifies_content")
    else {
        return;
    };
    let client = KuboClient::new(&node.url).unwrap().with_block_timeout(Duration::from_secs(2));
    assert!(
        client.version().await.unwrap().starts_with("0.18"),
        "js-ipfs core 0.18 (package ipfs 0.66)"
    );

    let text = std::fs::read_to_string(repo_root().join("testdata/cid/vectors.json")).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        let len = v["len"].as_u64().unwrap() as usize;
        if len > 174 * 262_144 + 1 {
            continue;
        }
        let data = content(len);
        // add() fails with Tampered if js-ipfs answers a CID other than the one computed here.
        let cid = client.add_bytes(data.clone().into()).await.unwrap();
        assert_eq!(cid.to_string(), v["cid"].as_str().unwrap(), "{}", v["name"]);
        let back = client.cat_bytes(&cid, len as u64).await.unwrap();
        assert!(back == data, "content of {} differs", v["name"]);
        assert!(client.has(&cid).await.unwrap());
    }

    let cid = client.add_bytes(content(1000).into()).await.unwrap();
    assert!(client.pins().await.unwrap().contains(&cid));
    client.unpin(&cid).await.unwrap();
    assert!(!client.pins().await.unwrap().contains(&cid));
    client.pin(&cid).await.unwrap();
    assert!(client.pins().await.unwrap().contains(&cid));

    let missing = unixfs::file_cid(b"js-ipfs never saw this");
    let err = client.cat_bytes(&missing, 100).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { cid } if cid == missing), "{err}");
    assert!(!client.has(&missing).await.unwrap());
}
