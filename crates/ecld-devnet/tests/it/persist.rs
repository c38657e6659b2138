//! `state_dir`: the chain survives a restart and a kill -9.

use std::{process::Stdio, time::Duration};

use alloy::primitives::{Bytes, TxKind, U256};
use ecld_devnet::DevnetConfig;
use serde_json::json;

use crate::common::{Counter, Rpc, bytecode, deploy, sign_1559};

#[tokio::test]
async fn a_restarted_devnet_has_every_block_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        DevnetConfig { state_dir: Some(dir.path().to_path_buf()), ..DevnetConfig::ephemeral() };
    let d = ecld_devnet::spawn(config.clone()).await.unwrap();
    let rpc = Rpc::new(d.url());
    let me = d.accounts()[0].address();
    let counter = deploy(&rpc, me, bytecode("Counter")).await;
    use alloy::sol_types::SolCall as _;
    let add = Bytes::from(Counter::addCall { amount: U256::from(9) }.abi_encode());
    let snap = rpc.call("evm_snapshot", json!([])).await;
    rpc.call("eth_sendTransaction", json!([{"from": me, "to": counter, "data": add}])).await;
    rpc.call("evm_revert", json!([snap])).await;
    let hash =
        rpc.call("eth_sendTransaction", json!([{"from": me, "to": counter, "data": add}])).await;
    let receipt = rpc.receipt(&hash).await;
    let head = rpc.call("eth_getBlockByNumber", json!(["latest", false])).await;
    d.shutdown().await.unwrap();

    let d = ecld_devnet::spawn(config.clone()).await.unwrap();
    let rpc = Rpc::new(d.url());
    assert_eq!(rpc.call("eth_getBlockByNumber", json!(["latest", false])).await, head);
    assert_eq!(rpc.receipt(&hash).await, receipt);
    let count = rpc
        .call(
            "eth_call",
            json!([{"to": counter, "data": Bytes::from(Counter::countCall {}.abi_encode())}]),
        )
        .await;
    assert_eq!(crate::common::big(&count), U256::from(9));
    d.shutdown().await.unwrap();

    // Other genesis parameters on the same directory are refused, not silently mixed.
    let other = DevnetConfig { chain_id: 1337, ..config };
    let err = ecld_devnet::spawn(other).await.unwrap_err();
    assert!(matches!(err, ecld_devnet::DevnetError::ConfigMismatch { .. }), "{err}");
}

/// Starts the devnet binary on a free port; returns the child and its URL.
async fn start_process(state: &std::path::Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ecld-devnet"))
        .args(["--port", "0", "--state"])
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start_process(dir.path()).await;
    let rpc = Rpc::new(url);
    let signer = alloy::signers::local::PrivateKeySigner::from_bytes(
        &"0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d".parse().unwrap(),
    )
    .unwrap();
    let to = TxKind::Call(alloy::primitives::address!("0000000000000000000000000000000000000b0b"));
    let mut hashes = Vec::new();
    for nonce in 0..20 {
        let raw = sign_1559(&signer, nonce, to, U256::from(1000 + nonce), Bytes::new(), 21_000);
        hashes.push(rpc.call("eth_sendRawTransaction", json!([raw])).await);
    }
    let receipts: Vec<_> = futures::future::join_all(hashes.iter().map(|h| rpc.receipt(h))).await;
    let head = rpc.call("eth_getBlockByNumber", json!(["latest", true])).await;
    // No goodbye: SIGKILL.
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let (_child, url) = start_process(dir.path()).await;
    let rpc = Rpc::new(url);
    assert_eq!(rpc.block_number().await, 20);
    assert_eq!(rpc.call("eth_getBlockByNumber", json!(["latest", true])).await, head);
    for (h, r) in hashes.iter().zip(&receipts) {
        assert_eq!(&rpc.receipt(h).await, r);
    }
    assert_eq!(rpc.nonce(signer.address()).await, 20);
    let sum: u64 = (0..20).map(|n| 1000 + n).sum();
    let bal = rpc
        .call("eth_getBalance", json!(["0x0000000000000000000000000000000000000b0b", "latest"]))
        .await;
    assert_eq!(crate::common::big(&bal), U256::from(sum));
    // And it goes on from there.
    let raw = sign_1559(&signer, 20, to, U256::from(1), Bytes::new(), 21_000);
    let h = rpc.call("eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(rpc.receipt(&h).await["blockNumber"], json!("0x15"));
}
