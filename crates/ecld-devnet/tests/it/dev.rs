//! Development controls: time, mining, snapshots, interval mining.

use std::time::{Duration, Instant};

use alloy::primitives::{Bytes, TxKind, U256};
use ecld_devnet::DevnetConfig;
use serde_json::json;

use crate::common::{Rpc, big, devnet, quantity, sign_1559};

async fn timestamp(rpc: &Rpc, block: &str) -> u64 {
    quantity(&rpc.call("eth_getBlockByNumber", json!([block, false])).await["timestamp"])
}

#[tokio::test]
async fn time_moves_forward_on_request() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let t0 = timestamp(&rpc, "latest").await;
    rpc.call("evm_increaseTime", json!([3600])).await;
    rpc.call("evm_mine", json!([])).await;
    let t1 = timestamp(&rpc, "latest").await;
    assert!(t1 >= t0 + 3600, "{t0} -> {t1}");
    rpc.call("evm_setNextBlockTimestamp", json!([t1 + 86_400])).await;
    rpc.call("eth_sendTransaction", json!([{"from": d.accounts()[0].address(), "to": d.accounts()[1].address(), "value": "0x1"}])).await;
    assert_eq!(timestamp(&rpc, "latest").await, t1 + 86_400);
    // Later blocks go on from there, and going back is refused.
    rpc.call("evm_mine", json!([])).await;
    assert!(timestamp(&rpc, "latest").await > t1 + 86_400);
    let err = rpc.try_call("evm_setNextBlockTimestamp", json!([t0])).await.unwrap_err();
    assert_eq!(err["code"], json!(-32602));
    rpc.call("evm_mine", json!([format!("{:#x}", t1 + 100_000)])).await;
    assert_eq!(timestamp(&rpc, "latest").await, t1 + 100_000);
}

#[tokio::test]
async fn revert_restores_balances_blocks_and_receipts() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    let from = d.accounts()[0].address();
    let to = d.accounts()[1].address();
    let snap = rpc.call("evm_snapshot", json!([])).await;
    let before = rpc.call("eth_getBalance", json!([to, "latest"])).await;
    let hash =
        rpc.call("eth_sendTransaction", json!([{"from": from, "to": to, "value": "0x1000"}])).await;
    assert_eq!(rpc.block_number().await, 1);
    assert_eq!(rpc.call("evm_revert", json!([snap])).await, json!(true));
    assert_eq!(rpc.block_number().await, 0);
    assert_eq!(rpc.call("eth_getBalance", json!([to, "latest"])).await, before);
    assert_eq!(rpc.receipt(&hash).await, json!(null));
    // A snapshot is used up by reverting to it.
    assert_eq!(rpc.call("evm_revert", json!([snap])).await, json!(false));
}

#[tokio::test]
async fn interval_mining_collects_transactions_into_blocks() {
    let config =
        DevnetConfig { block_time: Some(Duration::from_secs(1)), ..DevnetConfig::ephemeral() };
    let d = ecld_devnet::spawn(config).await.unwrap();
    let rpc = Rpc::new(d.url());
    let signer = d.accounts()[0].signer();
    let to = TxKind::Call(d.accounts()[1].address());
    let tx0 = sign_1559(signer, 0, to, U256::from(1), Bytes::new(), 21_000);
    let tx1 = sign_1559(signer, 1, to, U256::from(1), Bytes::new(), 21_000);
    // The miner mines a block every tick, empty or not: send both right after a tick, so that
    // the next tick (a second later) finds both in the pool rather than one on each side.
    let mined = rpc.block_number().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while rpc.block_number().await == mined {
        assert!(Instant::now() < deadline, "the interval miner mined no block in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let h0 = rpc.call("eth_sendRawTransaction", json!([tx0])).await;
    let h1 = rpc.call("eth_sendRawTransaction", json!([tx1])).await;
    assert_eq!(
        quantity(&rpc.call("eth_getTransactionCount", json!([signer.address(), "pending"])).await),
        2
    );
    let mut receipt = json!(null);
    for _ in 0..200 {
        receipt = rpc.receipt(&h1).await;
        if !receipt.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(
        rpc.receipt(&h0).await["blockNumber"],
        receipt["blockNumber"],
        "one block holds both"
    );
    assert_eq!(receipt["transactionIndex"], json!("0x1"));
    assert_eq!(receipt["cumulativeGasUsed"], json!(format!("{:#x}", 42_000)));
    assert!(
        big(&rpc.call("eth_getBalance", json!([d.accounts()[1].address(), "latest"])).await)
            > U256::ZERO
    );
    d.shutdown().await.unwrap();
}

#[tokio::test]
async fn automine_can_be_switched_off_and_on() {
    let d = devnet().await;
    let rpc = Rpc::new(d.url());
    rpc.call("evm_setAutomine", json!([false])).await;
    let h = rpc
        .call(
            "eth_sendTransaction",
            json!([{"from": d.accounts()[0].address(), "to": d.accounts()[1].address()}]),
        )
        .await;
    assert_eq!(rpc.receipt(&h).await, json!(null));
    rpc.call("evm_mine", json!([])).await;
    assert_eq!(rpc.receipt(&h).await["blockNumber"], json!("0x1"));
}
